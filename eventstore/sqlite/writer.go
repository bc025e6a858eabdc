package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// writer is the one goroutine that writes events. It takes every append
// waiting in the queue (up to MaxBatch events), applies them in one
// transaction and commits once, so concurrent appenders share one fsync.
type writer struct {
	s                                   *Store
	heads                               map[string]head // cache of committed stream heads
	tip                                 logTip          // the last row this writer committed
	syncs                               chan committed  // to the syncer; nil with DurabilityNormal
	syncerDone                          chan struct{}
	selectHead, insertEvent, upsertHead *sql.Stmt
	selectByID, selectTip               *sql.Stmt
}

type head struct {
	version uint64
	hash    []byte
}

func newWriter(ctx context.Context, s *Store) (*writer, error) {
	w := &writer{s: s, heads: make(map[string]head)}
	if s.opts.Durability == DurabilityFull {
		w.syncs = make(chan committed, 1024)
		w.syncerDone = make(chan struct{})
	}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&w.selectHead, `SELECT version, hash FROM streams WHERE stream = ?`},
		{&w.insertEvent, `INSERT INTO events (position, id, stream, version, type, schema, occurred_at, cause, data, hash, log_hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&w.selectTip, `SELECT position, log_hash FROM events ORDER BY position DESC LIMIT 1`},
		{&w.upsertHead, `INSERT INTO streams (stream, version, hash, position) VALUES (?, ?, ?, ?)
			ON CONFLICT (stream) DO UPDATE SET version = excluded.version, hash = excluded.hash, position = excluded.position`},
		{&w.selectByID, `SELECT ` + columns + ` FROM events WHERE id = ?`},
	} {
		st, err := s.write.PrepareContext(ctx, p.query)
		if err != nil {
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
		*p.dst = st
	}
	return w, nil
}

func (w *writer) run() {
	defer close(w.s.exited)
	if w.syncs != nil {
		go w.syncer()
		defer func() { close(w.syncs); <-w.syncerDone }()
	}
	for {
		select {
		case <-w.s.done:
			w.failQueued()
			return
		case r := <-w.s.queue:
			batch, n := []*appendReq{r}, len(r.evs)
		more:
			for n < w.s.opts.MaxBatch {
				select {
				case r := <-w.s.queue:
					batch = append(batch, r)
					n += len(r.evs)
				default:
					break more
				}
			}
			w.commit(batch)
		}
	}
}

func (w *writer) failQueued() {
	for {
		select {
		case r := <-w.s.queue:
			r.result <- appendResult{err: eventstore.ErrClosed}
		default:
			return
		}
	}
}

// committed is a batch whose transaction committed, waiting for the WAL
// fsync that makes it durable before its appenders hear back.
type committed struct {
	batch   []*appendReq
	results []appendResult
}

// commit applies batch in one transaction. A request refused by the rules
// (conflict, duplicate ID) leaves no trace in the transaction and does not
// affect the others; a storage error fails the whole batch.
//
// With DurabilityFull the transaction commits without fsync and the batch
// goes to the syncer, which fsyncs the WAL and only then answers the
// appenders and wakes subscribers. Meanwhile this goroutine already builds
// the next batch: the fsync of one batch overlaps the work of the next.
func (w *writer) commit(batch []*appendReq) {
	if err := w.s.failure(); err != nil {
		for _, r := range batch {
			r.result <- appendResult{err: err}
		}
		return
	}
	results, err := w.apply(batch)
	if err != nil {
		w.s.opts.Log.Error("event store commit failed", "err", err, "appends", len(batch))
		err = fmt.Errorf("sqlite: commit: %w", err)
		for _, r := range batch {
			r.result <- appendResult{err: err}
		}
		return
	}
	if w.syncs == nil {
		w.s.release(batch, results)
		return
	}
	w.syncs <- committed{batch, results}
}

func (w *writer) apply(batch []*appendReq) (results []appendResult, err error) {
	ctx := context.Background()
	tx, err := w.s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
			// What the cache holds may include this batch's heads: forget it.
			w.heads, w.tip = make(map[string]head), logTip{}
		}
	}()
	st := txStmts{
		w:           w,
		selectHead:  tx.StmtContext(ctx, w.selectHead),
		insertEvent: tx.StmtContext(ctx, w.insertEvent),
		upsertHead:  tx.StmtContext(ctx, w.upsertHead),
		selectByID:  tx.StmtContext(ctx, w.selectByID),
		tx:          tx,
		pending:     make(map[string]head),
	}
	// The log's tip is read inside the write transaction. If it is not the
	// one this writer left, another process appended: the cached stream
	// heads may be stale, so drop them.
	err = tx.StmtContext(ctx, w.selectTip).QueryRowContext(ctx).Scan(&st.tip.pos, &st.tip.hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read the log's tip: %w", err)
	}
	first := st.tip.pos + 1 // of this batch's events, if it writes any
	if st.tip.pos != w.tip.pos || !bytes.Equal(st.tip.hash, w.tip.hash) || len(w.heads) > maxCachedHeads {
		w.heads = make(map[string]head)
	}
	results = make([]appendResult, len(batch))
	for i, r := range batch {
		evs, err := st.apply(ctx, r)
		if err != nil && !errors.Is(err, eventstore.ErrConflict) && !errors.Is(err, eventstore.ErrDuplicateID) {
			return nil, err
		}
		results[i] = appendResult{evs, err}
	}
	if st.tip.pos >= first && w.syncs != nil {
		w.s.markUnsynced(first)
	}
	if err := tx.Commit(); err != nil {
		if st.tip.pos >= first && w.syncs != nil {
			w.s.unmarkLast()
		}
		return nil, err
	}
	for stream, h := range st.pending {
		w.heads[stream] = h
	}
	w.tip = st.tip
	return results, nil
}

// maxCachedHeads bounds the stream-head cache; past it the cache starts over.
const maxCachedHeads = 1 << 17

// syncer fsyncs the WAL for committed batches, as many at once as have
// piled up, then answers their appenders in commit order.
func (w *writer) syncer() {
	defer close(w.syncerDone)
	var wal *os.File
	defer func() {
		if wal != nil {
			wal.Close()
		}
	}()
	for c := range w.syncs {
		done := []committed{c}
	more:
		for {
			select {
			case c, ok := <-w.syncs:
				if !ok {
					break more
				}
				done = append(done, c)
			default:
				break more
			}
		}
		err := w.s.failure()
		if err == nil {
			if wal == nil {
				wal, err = os.OpenFile(w.s.path+"-wal", os.O_RDWR, 0)
			}
			if err == nil {
				err = wal.Sync()
			}
			if err != nil {
				// After a failed fsync the kernel may have dropped the dirty
				// pages: nothing after this point can be promised durable.
				err = w.s.fail(fmt.Errorf("sqlite: fsync %s-wal: %w", w.s.path, err))
			}
		}
		w.s.synced(len(done))
		for _, c := range done {
			if err != nil {
				for _, r := range c.batch {
					r.result <- appendResult{err: err}
				}
				continue
			}
			w.s.release(c.batch, c.results)
		}
	}
}

type txStmts struct {
	w                                               *writer
	tx                                              *sql.Tx
	selectHead, insertEvent, upsertHead, selectByID *sql.Stmt
	tip                                             logTip          // the last row written, in this transaction
	pending                                         map[string]head // heads written in this transaction
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
	h := sha256.New()
	h.Write(prev)
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(pos)))
	h.Write(hash)
	return h.Sum(nil)
}

func (st *txStmts) apply(ctx context.Context, r *appendReq) ([]event.Envelope, error) {
	h, ok := st.pending[r.stream]
	if !ok {
		h, ok = st.w.heads[r.stream]
	}
	if !ok {
		err := st.selectHead.QueryRowContext(ctx, r.stream).Scan(&h.version, &h.hash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("read head of %s: %w", r.stream, err)
		}
	}
	if r.expected != eventstore.Any && uint64(r.expected) != h.version {
		if stored, err := st.retried(ctx, r); stored != nil || err != nil {
			return stored, err
		}
		return nil, fmt.Errorf("%w: stream %s is at version %d, not %d", eventstore.ErrConflict, r.stream, h.version, r.expected)
	}
	multi := len(r.evs) > 1
	if multi {
		if _, err := st.tx.ExecContext(ctx, `SAVEPOINT append`); err != nil {
			return nil, err
		}
	}
	out := make([]event.Envelope, len(r.evs))
	cur, tip := h, st.tip
	for i, e := range r.evs {
		e.Version = cur.version + 1
		e.Hash = event.Chain(cur.hash, e)
		pos := tip.pos + 1
		lh := logChain(tip.hash, pos, e.Hash)
		_, err := st.insertEvent.ExecContext(ctx, pos, e.ID[:], e.Stream, e.Version, string(e.Type), e.Schema,
			e.OccurredAt.UnixNano(), e.Cause, []byte(e.Data), e.Hash, lh)
		if err != nil {
			if multi {
				if _, rerr := st.tx.ExecContext(ctx, `ROLLBACK TO append; RELEASE append`); rerr != nil {
					return nil, errors.Join(err, rerr)
				}
			}
			if !isUniqueID(err) {
				return nil, fmt.Errorf("insert into %s: %w", r.stream, err)
			}
			if stored, err := st.retried(ctx, r); stored != nil || err != nil {
				return stored, err
			}
			return nil, fmt.Errorf("%w: %s", eventstore.ErrDuplicateID, e.ID)
		}
		e.Position = event.Position{Commit: uint64(pos), Prepare: uint64(pos)}
		out[i] = e
		cur, tip = head{e.Version, e.Hash}, logTip{pos, lh}
	}
	last := out[len(out)-1]
	if _, err := st.upsertHead.ExecContext(ctx, r.stream, cur.version, cur.hash, int64(last.Position.Commit)); err != nil {
		return nil, fmt.Errorf("write head of %s: %w", r.stream, err)
	}
	if multi {
		if _, err := st.tx.ExecContext(ctx, `RELEASE append`); err != nil {
			return nil, err
		}
	}
	st.pending[r.stream] = cur
	st.tip = tip
	return out, nil
}

// retried looks for r's events already in the log. It returns them if r is a
// retry of an append that was stored (same IDs, same stream, consecutive
// versions), nothing if none of the IDs is stored, and ErrDuplicateID if
// only some are, or elsewhere.
func (st *txStmts) retried(ctx context.Context, r *appendReq) ([]event.Envelope, error) {
	var stored []event.Envelope
	for i, e := range r.evs {
		rows, err := st.selectByID.QueryContext(ctx, e.ID[:])
		if err != nil {
			return nil, fmt.Errorf("look up %s: %w", e.ID, err)
		}
		found, err := scanEvents(rows, 1)
		if err != nil {
			return nil, err
		}
		switch {
		case len(found) == 0 && i == 0:
			return nil, nil
		case len(found) == 0:
			return nil, fmt.Errorf("%w: %s was stored without %s", eventstore.ErrDuplicateID, r.evs[0].ID, e.ID)
		case found[0].Stream != r.stream:
			return nil, fmt.Errorf("%w: %s is in stream %s", eventstore.ErrDuplicateID, e.ID, found[0].Stream)
		case i > 0 && found[0].Version != stored[i-1].Version+1:
			return nil, fmt.Errorf("%w: %s is not stored right after %s", eventstore.ErrDuplicateID, e.ID, r.evs[i-1].ID)
		}
		stored = append(stored, found[0])
	}
	return stored, nil
}
