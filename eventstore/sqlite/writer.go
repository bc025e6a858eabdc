package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// writer is the one goroutine that writes events. It takes every append
// waiting in the queue (up to MaxBatch events), applies them in one
// transaction and commits once, so concurrent appenders share one fsync.
type writer struct {
	s                                   *Store
	selectHead, insertEvent, upsertHead *sql.Stmt
	selectByID, selectTip               *sql.Stmt
}

type head struct {
	version uint64
	hash    []byte
}

func newWriter(ctx context.Context, s *Store) (*writer, error) {
	w := &writer{s: s}
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

// commit applies batch in one transaction. A request refused by the rules
// (conflict, duplicate ID) leaves no trace in the transaction and does not
// affect the others; a storage error fails the whole batch.
func (w *writer) commit(batch []*appendReq) {
	ctx := context.Background()
	results := make([]appendResult, len(batch))
	err := func() error {
		tx, err := w.s.write.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		st := txStmts{
			selectHead:  tx.StmtContext(ctx, w.selectHead),
			insertEvent: tx.StmtContext(ctx, w.insertEvent),
			upsertHead:  tx.StmtContext(ctx, w.upsertHead),
			selectByID:  tx.StmtContext(ctx, w.selectByID),
			tx:          tx,
		}
		// The log's tip is read inside the write transaction: another
		// process may have appended since our last batch.
		err = tx.StmtContext(ctx, w.selectTip).QueryRowContext(ctx).Scan(&st.tip.pos, &st.tip.hash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read the log's tip: %w", err)
		}
		heads := make(map[string]head)
		for i, r := range batch {
			evs, err := st.apply(ctx, heads, r)
			if err != nil && !errors.Is(err, eventstore.ErrConflict) && !errors.Is(err, eventstore.ErrDuplicateID) {
				return err
			}
			results[i] = appendResult{evs, err}
		}
		return tx.Commit()
	}()
	if err != nil {
		w.s.opts.Log.Error("event store commit failed", "err", err, "appends", len(batch))
		err = fmt.Errorf("sqlite: commit: %w", err)
		for _, r := range batch {
			r.result <- appendResult{err: err}
		}
		return
	}
	w.s.notify()
	for i, r := range batch {
		r.result <- results[i]
	}
}

type txStmts struct {
	tx                                              *sql.Tx
	selectHead, insertEvent, upsertHead, selectByID *sql.Stmt
	tip                                             logTip // the last row written, in this transaction
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

func (st *txStmts) apply(ctx context.Context, heads map[string]head, r *appendReq) ([]event.Envelope, error) {
	h, ok := heads[r.stream]
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
	heads[r.stream] = cur
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
