package archive

import (
	"math"
	"time"
)

// Page sizes of archive queries: a query without max gets DefaultPage
// results, and no page is larger than MaxPage (a larger max is clamped).
const (
	DefaultPage = 50
	MaxPage     = 250
)

// Query selects entries of one archive (XEP-0313 §4 with XEP-0059 paging).
// Bounds combine: every given one must hold.
type Query struct {
	With       string    // a bare JID matches any resource; a full JID only itself
	Start, End time.Time // inclusive; zero is open
	// Exclusive bounds by archive ID: after-id/before-id of the form, and
	// RSM's <after/>/<before/>. Each must name an entry of the archive.
	AfterID, BeforeID   string
	RSMAfter, RSMBefore string
	IDs                 []string // only these entries (mam#extended)
	Max                 int      // 0: DefaultPage; clamped to MaxPage
	// MaxBytes bounds the stanzas of the page together (0: no bound): the
	// page stops before the entry that would pass it, always keeping one,
	// and is then not complete, so that RSM paging goes on from its edge.
	MaxBytes int
	// Last asks for the page at the end of the range (RSM <before/>, empty
	// or with an ID): the last Max entries instead of the first.
	Last bool
	Flip bool // results newest first within the page
	// Groupchat includes room messages (XEP-0313 include-groupchat); a
	// room's own archive holds nothing else.
	Groupchat bool
}

// Limit returns the page size the query gets.
func (q Query) Limit() int {
	switch {
	case q.Max <= 0:
		return DefaultPage
	case q.Max > MaxPage:
		return MaxPage
	}
	return q.Max
}

// The instants an archive can tell apart: times are kept as Unix
// nanoseconds in an int64, from 1677-09-21 to 2262-04-11.
var (
	MinTime = time.Unix(0, math.MinInt64).UTC()
	MaxTime = time.Unix(0, math.MaxInt64).UTC()
)

// UnixNano is t in Unix nanoseconds, clamped to [MinTime, MaxTime]: a
// query's end in the year 9999 means "no end", not an overflow into the
// past (time.Time.UnixNano is undefined out of range).
func UnixNano(t time.Time) int64 {
	switch {
	case t.Before(MinTime):
		return math.MinInt64
	case t.After(MaxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// Entry is one archived message.
type Entry struct {
	ID     string
	At     time.Time
	Stanza string
}

// Page is a query's answer. Entries are oldest first unless the query
// flipped them. Complete says there is nothing more in the direction of
// paging: after the page for a forward query, before it for a Last one.
type Page struct {
	Entries  []Entry
	Complete bool
}
