package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/mirror"
	"annals.im/annals/domain/room"
	"annals.im/annals/domain/wellformed"
)

// Name is stored with the checkpoint; change it and the read model is
// rebuilt from the start of the log.
//
// v4: stanzas of events written before the server refused malformed XML
// (those without well_formed) are stored re-serialized (wellformed.Salvage),
// so that they replay as XML every client parses.
// v6: the messages of rooms this server mirrors (mirrors.go).
// v8: a room message's author, and retractions as tombstones (retract.go).
// v10: 1:1 messages' authors and ids, and their retractions.
const Name = "archive/v10"

// Projection is the archive read model.
type Projection struct {
	// Stays keeps a room's message once, in the room's archive, and each
	// account's stays in its rooms (stays.go): an account's archive is then
	// its own rows and the rooms' rows of its stays, read together. Without
	// it a room's message is copied into each occupant's archive.
	Stays bool
}

func (p Projection) Name() string {
	if p.Stays {
		return NameStays
	}
	return Name
}

// Tables are both models' tables, whichever is kept: switching models
// rebuilds the read model, and that drops the other model's rows too.
func (Projection) Tables() []string {
	return []string{"archive", "archive_occupants", "archive_stays", "archive_clock"}
}

func (Projection) Schema() string {
	return `CREATE TABLE IF NOT EXISTS archive (
		account   TEXT NOT NULL,    -- whose archive
		at        INTEGER NOT NULL, -- Unix nanoseconds; never decreasing within an account
		pos       INTEGER NOT NULL, -- the event's position in the log
		id        TEXT NOT NULL,    -- archive ID (XEP-0359 stanza-id)
		with_bare TEXT NOT NULL,    -- the other party
		with_full TEXT NOT NULL,
		offline   INTEGER NOT NULL, -- 1 while waiting for the account's next session
		groupchat INTEGER NOT NULL, -- 1 for a room's message (in the room's archive or an occupant's)
		stanza    TEXT NOT NULL,
		author    TEXT NOT NULL DEFAULT '', -- who wrote it (a room's occupant, a 1:1 sender's bare JID), for retractions
		msg_id    TEXT NOT NULL DEFAULT ''  -- a 1:1 message's own id attribute, which a retraction names
	);
	-- Which accounts occupy which room: a room's message lands once in each.
	CREATE TABLE IF NOT EXISTS archive_occupants (
		room    TEXT NOT NULL,
		account TEXT NOT NULL,
		PRIMARY KEY (room, account)
	) WITHOUT ROWID;
	CREATE UNIQUE INDEX IF NOT EXISTS archive_order ON archive (account, at, pos);
	CREATE UNIQUE INDEX IF NOT EXISTS archive_ids ON archive (account, id);
	-- with= queries on 1:1 conversations; a room's messages in a user's
	-- archive are not indexed by room (fifty occupants would mean fifty
	-- more index pages per message): with= on them scans the account's rows.
	CREATE INDEX IF NOT EXISTS archive_with ON archive (account, with_bare, at, pos) WHERE groupchat = 0;
	CREATE INDEX IF NOT EXISTS archive_offline ON archive (account, at, pos) WHERE offline = 1;
	-- A user's 1:1 conversation without the rooms' messages, which may be most rows.
	CREATE INDEX IF NOT EXISTS archive_chats ON archive (account, at, pos) WHERE groupchat = 0;` + staysSchema
}

// Apply implements projections.Projection.
func (p Projection) Apply(ctx context.Context, tx *sql.Tx, e event.Envelope) error {
	if p.Stays {
		return applyStays(ctx, tx, e)
	}
	switch e.Type {
	case archive.TypeMessageSent:
		var d archive.MessageSent
		if err := e.Decode(archive.Schema, &d); err != nil {
			return err
		}
		if d.Erased {
			return nil // its key is destroyed: what erasing it deleted stays deleted
		}
		if !d.WellFormed {
			if d.Stanza = wellformed.Salvage(d.Stanza); d.Stanza == "" {
				return nil // nothing a client could read: the log keeps the event
			}
		}
		for _, x := range chatRows(d) {
			if err := insert(ctx, tx, e, x); err != nil {
				return err
			}
		}
		return retractChat(ctx, tx, e, d)
	case room.TypeJoined:
		var d room.Joined
		if err := e.Decode(room.Schema, &d); err != nil {
			return err
		}
		return enter(ctx, tx, room.JIDOf(e.Stream), d.Account)
	case room.TypeLeft:
		var d room.Left
		if err := e.Decode(room.Schema, &d); err != nil {
			return err
		}
		return exit(ctx, tx, room.JIDOf(e.Stream), d.Account)
	case room.TypeDestroyed:
		r := room.JIDOf(e.Stream)
		if _, err := tx.ExecContext(ctx, `DELETE FROM archive_occupants WHERE room = ?`, r); err != nil {
			return err
		}
		// The room's own archive goes with it; its occupants keep their copies.
		_, err := tx.ExecContext(ctx, `DELETE FROM archive WHERE account = ?`, r)
		return err
	case room.TypeMessagePosted:
		var d room.MessagePosted
		if err := e.Decode(room.Schema, &d); err != nil {
			return err
		}
		if d.Erased {
			return nil
		}
		if !d.WellFormed {
			if d.Stanza = wellformed.Salvage(d.Stanza); d.Stanza == "" {
				return nil // nothing a client could read: the log keeps the event
			}
		}
		return postGroupchat(ctx, tx, e, room.JIDOf(e.Stream), d.ID, d.Nick, d.Account, d.Stanza)
	case room.TypeMessageRetracted:
		return retract(ctx, tx, e)
	case mirror.TypeApplied:
		return applyMirror(ctx, tx, e, false)
	case archive.TypeOfflineDelivered:
		return offlineDelivered(ctx, tx, e)
	case account.TypeDeleted:
		// A deleted account's archive goes with it.
		_, err := tx.ExecContext(ctx, `DELETE FROM archive WHERE account = ?`, account.JIDOf(e.Stream))
		return err
	case account.TypeContentErased, archive.TypeExpired:
		return forget(ctx, tx, e)
	}
	return nil
}

// forget deletes what an erasure or an expiry took (adapters/sealing):
// every row an erased account wrote, in any archive (its own, its
// contacts', its rooms'), or every row older than the expiry's time. The
// log's copies read as erased from then on, so a rebuild never inserts
// them again and both give the same rows.
//
// Both scan the table (no index on author or on time alone: each would
// cost every insert a page); they are rare, and run in one transaction.
func forget(ctx context.Context, tx *sql.Tx, e event.Envelope) error {
	if e.Type == archive.TypeExpired {
		var d archive.Expired
		if err := e.Decode(archive.Schema, &d); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM archive WHERE at < ?`, d.Before.UnixNano())
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM archive WHERE author = ?`, account.JIDOf(e.Stream))
	return err
}

// offlineDelivered clears the offline mark of an account's rows up to the
// one delivered last.
func offlineDelivered(ctx context.Context, tx *sql.Tx, e event.Envelope) error {
	var d archive.OfflineDelivered
	if err := e.Decode(archive.Schema, &d); err != nil {
		return err
	}
	acct := account.JIDOf(e.Stream)
	_, err := tx.ExecContext(ctx, `UPDATE archive SET offline = 0
		WHERE account = ?1 AND offline = 1 AND (at, pos) <= (SELECT at, pos FROM archive WHERE account = ?1 AND id = ?2)`,
		acct, d.Through)
	return err
}

// enter and exit keep which accounts occupy room r: its messages land
// in their archives.
func enter(ctx context.Context, tx *sql.Tx, r, acct string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO archive_occupants (room, account) VALUES (?, ?) ON CONFLICT DO NOTHING`, r, acct)
	return err
}

func exit(ctx context.Context, tx *sql.Tx, r, acct string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM archive_occupants WHERE room = ? AND account = ?`, r, acct)
	return err
}

// postGroupchat archives a room's message (archive ID id, said by nick)
// once in the room's archive and once in the archive of each account
// occupying the room, in one statement: with fifty occupants a message
// is fifty-one rows, and the writer's time per message is what bounds a
// busy room.
func postGroupchat(ctx context.Context, tx *sql.Tx, e event.Envelope, r, id, nick, author, stanza string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO archive (account, at, pos, id, with_bare, with_full, offline, groupchat, stanza, author)
		SELECT o.account, `+atOf("o.account", "?1")+`, ?2, ?3, ?4, ?5, 0, 1, ?6, ?7
		FROM (SELECT ?4 AS account UNION ALL SELECT account FROM archive_occupants WHERE room = ?4) AS o
		WHERE true ON CONFLICT DO NOTHING`,
		e.OccurredAt.UnixNano(), int64(e.Position.Commit), id, r, withNick(r, nick), stanza, author)
	if err != nil {
		return fmt.Errorf("archive: %s in %s: %w", id, r, err)
	}
	return nil
}

// atOf is the SQL for a new row's time in account's archive: the event's
// time (param), or the account's latest row's if that is later (clocks
// step back; log order wins).
func atOf(account, param string) string {
	return "max(" + param + ", coalesce((SELECT a.at FROM archive a WHERE a.account = " + account +
		" ORDER BY a.at DESC, a.pos DESC LIMIT 1), " + param + "))"
}

// row is one archive entry to insert.
type row struct {
	acct, id, with     string
	offline, groupchat bool
	stanza, author     string
	msgID              string // a 1:1 message's id attribute
}

// withNick is the JID a room message is with: the occupant's, or the
// room's own for what the room itself says (a moderation's notice).
func withNick(r, nick string) string {
	if nick == "" {
		return r
	}
	return r + "/" + nick
}

// chatRows are the archive rows of a 1:1 message: one per party that
// archives it (none for a party elsewhere).
func chatRows(d archive.MessageSent) []row {
	var rows []row
	msgID := messageID(d.Stanza)
	if d.SenderID != "" {
		rows = append(rows, row{acct: bare(d.From), id: d.SenderID, with: d.To, stanza: d.Stanza, author: bare(d.From), msgID: msgID})
	}
	if d.RecipientID != "" {
		rows = append(rows, row{acct: bare(d.To), id: d.RecipientID, with: d.From, offline: d.Offline, stanza: d.Stanza, author: bare(d.From), msgID: msgID})
	}
	return rows
}

// insert adds one party's row, timed as atOf says. A second row with an
// ID the account already has is dropped: the first one stays, on every
// replay alike. added reports whether the row went in.
func insert(ctx context.Context, tx *sql.Tx, e event.Envelope, x row) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO archive (account, at, pos, id, with_bare, with_full, offline, groupchat, stanza, author, msg_id)
		VALUES (?3, `+atOf("?3", "?1")+`, ?2, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING`,
		e.OccurredAt.UnixNano(), int64(e.Position.Commit), x.acct, x.id, bare(x.with), x.with, x.offline, x.groupchat, x.stanza, x.author, x.msgID)
	if err != nil {
		return fmt.Errorf("archive: insert %s into %s: %w", x.id, x.acct, err)
	}
	return nil
}

func bare(j string) string {
	b, _, _ := strings.Cut(j, "/")
	return b
}

// Reader answers archive queries.
type Reader struct {
	db *sql.DB
	// unsynced returns the first position not yet durable, or 0 (see
	// eventstore/sqlite.Store.Unsynced); nil when every commit is durable.
	unsynced func() int64
	stays    bool // the model of Projection.Stays
	// barrier, when set, runs before each read and returns once the read
	// model has every event acknowledged before the read began: a node
	// of a cluster whose archive follows a log other nodes write too.
	// ownBarrier is the cheaper one Has waits for: this node's own
	// appends only (see Has).
	barrier, ownBarrier func(context.Context) error
	// roomBatch replaces the constant of that name, in tests.
	roomBatch int
}

// NewReader reads the archive in db, kept by Projection{}; see
// Projection.Reader for either model.
func NewReader(db *sql.DB, unsynced func() int64) *Reader {
	if unsynced == nil {
		unsynced = func() int64 { return 0 }
	}
	return &Reader{db: db, unsynced: unsynced}
}

// WithBarriers makes every read wait for all first, and Has for own (see
// Reader.barrier), and returns r.
func (r *Reader) WithBarriers(all, own func(context.Context) error) *Reader {
	r.barrier, r.ownBarrier = all, own
	return r
}

func (r *Reader) caughtUp(ctx context.Context) error { return wait(ctx, r.barrier) }

func wait(ctx context.Context, barrier func(context.Context) error) error {
	if barrier == nil {
		return nil
	}
	if err := barrier(ctx); err != nil {
		return fmt.Errorf("archive: not caught up with the log: %w", err)
	}
	return nil
}

type found struct {
	at, pos int64
	entry   archive.Entry
}

// durable drops the rows at or after the first undurable position. It
// must run after the query: a batch marks itself undurable before it
// commits. dropped reports whether anything went.
func (r *Reader) durable(rows []found) (kept []found, dropped bool) {
	u := r.unsynced()
	if u == 0 {
		return rows, false
	}
	kept = rows[:0]
	for _, x := range rows {
		if x.pos < u {
			kept = append(kept, x)
		}
	}
	return kept, len(kept) < len(rows)
}

func (r *Reader) scan(rows *sql.Rows) ([]found, error) {
	out, _, err := r.scanBytes(rows, 0)
	return out, err
}

// scanBytes reads rows until their stanzas together would pass maxBytes
// (0: no bound), keeping at least one; cut reports that it stopped early.
// The driver holds one row at a time, so a page costs its bound and one
// stanza more, whatever the rows left in the query.
func (r *Reader) scanBytes(rows *sql.Rows, maxBytes int) (out []found, cut bool, err error) {
	defer rows.Close()
	total := 0
	for rows.Next() {
		var x found
		if err := rows.Scan(&x.at, &x.pos, &x.entry.ID, &x.entry.Stanza); err != nil {
			return nil, false, err
		}
		if total += len(x.entry.Stanza); maxBytes > 0 && total > maxBytes && len(out) > 0 {
			return out, true, nil
		}
		x.entry.At = time.Unix(0, x.at).UTC()
		out = append(out, x)
	}
	return out, false, rows.Err()
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// locate returns the (at, pos) of the entry with archive ID id.
func (r *Reader) locate(ctx context.Context, db querier, acct, id string) (at, pos int64, err error) {
	err = db.QueryRowContext(ctx, `SELECT at, pos FROM archive WHERE account = ? AND id = ?`, acct, id).Scan(&at, &pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, fmt.Errorf("%w: %q", archive.ErrItemNotFound, id)
	}
	if err == nil && r.unsynced() != 0 && pos >= r.unsynced() {
		return 0, 0, fmt.Errorf("%w: %q", archive.ErrItemNotFound, id)
	}
	return at, pos, err
}

// Query answers q on acct's archive.
func (r *Reader) Query(ctx context.Context, acct string, q archive.Query) (archive.Page, error) {
	if err := r.caughtUp(ctx); err != nil {
		return archive.Page{}, err
	}
	if r.stays {
		return r.queryStays(ctx, acct, q)
	}
	where := []string{"account = ?"}
	args := []any{acct}
	if !q.Groupchat {
		where = append(where, "groupchat = 0")
	}
	more, moreArgs, _, err := filters(ctx, q, func(ctx context.Context, id string) (int64, int64, error) {
		return r.locate(ctx, r.db, acct, id)
	}, "at")
	if err != nil {
		return archive.Page{}, err
	}
	where, args = append(where, more...), append(args, moreArgs...)
	limit := q.Limit()
	order := "at, pos"
	if q.Last {
		order = "at DESC, pos DESC"
	}
	rows, err := r.db.QueryContext(ctx, `SELECT at, pos, id, stanza FROM archive WHERE `+strings.Join(where, " AND ")+
		` ORDER BY `+order+` LIMIT ?`, append(args, limit+1)...)
	if err != nil {
		return archive.Page{}, fmt.Errorf("archive: query: %w", err)
	}
	got, cut, err := r.scanBytes(rows, q.MaxBytes)
	if err != nil {
		return archive.Page{}, fmt.Errorf("archive: query: %w", err)
	}
	return r.page(q, got, cut), nil
}

// locator finds the (at, pos) of the entry with an archive ID.
type locator func(ctx context.Context, id string) (at, pos int64, err error)

// span is the stamps a query's rows may have, inclusive.
type span struct{ lo, hi int64 }

// filters returns the conditions q puts on an archive's rows, but for
// the account's, with their arguments; the columns are the archive's,
// unqualified, but for the stamp, which is at (e.g. "+at" to keep the
// index to bounds of one's own). It returns too the stamps the
// conditions allow.
func filters(ctx context.Context, q archive.Query, locate locator, at string) (where []string, args []any, s span, err error) {
	s = span{math.MinInt64, math.MaxInt64}
	if q.With != "" {
		if b := bare(q.With); b == q.With {
			where, args = append(where, "with_bare = ?"), append(args, b)
		} else {
			where, args = append(where, "with_bare = ?", "with_full = ?"), append(args, b, q.With)
		}
	}
	if !q.Start.IsZero() {
		s.lo = archive.UnixNano(q.Start)
		where, args = append(where, at+" >= ?"), append(args, s.lo)
	}
	if !q.End.IsZero() {
		s.hi = archive.UnixNano(q.End)
		where, args = append(where, at+" <= ?"), append(args, s.hi)
	}
	for _, b := range []struct{ id, op string }{{q.AfterID, ">"}, {q.RSMAfter, ">"}, {q.BeforeID, "<"}, {q.RSMBefore, "<"}} {
		if b.id == "" {
			continue
		}
		t, pos, err := locate(ctx, b.id)
		if err != nil {
			return nil, nil, s, err
		}
		if b.op == ">" {
			s.lo = max(s.lo, t)
		} else {
			s.hi = min(s.hi, t)
		}
		where, args = append(where, "("+at+", pos) "+b.op+" (?, ?)"), append(args, t, pos)
	}
	if len(q.IDs) > 0 {
		for _, id := range q.IDs {
			if _, _, err := locate(ctx, id); err != nil {
				return nil, nil, s, err
			}
		}
		where = append(where, "id IN (?"+strings.Repeat(", ?", len(q.IDs)-1)+")")
		for _, id := range q.IDs {
			args = append(args, id)
		}
	}
	return where, args, s, nil
}

// page makes q's answer of the rows got in the direction of paging, at
// most one more than the page holds; cut says more were left unread.
func (r *Reader) page(q archive.Query, got []found, cut bool) archive.Page {
	limit := q.Limit()
	got, dropped := r.durable(got)
	more := cut || dropped || len(got) > limit
	if len(got) > limit {
		got = got[:limit]
	}
	// got runs in the direction of paging; entries go oldest first unless flipped.
	if q.Last != q.Flip {
		for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
			got[i], got[j] = got[j], got[i]
		}
	}
	page := archive.Page{Complete: !more, Entries: make([]archive.Entry, len(got))}
	for i, x := range got {
		page.Entries[i] = x.entry
	}
	return page
}

// Bounds returns the first and last entries of acct's archive (XEP-0313
// metadata); ok is false for an empty archive.
func (r *Reader) Bounds(ctx context.Context, acct string) (first, last archive.Entry, ok bool, err error) {
	if err := r.caughtUp(ctx); err != nil {
		return first, last, false, err
	}
	if r.stays {
		return r.boundsStays(ctx, acct)
	}
	end := func(order string) (archive.Entry, bool, error) {
		// A few rows, in case the newest are not durable yet.
		rows, err := r.db.QueryContext(ctx, `SELECT at, pos, id, '' FROM archive WHERE account = ? ORDER BY `+order+` LIMIT 64`, acct)
		if err != nil {
			return archive.Entry{}, false, err
		}
		got, err := r.scan(rows)
		if err != nil {
			return archive.Entry{}, false, err
		}
		got, _ = r.durable(got)
		if len(got) == 0 {
			return archive.Entry{}, false, nil
		}
		return got[0].entry, true, nil
	}
	if first, ok, err = end("at, pos"); err != nil || !ok {
		return first, last, ok, err
	}
	last, ok, err = end("at DESC, pos DESC")
	return first, last, ok, err
}

// Offline returns acct's messages waiting for its next session, oldest
// first, at most max.
func (r *Reader) Offline(ctx context.Context, acct string, max int) ([]archive.Entry, error) {
	if err := r.caughtUp(ctx); err != nil {
		return nil, err
	}
	rows, err := r.db.QueryContext(ctx, `SELECT at, pos, id, stanza FROM archive WHERE account = ? AND offline = 1
		ORDER BY at, pos LIMIT ?`, acct, max)
	if err != nil {
		return nil, fmt.Errorf("archive: offline: %w", err)
	}
	got, err := r.scan(rows)
	if err != nil {
		return nil, fmt.Errorf("archive: offline: %w", err)
	}
	got, _ = r.durable(got)
	out := make([]archive.Entry, len(got))
	for i, x := range got {
		out[i] = x.entry
	}
	return out, nil
}

// Has reports whether acct's archive holds an entry with ID id, durable
// or not: it is how a retried message is recognized.
//
// On a cluster it waits only for this node's own appends (ownBarrier), not
// for the whole log's head: it checks a sender's retry, whose computed ID
// holds the session's ID, and a session lives on one node (resumption
// too), so its earlier sends are this node's appends. That keeps a
// request to the log's leader off every message's path.
func (r *Reader) Has(ctx context.Context, acct, id string) (bool, error) {
	if err := wait(ctx, r.ownBarrier); err != nil {
		return false, err
	}
	var one int
	err := r.db.QueryRowContext(ctx, `SELECT 1 FROM archive WHERE account = ? AND id = ?`, acct, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
