package archive

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/mirror"
	"annals.im/annals/domain/room"
	"annals.im/annals/domain/wellformed"
)

// NameStays is the read model's name with Projection.Stays.
//
// v5: a room's message is one row, in the room's archive; an account's
// groupchat entries are the rows of its rooms during its stays in them.
//
// v7: the messages of rooms this server mirrors (mirrors.go).
// v9: a room message's author, and retractions as tombstones (retract.go).
// v11: 1:1 messages' authors and ids, and their retractions.
const NameStays = "archive/v11"

// The model of Projection.Stays. A room's message is one row (account is
// the room). archive_stays holds each account's stays in each room: from
// the position of its entry (since, excluded) to that of its exit (until,
// excluded; open: the largest integer), each with the archive's clock
// then (since_at, until_at), so that a stay is a range of the archive's
// (at, pos) index. An account's archive is its own rows (1:1) and, for
// each stay, the room's rows inside it, merged in (at, pos) order: what
// the copies of Projection{} hold, row for row, under the same IDs.
//
// One clock (archive_clock) stamps every row: an event's time, or the
// latest stamp if that is later, so that stamps never decrease in log
// order across the whole archive, and so in any account's merged view.
// Projection{} stamps per account instead; the two agree wherever event
// times do not decrease in log order (see TestStaysClock).
//
// A destroyed room's rows and stays are moved to a key of their own
// ("<room> <position>", which no JID can be), so that the room starts
// again empty while its occupants keep their entries; rows no stay holds
// any more are deleted, there and when an account is.
const staysSchema = `
	CREATE TABLE IF NOT EXISTS archive_stays (
		account  TEXT NOT NULL,
		room     TEXT NOT NULL,    -- the room's archive: its JID, or a destroyed room's key
		since    INTEGER NOT NULL, -- log position of the entry (rows after it)
		since_at INTEGER NOT NULL, -- the clock then
		until    INTEGER NOT NULL, -- log position of the exit (rows before it); open: 9223372036854775807
		until_at INTEGER NOT NULL,
		PRIMARY KEY (account, room, since)
	) WITHOUT ROWID;
	CREATE INDEX IF NOT EXISTS archive_stays_open ON archive_stays (room, account) WHERE until = 9223372036854775807;
	CREATE INDEX IF NOT EXISTS archive_stays_room ON archive_stays (room, since);
	CREATE TABLE IF NOT EXISTS archive_clock (
		one INTEGER PRIMARY KEY CHECK (one = 0),
		at  INTEGER NOT NULL -- the latest stamp of a row
	);
	INSERT INTO archive_clock (one, at) VALUES (0, -9223372036854775808) ON CONFLICT DO NOTHING;`

// openEnd is the until of a stay not ended; a literal in the SQL, so that
// the partial index archive_stays_open serves it.
const openEnd = "9223372036854775807"

// Reader returns a reader of the archive p keeps in db.
func (p Projection) Reader(db *sql.DB, unsynced func() int64) *Reader {
	r := NewReader(db, unsynced)
	r.stays = p.Stays
	return r
}

func applyStays(ctx context.Context, tx *sql.Tx, e event.Envelope) error {
	switch e.Type {
	case archive.TypeMessageSent:
		var d archive.MessageSent
		if err := e.Decode(archive.Schema, &d); err != nil {
			return err
		}
		if !d.WellFormed {
			if d.Stanza = wellformed.Salvage(d.Stanza); d.Stanza == "" {
				return nil
			}
		}
		if d.SenderID == "" && d.RecipientID == "" {
			return nil
		}
		if err := tick(ctx, tx, e); err != nil || d.Erased {
			return err // an erased message moves the clock as it did, and adds no row
		}
		for _, x := range chatRows(d) {
			if err := insertClocked(ctx, tx, e, x); err != nil {
				return err
			}
		}
		return retractChat(ctx, tx, e, d)
	case room.TypeJoined:
		var d room.Joined
		if err := e.Decode(room.Schema, &d); err != nil {
			return err
		}
		return stayBegins(ctx, tx, e, room.JIDOf(e.Stream), d.Account)
	case room.TypeLeft:
		var d room.Left
		if err := e.Decode(room.Schema, &d); err != nil {
			return err
		}
		return stayEnds(ctx, tx, e, room.JIDOf(e.Stream), d.Account)
	case room.TypeDestroyed:
		return destroyStays(ctx, tx, e)
	case room.TypeMessagePosted:
		var d room.MessagePosted
		if err := e.Decode(room.Schema, &d); err != nil {
			return err
		}
		if d.Erased {
			return tick(ctx, tx, e)
		}
		if !d.WellFormed {
			if d.Stanza = wellformed.Salvage(d.Stanza); d.Stanza == "" {
				return nil
			}
		}
		return roomRow(ctx, tx, e, room.JIDOf(e.Stream), d.ID, d.Nick, d.Account, d.Stanza)
	case room.TypeMessageRetracted:
		return retract(ctx, tx, e)
	case mirror.TypeApplied:
		return applyMirror(ctx, tx, e, true)
	case archive.TypeOfflineDelivered:
		return offlineDelivered(ctx, tx, e)
	case account.TypeDeleted:
		return deleteStays(ctx, tx, e)
	case account.TypeContentErased, archive.TypeExpired:
		return forget(ctx, tx, e)
	}
	return nil
}

// stayBegins and stayEnds keep acct's stays in room r, at e.
func stayBegins(ctx context.Context, tx *sql.Tx, e event.Envelope, r, acct string) error {
	// A second entry without an exit (Projection{}'s ON CONFLICT) changes nothing.
	_, err := tx.ExecContext(ctx, `INSERT INTO archive_stays (account, room, since, since_at, until, until_at)
		SELECT ?1, ?2, ?3, c.at, `+openEnd+`, `+openEnd+` FROM archive_clock c
		WHERE NOT EXISTS (SELECT 1 FROM archive_stays WHERE room = ?2 AND account = ?1 AND until = `+openEnd+`)`,
		acct, r, int64(e.Position.Commit))
	return err
}

func stayEnds(ctx context.Context, tx *sql.Tx, e event.Envelope, r, acct string) error {
	_, err := tx.ExecContext(ctx, `UPDATE archive_stays SET until = ?3, until_at = (SELECT at FROM archive_clock)
		WHERE room = ?1 AND account = ?2 AND until = `+openEnd, r, acct, int64(e.Position.Commit))
	return err
}

// roomRow is a room's message (archive ID id, said by nick), once, in
// the room's archive.
func roomRow(ctx context.Context, tx *sql.Tx, e event.Envelope, r, id, nick, author, stanza string) error {
	if err := tick(ctx, tx, e); err != nil {
		return err
	}
	return insertClocked(ctx, tx, e, row{acct: r, id: id, with: withNick(r, nick), groupchat: true, stanza: stanza, author: author})
}

// tick moves the clock to e's time if that is later.
func tick(ctx context.Context, tx *sql.Tx, e event.Envelope) error {
	_, err := tx.ExecContext(ctx, `UPDATE archive_clock SET at = max(at, ?)`, e.OccurredAt.UnixNano())
	return err
}

// insertClocked adds a row stamped with the clock (after tick).
func insertClocked(ctx context.Context, tx *sql.Tx, e event.Envelope, x row) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO archive (account, at, pos, id, with_bare, with_full, offline, groupchat, stanza, author, msg_id)
		VALUES (?1, (SELECT at FROM archive_clock), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING`,
		x.acct, int64(e.Position.Commit), x.id, bare(x.with), x.with, x.offline, x.groupchat, x.stanza, x.author, x.msgID)
	if err != nil {
		return fmt.Errorf("archive: insert %s into %s: %w", x.id, x.acct, err)
	}
	return nil
}

// destroyStays ends the stays in a destroyed room and moves its rows and
// stays to a key of their own; the room's archive is empty again, as with
// Projection{}, and each occupant keeps what it was there for.
func destroyStays(ctx context.Context, tx *sql.Tx, e event.Envelope) error {
	r := room.JIDOf(e.Stream)
	pos := int64(e.Position.Commit)
	key := r + " " + strconv.FormatInt(pos, 10)
	for _, q := range []string{
		`UPDATE archive_stays SET until = ?3, until_at = (SELECT at FROM archive_clock) WHERE room = ?1 AND until = ` + openEnd,
		`UPDATE archive SET account = ?2 WHERE account = ?1`,
		`UPDATE archive_stays SET room = ?2 WHERE room = ?1`,
	} {
		if _, err := tx.ExecContext(ctx, q, r, key, pos); err != nil {
			return fmt.Errorf("archive: destroy %s: %w", r, err)
		}
	}
	return sweep(ctx, tx, key)
}

// deleteStays forgets a deleted account's archive, as Projection{} does:
// its rows and the stays it ended go; a stay still open (the account
// leaves its rooms after) goes on from here, as its copies would.
func deleteStays(ctx context.Context, tx *sql.Tx, e event.Envelope) error {
	acct := account.JIDOf(e.Stream)
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT room FROM archive_stays WHERE account = ? AND instr(room, ' ') > 0`, acct)
	if err != nil {
		return err
	}
	var gone []string // destroyed rooms' keys, whose rows may be held by no one now
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return err
		}
		gone = append(gone, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, q := range []string{
		`DELETE FROM archive WHERE account = ?1`,
		`DELETE FROM archive_stays WHERE account = ?1 AND until != ` + openEnd,
		`UPDATE archive_stays SET since = ?2, since_at = (SELECT at FROM archive_clock) WHERE account = ?1`,
	} {
		if _, err := tx.ExecContext(ctx, q, acct, int64(e.Position.Commit)); err != nil {
			return fmt.Errorf("archive: delete %s: %w", acct, err)
		}
	}
	for _, k := range gone {
		if err := sweep(ctx, tx, k); err != nil {
			return err
		}
	}
	return nil
}

// sweep deletes the rows of a destroyed room's key that no stay holds:
// those outside the union of its stays, gap by gap.
func sweep(ctx context.Context, tx *sql.Tx, key string) error {
	rows, err := tx.QueryContext(ctx, `SELECT since, since_at, until, until_at FROM archive_stays WHERE room = ? ORDER BY since`, key)
	if err != nil {
		return err
	}
	type edge struct{ at, pos int64 }
	after := func(x, y edge) bool { return x.at > y.at || (x.at == y.at && x.pos > y.pos) }
	// Rows strictly between a gap's edges are held by no stay. No row
	// sits on an edge: edges are entries' and exits' positions.
	var gaps [][2]edge
	end := edge{math.MinInt64, math.MinInt64} // where the stays read so far end, at the latest
	for rows.Next() {
		var from, to edge
		if err := rows.Scan(&from.pos, &from.at, &to.pos, &to.at); err != nil {
			rows.Close()
			return err
		}
		if after(from, end) {
			gaps = append(gaps, [2]edge{end, from})
		}
		if after(to, end) {
			end = to
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	gaps = append(gaps, [2]edge{end, {math.MaxInt64, math.MaxInt64}})
	for _, g := range gaps {
		if _, err := tx.ExecContext(ctx, `DELETE FROM archive WHERE account = ? AND (at, pos) > (?, ?) AND (at, pos) < (?, ?)`,
			key, g[0].at, g[0].pos, g[1].at, g[1].pos); err != nil {
			return fmt.Errorf("archive: sweep %s: %w", key, err)
		}
	}
	return nil
}

// roomOf is the JID of the room whose archive is key.
func roomOf(key string) string {
	r, _, _ := strings.Cut(key, " ")
	return r
}

// stayed is a room archive an account has stays in, and the stamps of
// the first entry and the last exit: its rows there lie between.
type stayed struct {
	key      string
	from, to int64
}

// roomBatch is how many of an account's rooms a query lists first: those
// whose stays end last (begin first, paging forward). The others are
// listed only if the page reaches back that far, so that an account that
// was in many rooms once pays for them only when it reads that far.
const roomBatch = 16

// roomsOf lists the room archives acct has stays in, in the direction of
// paging by where their stays end (desc) or begin, from offset, at most
// limit (-1: all): every one, or those of the room with bare JID with
// (its own and those it had before it was destroyed: "<room> <position>",
// which sort after it and before "<room>!").
func roomsOf(ctx context.Context, db querier, acct, with string, desc bool, offset, limit int) ([]stayed, error) {
	q, args := `SELECT room, min(since_at) AS first, max(until_at) AS last FROM archive_stays WHERE account = ?`, []any{acct}
	if with != "" {
		q, args = q+` AND room >= ? AND room < ?`, append(args, with, with+"!")
	}
	order := ` GROUP BY room ORDER BY first, room`
	if desc {
		order = ` GROUP BY room ORDER BY last DESC, room`
	}
	rows, err := db.QueryContext(ctx, q+order+` LIMIT ? OFFSET ?`, append(args, limit, offset)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []stayed
	for rows.Next() {
		var x stayed
		if err := rows.Scan(&x.key, &x.from, &x.to); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// locateStays finds an entry of acct's archive: its own row, or a room's
// row inside one of its stays.
func (r *Reader) locateStays(ctx context.Context, db querier, acct, id string) (at, pos int64, err error) {
	at, pos, err = r.locate(ctx, db, acct, id)
	if !errors.Is(err, archive.ErrItemNotFound) {
		return at, pos, err
	}
	// The stay that could hold a row is the last one to begin before it.
	err = db.QueryRowContext(ctx, `SELECT a.at, a.pos FROM archive a
		WHERE a.account IN (SELECT room FROM archive_stays WHERE account = ?1) AND a.id = ?2
		AND (SELECT s.until FROM archive_stays s WHERE s.account = ?1 AND s.room = a.account AND s.since < a.pos
			ORDER BY s.since DESC LIMIT 1) > a.pos
		LIMIT 1`, acct, id).Scan(&at, &pos)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && r.unsynced() != 0 && pos >= r.unsynced()) {
		return 0, 0, fmt.Errorf("%w: %q", archive.ErrItemNotFound, id)
	}
	return at, pos, err
}

// arm is one ordered part of an account's archive: its own rows, or one
// room's rows during its stays there.
type arm struct {
	sql  string
	args []any
	// Stamps of the arm's rows are at least from and at most to: a merge
	// need not open it before its other arms reach there.
	from, to int64
}

// arms returns the parts of acct's archive that q reads, each selecting
// cols (at, pos, id and a stanza) in the direction of paging, at most n,
// with where and args from filters (the stamp as +at) and their span; and
// rest, non-nil when more rooms remain to list, to list them.
//
// Each arm's index range is the span's stamps (and a stay's): the exact
// bounds are written +at, so that SQLite does not take one of them for
// the range instead and walk a room's rows outside the stay.
func (r *Reader) arms(ctx context.Context, db querier, acct string, q archive.Query, cols string, where []string, args []any, sp span, n int) (out []arm, rest func() ([]arm, error), err error) {
	batch := roomBatch
	if r.roomBatch > 0 {
		batch = r.roomBatch
	}
	dir := ""
	if q.Last {
		dir = " DESC"
	}
	cond := ""
	if len(where) > 0 {
		cond = " AND " + strings.Join(where, " AND ")
	}
	var keys []stayed
	if q.Groupchat {
		if keys, err = roomsOf(ctx, db, acct, bare(q.With), q.Last, 0, batch+1); err != nil {
			return nil, nil, err
		}
	}
	// An account's own rows are 1:1 (only a room's are groupchat): saying
	// so lets with= use the index of conversations.
	own := "account = ?"
	if !q.Groupchat || len(keys) > 0 {
		own += " AND groupchat = 0"
	}
	from := "archive a"
	if len(q.IDs) > 0 {
		from += " INDEXED BY archive_ids" // a few rows by ID, not a walk of the account's
	}
	out = []arm{{`SELECT ` + cols + ` FROM ` + from + ` WHERE ` + own + ` AND at >= ? AND at <= ?` + cond +
		` ORDER BY at` + dir + `, pos` + dir + ` LIMIT ?`,
		append(append([]any{acct, sp.lo, sp.hi}, args...), n), math.MinInt64, math.MaxInt64}}
	if len(keys) > 0 && len(q.IDs) > 0 {
		// A few rows by ID, from any of the account's rooms, each in a
		// stay if the last stay to begin before it has not ended.
		return append(out, arm{`SELECT ` + cols + ` FROM archive a INDEXED BY archive_ids
			WHERE a.account IN (SELECT room FROM archive_stays WHERE account = ?)` + cond + `
			AND (SELECT s.until FROM archive_stays s WHERE s.account = ? AND s.room = a.account AND s.since < a.pos
				ORDER BY s.since DESC LIMIT 1) > a.pos
			ORDER BY at` + dir + `, pos` + dir + ` LIMIT ?`,
			append(append([]any{acct}, args...), acct, n), math.MinInt64, math.MaxInt64}), nil, nil
	}
	// Stays are disjoint and ordered: one stay after another, each walked
	// along the index, is the room's rows in order.
	stays := `SELECT ` + cols + ` FROM archive_stays s CROSS JOIN archive a
		WHERE s.account = ?1 AND s.room = ?2 AND s.until_at >= ?3 AND s.since_at <= ?4
		AND a.account = s.room AND a.at >= max(s.since_at, ?3) AND a.at <= min(s.until_at, ?4)
		AND (+a.at, a.pos) > (s.since_at, s.since) AND (+a.at, a.pos) < (s.until_at, s.until)` + cond +
		` ORDER BY s.since` + dir + `, a.at` + dir + `, a.pos` + dir + ` LIMIT ?`
	add := func(out []arm, keys []stayed) []arm {
		for _, x := range keys {
			if q.With != "" && roomOf(x.key) != bare(q.With) || x.to < sp.lo || x.from > sp.hi {
				continue
			}
			out = append(out, arm{stays, append(append([]any{acct, x.key, sp.lo, sp.hi}, args...), n), x.from, x.to})
		}
		return out
	}
	if len(keys) > batch {
		keys = keys[:batch]
		rest = func() ([]arm, error) {
			more, err := roomsOf(ctx, db, acct, bare(q.With), q.Last, batch, -1)
			return add(nil, more), err
		}
	}
	return add(out, keys), rest, nil
}

// merged reads the arms together, a row at a time from each, and
// returns their first n rows in the direction of paging, or fewer up to
// where their stanzas would pass maxBytes (0: no bound), keeping at least
// one; cut reports that it stopped there, as scanBytes does. An arm is
// opened only once the rows taken reach its stamps: of an account's many
// rooms, a page of recent entries reads the few it was in lately.
func merged(ctx context.Context, db querier, arms []arm, rest func() ([]arm, error), desc bool, n, maxBytes int) (out []found, cut bool, err error) {
	type cursor struct {
		rows *sql.Rows
		head found
		ok   bool
	}
	var cs []*cursor
	defer func() {
		for _, c := range cs {
			c.rows.Close()
		}
	}()
	next := func(c *cursor) error {
		if c.ok = c.rows.Next(); !c.ok {
			return c.rows.Err()
		}
		c.head = found{}
		return c.rows.Scan(&c.head.at, &c.head.pos, &c.head.entry.ID, &c.head.entry.Stanza)
	}
	// edge is where an arm's rows begin in the direction of paging.
	edge := func(a arm) int64 {
		if desc {
			return -a.to
		}
		return a.from
	}
	pending := slices.SortedFunc(slices.Values(arms), func(a, b arm) int { return cmp.Compare(edge(a), edge(b)) })
	before := func(x, y found) bool {
		if desc {
			x, y = y, x
		}
		return x.at < y.at || (x.at == y.at && x.pos < y.pos)
	}
	total := 0
	for len(out) < n {
		var best *cursor
		for {
			for _, c := range cs {
				if c.ok && (best == nil || before(c.head, best.head)) {
					best = c
				}
			}
			if len(pending) == 0 && rest != nil {
				more, err := rest()
				if err != nil {
					return nil, false, err
				}
				pending, rest = slices.SortedFunc(slices.Values(more), func(a, b arm) int { return cmp.Compare(edge(a), edge(b)) }), nil
			}
			// The next arm may hold a row before best, or tie its stamp.
			if len(pending) == 0 || best != nil && edge(pending[0]) > edge(arm{from: best.head.at, to: best.head.at}) {
				break
			}
			rows, err := db.QueryContext(ctx, pending[0].sql, pending[0].args...)
			if err != nil {
				return nil, false, err
			}
			pending = pending[1:]
			c := &cursor{rows: rows}
			cs = append(cs, c)
			if err := next(c); err != nil {
				return nil, false, err
			}
			best = nil
		}
		if best == nil {
			break
		}
		x := best.head
		if total += len(x.entry.Stanza); maxBytes > 0 && total > maxBytes && len(out) > 0 {
			return out, true, nil
		}
		x.entry.At = time.Unix(0, x.at).UTC()
		out = append(out, x)
		if err := next(best); err != nil {
			return nil, false, err
		}
	}
	return out, false, nil
}

// inTx runs f in a read transaction: every arm of a query, and the IDs
// it names, read one state of the archive. The store's connections begin
// their transactions IMMEDIATE (a write lock, see eventstore/sqlite); a
// plain BEGIN here is a read lock, taken at the first read.
func (r *Reader) inTx(ctx context.Context, f func(db querier) error) error {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN`); err != nil {
		return err
	}
	// Ended whatever ctx says, so the connection goes back to the pool
	// outside a transaction.
	defer conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
	return f(conn)
}

func (r *Reader) queryStays(ctx context.Context, acct string, q archive.Query) (page archive.Page, err error) {
	err = r.inTx(ctx, func(tx querier) error {
		where, args, sp, err := filters(ctx, q, func(ctx context.Context, id string) (int64, int64, error) {
			return r.locateStays(ctx, tx, acct, id)
		}, "+at")
		if err != nil {
			return err
		}
		arms, rest, err := r.arms(ctx, tx, acct, q, "a.at, a.pos, a.id, a.stanza", where, args, sp, q.Limit()+1)
		if err != nil {
			return fmt.Errorf("archive: query: %w", err)
		}
		got, cut, err := merged(ctx, tx, arms, rest, q.Last, q.Limit()+1, q.MaxBytes)
		if err != nil {
			return fmt.Errorf("archive: query: %w", err)
		}
		page = r.page(q, got, cut)
		return nil
	})
	return page, err
}

func (r *Reader) boundsStays(ctx context.Context, acct string) (first, last archive.Entry, ok bool, err error) {
	err = r.inTx(ctx, func(tx querier) error {
		end := func(last bool) (archive.Entry, bool, error) {
			q := archive.Query{Groupchat: true, Last: last}
			// A few rows, in case the newest are not durable yet.
			arms, rest, err := r.arms(ctx, tx, acct, q, "a.at, a.pos, a.id, ''", nil, nil, span{math.MinInt64, math.MaxInt64}, 64)
			if err != nil {
				return archive.Entry{}, false, err
			}
			got, _, err := merged(ctx, tx, arms, rest, last, 64, 0)
			if err != nil {
				return archive.Entry{}, false, err
			}
			if got, _ = r.durable(got); len(got) == 0 {
				return archive.Entry{}, false, nil
			}
			return got[0].entry, true, nil
		}
		if first, ok, err = end(false); err != nil || !ok {
			return err
		}
		last, ok, err = end(true)
		return err
	})
	return first, last, ok, err
}
