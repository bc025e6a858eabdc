package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// Type names an event kind, such as "AccountCreated". Each is a hand-written
// constant in the package that owns the event.
type Type string

// Envelope is one immutable event as stored in the log.
type Envelope struct {
	ID         ulid.ULID       // unique in the whole log; a retried append with the same ID is written once
	Stream     string          // e.g. "account-juliet@example.com"
	Version    uint64          // dense per stream, from 1
	Position   Position        // global order, assigned at commit
	Type       Type            // hand-written constant
	Schema     int             // version of Data's layout for this Type, from 1
	OccurredAt time.Time       // UTC
	Cause      string          // the stanza or command id that caused it; may be empty
	Data       json.RawMessage // compact JSON object
	Hash       []byte          // SHA-256 chain, see Chain
}

// Errors returned by this package.
var (
	ErrSchemaTooNew = errors.New("event: schema newer than this decoder knows")
	ErrInvalid      = errors.New("event: invalid envelope")
)

// MaxStreamLen bounds stream names; a bare JID is at most 3071 bytes.
const MaxStreamLen = 3200

// ValidStream reports whether s can name a stream: non-empty, valid UTF-8,
// no control characters, at most MaxStreamLen bytes.
func ValidStream(s string) error {
	if s == "" || len(s) > MaxStreamLen || !utf8.ValidString(s) {
		return fmt.Errorf("%w: stream name %q", ErrInvalid, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: stream name %q has a control character", ErrInvalid, s)
		}
	}
	return nil
}

// New builds a proposed event: what a domain Decide returns before a store
// assigns Stream, Version, Position and Hash. Data is marshalled to JSON.
func New(ids *IDs, at time.Time, t Type, schema int, cause string, data any) (Envelope, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("event: encode %s data: %w", t, err)
	}
	at = at.UTC()
	return Envelope{ID: ids.New(at), Type: t, Schema: schema, OccurredAt: at, Cause: cause, Data: raw}, nil
}

// One is New as the single event a decision makes, or its error.
func One(ids *IDs, at time.Time, t Type, schema int, cause string, data any) ([]Envelope, error) {
	e, err := New(ids, at, t, schema, cause, data)
	if err != nil {
		return nil, err
	}
	return []Envelope{e}, nil
}

// Normalize checks the parts of a proposed event that the caller chooses and
// brings Data to compact form, so that the hash covers the same bytes that
// any later JSON encoding of the envelope shows.
func (e *Envelope) Normalize() error {
	if e.ID == (ulid.ULID{}) {
		return fmt.Errorf("%w: zero id", ErrInvalid)
	}
	if e.Type == "" || strings.ContainsFunc(string(e.Type), unicode.IsSpace) {
		return fmt.Errorf("%w: type %q", ErrInvalid, e.Type)
	}
	if e.Schema < 1 {
		return fmt.Errorf("%w: %s schema %d", ErrInvalid, e.Type, e.Schema)
	}
	if e.OccurredAt.IsZero() {
		return fmt.Errorf("%w: %s without occurred_at", ErrInvalid, e.Type)
	}
	// Canonical and the stores carry the instant as int64 Unix nanoseconds,
	// which end before 1677 and after 2262; past them a time would wrap to
	// another instant and still verify.
	if !time.Unix(0, e.OccurredAt.UnixNano()).Equal(e.OccurredAt) {
		return fmt.Errorf("%w: %s occurred_at %v out of range", ErrInvalid, e.Type, e.OccurredAt)
	}
	e.OccurredAt = e.OccurredAt.UTC()
	if len(e.Data) == 0 {
		e.Data = json.RawMessage("{}")
	}
	if !json.Valid(e.Data) {
		return fmt.Errorf("%w: %s data is not JSON", ErrInvalid, e.Type)
	}
	// Only an object: JSON null decodes to empty Data, which reads back as
	// {} and would no longer match the hash.
	if bytes.TrimLeft(e.Data, " \t\r\n")[0] != '{' {
		return fmt.Errorf("%w: %s data is not a JSON object", ErrInvalid, e.Type)
	}
	d, err := compactData(e.Data)
	if err != nil {
		return fmt.Errorf("%w: %s data: %v", ErrInvalid, e.Type, err)
	}
	e.Data = d
	return nil
}

// compactData returns JSON b as json.Marshal writes a json.RawMessage:
// compact, with <, >, &, U+2028 and U+2029 escaped. json.Marshal and
// json.MarshalIndent pass Data through that form whatever MarshalJSON
// returns, so hashing it is what lets a hash survive a trip through JSON.
func compactData(b []byte) ([]byte, error) {
	if isCompact(b) {
		return b, nil
	}
	return json.Marshal(json.RawMessage(b))
}

// isCompact is a cheap check that lets the common case (json.Marshal output)
// skip a copy: no insignificant white space outside strings and nothing that
// json.Marshal would escape. 0xE2 starts U+2028 and U+2029 but also other
// runes; those only cost a copy that changes nothing.
func isCompact(b []byte) bool {
	in := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\n' || c == '\t' || c == '\r'):
			return false
		case c == '<' || c == '>' || c == '&' || c == 0xE2:
			return false
		}
	}
	return true
}

// Decode unmarshals Data into v after checking that the schema is one the
// caller knows (1..known).
func (e Envelope) Decode(known int, v any) error {
	if e.Schema > known {
		return fmt.Errorf("%w: %s schema %d at %s version %d (this build reads up to %d)",
			ErrSchemaTooNew, e.Type, e.Schema, e.Stream, e.Version, known)
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("event: decode %s at %s version %d: %w", e.Type, e.Stream, e.Version, err)
	}
	return nil
}

// Position is an event's place in the whole log. Stores define its values;
// everyone else only compares, prints and parses them. Commit and Prepare
// follow KurrentDB's $all positions; a store with a single sequence sets both
// to it. The zero Position is "before the first event".
type Position struct {
	Commit, Prepare uint64
}

// IsZero reports whether p is the start of the log.
func (p Position) IsZero() bool { return p == Position{} }

// Less reports whether p comes before q in the log.
func (p Position) Less(q Position) bool {
	if p.Commit != q.Commit {
		return p.Commit < q.Commit
	}
	return p.Prepare < q.Prepare
}

// String prints "N" when both parts agree, else "C/P". ParsePosition reads it back.
func (p Position) String() string {
	if p.Commit == p.Prepare {
		return strconv.FormatUint(p.Commit, 10)
	}
	return strconv.FormatUint(p.Commit, 10) + "/" + strconv.FormatUint(p.Prepare, 10)
}

// ParsePosition reads what Position.String prints.
func ParsePosition(s string) (Position, error) {
	c, pr, found := strings.Cut(s, "/")
	cv, err := strconv.ParseUint(c, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("event: position %q: want N or C/P", s)
	}
	if !found {
		return Position{cv, cv}, nil
	}
	pv, err := strconv.ParseUint(pr, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("event: position %q: want N or C/P", s)
	}
	return Position{cv, pv}, nil
}
