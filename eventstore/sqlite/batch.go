package sqlite

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// batchTx is one group commit's transaction. It decides every append of
// the batch in Go first (expected versions, retries, hashes, positions),
// then writes all accepted events with a few multi-row statements: the
// per-statement cost of cgo and database/sql, not SQLite's own work, was
// what bounded throughput with one statement per event.
type batchTx struct {
	w       *writer
	tx      *sql.Tx
	careful bool                         // tip read and IDs looked up, not trusted from the cache
	flush   bool                         // a lazy writer records its heads in this batch
	start   int64                        // the log's tip position when the batch began
	tip     logTip                       // the last row, including this batch's
	pending map[string]head              // heads written by this batch
	inBatch map[ulid.ULID]event.Envelope // events accepted by this batch
	stored  map[ulid.ULID]event.Envelope // events of the batch's IDs already in the log
	rows    []event.Envelope             // to insert, in position order
	prev    []int64                      // rows[i]'s stream predecessor
	logHash [][]byte                     // rows[i]'s log chain hash
	// inlinePos: where this batch leaves each inline read model.
	inlinePos map[string]event.Position
	open      []event.Envelope // rows as the codec opens them, once asked (opened)
	catchUp   bool             // a CatchUpInline is in the batch
}

// logTip is the last row of the log: its position and log chain hash.
type logTip struct {
	pos  int64
	hash []byte
}

// logChain links each row to the one before it in position order, so that
// moving, removing or inserting a row anywhere in the log breaks the chain,
// even where the per-stream chains stay intact (two streams' events swapped).
func logChain(prev []byte, pos int64, hash []byte) []byte {
	var buf [32 + 8 + 32]byte
	b := append(buf[:0], prev...)
	b = binary.BigEndian.AppendUint64(b, uint64(pos))
	sum := sha256.Sum256(append(b, hash...))
	return sum[:]
}

// errCareful: the fast way met a stored ID or a taken position; the batch
// must be run again the careful way.
var errCareful = errors.New("sqlite: batch needs the careful way")

// Multi-row statements come in sizes 1, 2, 4 … rowsPerStatement (64 rows of
// 12 columns stay far below SQLite's limit on bound parameters): n rows are
// written by the binary decomposition of n, so a handful of statements
// prepared once serve every batch.
const rowsPerStatement = 64

// chunk returns the largest statement size that fits in n (n > 0).
func chunk(n int) int {
	c := rowsPerStatement
	for c > n {
		c /= 2
	}
	return c
}

const (
	eventCols      = `(position, id, stream, version, prev, type, schema, occurred_at, cause, data, hash, log_hash)`
	qTip           = `SELECT position, log_hash FROM events ORDER BY position DESC LIMIT 1`
	qHead          = `SELECT version, hash, position FROM streams WHERE stream = ?`
	qHeadsPosition = `SELECT value FROM store_meta WHERE key = 'heads_position'`
	qSetHeadsPos   = `UPDATE store_meta SET value = max(value, ?) WHERE key = 'heads_position'` // never back
	// qTail finds a stream's newest event after a position: the events a
	// lazy writer has not yet recorded in streams. It scans only the events
	// after heads_position.
	qTail = `SELECT version, hash, position FROM events WHERE position > ? AND stream = ? ORDER BY position DESC LIMIT 1`
	qMark = `INSERT INTO stream_marks (stream, version, position) VALUES (?, ?, ?)`
	// A head never moves back: a lazy writer's late flush must not undo a
	// newer head that another process wrote meanwhile.
	upsertHeadsTail = ` ON CONFLICT (stream) DO UPDATE SET version = excluded.version, hash = excluded.hash, position = excluded.position
		WHERE excluded.version > streams.version`
)

// The multi-row statements by size (index: log2 of the row count), built
// once: the writer looks one up per statement it runs.
var (
	qIDsBySize = bySize(func(n int) string {
		return `SELECT ` + columns + ` FROM events WHERE id IN (` + placeholders(n, 1) + `)`
	})
	qEventsBySize = bySize(func(n int) string {
		return `INSERT INTO events ` + eventCols + ` VALUES ` + placeholders(n, 12)
	})
	qHeadsBySize = bySize(func(n int) string {
		return `INSERT INTO streams (stream, version, hash, position) VALUES ` + placeholders(n, 4) + upsertHeadsTail
	})
)

func bySize(f func(n int) string) []string {
	var qs []string
	for n := 1; n <= rowsPerStatement; n *= 2 {
		qs = append(qs, f(n))
	}
	return qs
}

func qIDs(n int) string    { return qIDsBySize[bits.TrailingZeros(uint(n))] }
func qEvents(n int) string { return qEventsBySize[bits.TrailingZeros(uint(n))] }
func qHeads(n int) string  { return qHeadsBySize[bits.TrailingZeros(uint(n))] }

// batchQueries lists every statement a batch may run, for preparing.
func batchQueries() []string {
	qs := []string{qTip, qHead, qMark, qHeadsPosition, qSetHeadsPos, qTail}
	for n := 1; n <= rowsPerStatement; n *= 2 {
		qs = append(qs, qIDs(n), qEvents(n), qHeads(n))
	}
	return qs
}

func (b *batchTx) readTip(ctx context.Context) error {
	st, err := b.stmt(ctx, qTip)
	if err != nil {
		return err
	}
	err = st.QueryRowContext(ctx).Scan(&b.tip.pos, &b.tip.hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read the log's tip: %w", err)
	}
	return nil
}

// run decides and writes the batch and returns each append's result. A
// request refused by the rules gets its error in its result and writes
// nothing; a storage error is returned and fails the batch.
func (b *batchTx) run(ctx context.Context, batch []*appendReq) ([]appendResult, error) {
	n := 0
	for _, r := range batch {
		n += len(r.evs)
	}
	b.rows = make([]event.Envelope, 0, n)
	b.prev = make([]int64, 0, n)
	b.logHash = make([][]byte, 0, n)
	b.stored = make(map[ulid.ULID]event.Envelope)
	if b.careful {
		if err := b.lookUpIDs(ctx, batch); err != nil {
			return nil, err
		}
	}
	results := make([]appendResult, len(batch))
	for i, r := range batch {
		if r.catchUp {
			b.catchUp = true
			continue
		}
		evs, err := b.decide(ctx, r)
		if err != nil && !errors.Is(err, eventstore.ErrConflict) && !errors.Is(err, eventstore.ErrDuplicateID) {
			return nil, err // errCareful among them
		}
		results[i] = appendResult{evs, err}
	}
	if err := b.write(ctx); err != nil {
		return nil, err
	}
	if err := b.applyInline(ctx); err != nil {
		return nil, err
	}
	return results, nil
}

// lookUpIDs finds which of the batch's event IDs are already stored, with
// one query per rowsPerStatement IDs: a retry must be recognized, and
// asking SQLite up front is cheaper than undoing a failed insert.
func (b *batchTx) lookUpIDs(ctx context.Context, batch []*appendReq) error {
	var ids []any
	for _, r := range batch {
		for _, e := range r.evs {
			ids = append(ids, e.ID[:])
		}
	}
	for len(ids) > 0 {
		n := chunk(len(ids))
		st, err := b.stmt(ctx, qIDs(n))
		if err != nil {
			return err
		}
		rows, err := st.QueryContext(ctx, ids[:n]...)
		if err != nil {
			return fmt.Errorf("look up event ids: %w", err)
		}
		found, err := scanEvents(rows, 0)
		if err != nil {
			return err
		}
		for _, e := range found {
			b.stored[e.ID] = e
		}
		ids = ids[n:]
	}
	return nil
}

// tipIsOurs reports whether the log's last row is still the one this
// writer committed last, i.e. no other process has appended since.
func (b *batchTx) tipIsOurs(ctx context.Context) (bool, error) {
	ours := b.w.tip
	st, err := b.stmt(ctx, qTip)
	if err != nil {
		return false, err
	}
	var got logTip
	if err := st.QueryRowContext(ctx).Scan(&got.pos, &got.hash); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("read the log's tip: %w", err)
	}
	return got.pos == ours.pos && bytes.Equal(got.hash, ours.hash), nil
}

func (b *batchTx) head(ctx context.Context, stream string) (head, error) {
	if h, ok := b.pending[stream]; ok {
		return h, nil
	}
	if h, ok := b.w.heads[stream]; ok {
		return h, nil
	}
	var (
		h  head
		cp int64
	)
	// Order matters (see Store.ReadStream): the recorded position first,
	// then the head row, then the events after that position.
	if err := b.queryRow(ctx, qHeadsPosition, nil, &cp); err != nil {
		return h, fmt.Errorf("read heads position: %w", err)
	}
	if err := b.queryRow(ctx, qHead, []any{stream}, &h.version, &h.hash, &h.pos); err != nil {
		return h, fmt.Errorf("read head of %s: %w", stream, err)
	}
	var t head
	if err := b.queryRow(ctx, qTail, []any{max(cp, h.pos), stream}, &t.version, &t.hash, &t.pos); err != nil {
		return h, fmt.Errorf("read head of %s: %w", stream, err)
	}
	if t.version > h.version {
		h = t
	}
	return h, nil
}

// queryRow scans the first row of a prepared query into dest, leaving
// dest untouched if there is none.
func (b *batchTx) queryRow(ctx context.Context, q string, args []any, dest ...any) error {
	st, err := b.stmt(ctx, q)
	if err != nil {
		return err
	}
	err = st.QueryRowContext(ctx, args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	return err
}

// decide accepts r's events (assigning versions, positions and hashes) or
// refuses them. A retry of an append already stored, or accepted earlier
// in this batch, returns the stored events whatever r expected.
func (b *batchTx) decide(ctx context.Context, r *appendReq) ([]event.Envelope, error) {
	if evs, known, err := b.retried(r); known {
		return evs, err
	}
	h, err := b.head(ctx, r.stream)
	if err != nil {
		return nil, err
	}
	if r.expected != eventstore.Any && uint64(r.expected) != h.version {
		if !b.careful {
			// The cached head may be stale if another process appended:
			// only a tip that is still ours proves the conflict real.
			if fresh, err := b.tipIsOurs(ctx); err != nil || !fresh {
				return nil, cmp.Or(err, errCareful)
			}
			// A retry of a stored append usually expects the version it
			// was first written at: look its IDs up before calling it a
			// conflict.
			if err := b.lookUpIDs(ctx, []*appendReq{r}); err != nil {
				return nil, err
			}
			if evs, known, err := b.retried(r); known {
				return evs, err
			}
		}
		return nil, fmt.Errorf("%w: stream %s is at version %d, not %d", eventstore.ErrConflict, r.stream, h.version, r.expected)
	}
	out := make([]event.Envelope, len(r.evs))
	for i, e := range r.evs {
		pos := b.tip.pos + 1
		e.Version = h.version + 1
		e.Hash = event.Chain(h.hash, e)
		e.Position = event.Position{Commit: uint64(pos), Prepare: uint64(pos)}
		lh := logChain(b.tip.hash, pos, e.Hash)
		b.rows = append(b.rows, e)
		b.prev = append(b.prev, h.pos)
		b.logHash = append(b.logHash, lh)
		b.inBatch[e.ID] = e
		out[i] = e
		h, b.tip = head{e.Version, e.Hash, pos}, logTip{pos, lh}
	}
	b.pending[r.stream] = h
	return out, nil
}

// retried reports whether any of r's IDs is already stored or accepted. If
// so, r is a retry when all its IDs are, in its stream, at consecutive
// versions: it gets those events back; otherwise ErrDuplicateID.
func (b *batchTx) retried(r *appendReq) ([]event.Envelope, bool, error) {
	lookup := func(id ulid.ULID) (event.Envelope, bool) {
		if e, ok := b.inBatch[id]; ok {
			return e, true
		}
		e, ok := b.stored[id]
		return e, ok
	}
	any_ := false
	for _, e := range r.evs {
		if _, ok := lookup(e.ID); ok {
			any_ = true
			break
		}
	}
	if !any_ {
		return nil, false, nil
	}
	out := make([]event.Envelope, len(r.evs))
	for i, e := range r.evs {
		got, ok := lookup(e.ID)
		switch {
		case !ok:
			return nil, true, fmt.Errorf("%w: %s was stored without %s", eventstore.ErrDuplicateID, r.evs[0].ID, e.ID)
		case got.Stream != r.stream:
			return nil, true, fmt.Errorf("%w: %s is in stream %s", eventstore.ErrDuplicateID, e.ID, got.Stream)
		case i > 0 && got.Version != out[i-1].Version+1:
			return nil, true, fmt.Errorf("%w: %s is not stored right after %s", eventstore.ErrDuplicateID, e.ID, r.evs[i-1].ID)
		}
		out[i] = got
	}
	return out, true, nil
}

// write inserts the accepted events, their stream marks and the new heads.
func (b *batchTx) write(ctx context.Context) error {
	for i, n := 0, 0; i < len(b.rows); i += n {
		n = chunk(len(b.rows) - i)
		args := make([]any, 0, 12*n)
		for j := i; j < i+n; j++ {
			e := b.rows[j]
			args = append(args, int64(e.Position.Commit), e.ID[:], e.Stream, e.Version, b.prev[j], string(e.Type),
				e.Schema, e.OccurredAt.UnixNano(), e.Cause, []byte(e.Data), e.Hash, b.logHash[j])
		}
		if err := b.exec(ctx, qEvents(n), args); err != nil {
			if !b.careful && (isUnique(err, "events.id") || isUnique(err, "events.position")) {
				return errCareful
			}
			return fmt.Errorf("insert events: %w", err)
		}
	}
	for _, e := range b.rows {
		if e.Version%MarkEvery == 0 {
			if err := b.exec(ctx, qMark, []any{e.Stream, e.Version, int64(e.Position.Commit)}); err != nil {
				return fmt.Errorf("insert stream mark: %w", err)
			}
		}
	}
	return b.writeHeads(ctx)
}

// writeHeads records stream heads: with an eager writer, this batch's, in
// every batch; with a lazy one, every head moved since its last flush,
// every few batches (see writer.flushDue). It moves heads_position only
// when the streams table is then complete up to the new tip.
func (b *batchTx) writeHeads(ctx context.Context) error {
	if b.w.s.opts.LazyHeads && !b.flush {
		return nil
	}
	rows := make([]any, 0, 4*(len(b.pending)+len(b.w.dirty)))
	for stream, h := range b.w.dirty {
		if _, later := b.pending[stream]; !later {
			rows = append(rows, stream, h.version, h.hash, h.pos)
		}
	}
	for stream, h := range b.pending {
		rows = append(rows, stream, h.version, h.hash, h.pos)
	}
	for len(rows) > 0 {
		n := chunk(len(rows) / 4)
		if err := b.exec(ctx, qHeads(n), rows[:4*n]); err != nil {
			return fmt.Errorf("write stream heads: %w", err)
		}
		rows = rows[4*n:]
	}
	var cp int64
	if err := b.queryRow(ctx, qHeadsPosition, nil, &cp); err != nil {
		return fmt.Errorf("read heads position: %w", err)
	}
	// A lazy writer has now written every head it owes. An eager one knows
	// only its own: if the table was complete up to where this batch
	// began, it is complete up to where it ends.
	if b.w.s.opts.LazyHeads || cp == b.start {
		if err := b.exec(ctx, qSetHeadsPos, []any{b.tip.pos}); err != nil {
			return fmt.Errorf("write heads position: %w", err)
		}
	}
	return nil
}

func (b *batchTx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	st, ok := b.w.stmts[query]
	if !ok {
		return nil, fmt.Errorf("sqlite: statement not prepared: %s", query)
	}
	return b.tx.StmtContext(ctx, st), nil
}

func (b *batchTx) exec(ctx context.Context, query string, args []any) error {
	st, err := b.stmt(ctx, query)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx, args...)
	return err
}

// placeholders returns n groups of k question marks: "(?, ?), (?, ?)".
func placeholders(n, k int) string {
	group := "(" + strings.Repeat("?, ", k-1) + "?)"
	if k == 1 {
		return strings.Repeat("?, ", n-1) + "?"
	}
	return strings.Repeat(group+", ", n-1) + group
}
