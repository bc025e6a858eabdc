package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// writer is the one goroutine that writes events. It takes every append
// waiting in the queue (up to MaxBatch events), applies them in one
// transaction and commits once, so concurrent appenders share one fsync.
type writer struct {
	s          *Store
	heads      map[string]head // cache of committed stream heads
	dirty      map[string]head // committed heads not yet in the streams table (LazyHeads)
	sinceFlush int             // batches committed since the last flush of dirty
	lastFlush  time.Time
	tip        logTip         // the last row this writer committed
	tipKnown   bool           // tip is from a commit of this writer, not a guess
	syncs      chan committed // to the syncer; nil with DurabilityNormal
	syncerDone chan struct{}
	stmts      map[string]*sql.Stmt      // prepared on the writer's one connection, by query
	inlinePos  map[string]event.Position // where each inline read model is, as committed
}

type head struct {
	version uint64
	hash    []byte
	pos     int64 // of the head event; 0 for an empty stream
}

// MarkEvery is how often (in versions) a stream's event is recorded in
// stream_marks, bounding how far ReadStream walks the prev links.
const MarkEvery = 128

func newWriter(ctx context.Context, s *Store) (*writer, error) {
	w := &writer{s: s, heads: make(map[string]head), dirty: make(map[string]head), stmts: make(map[string]*sql.Stmt),
		inlinePos: make(map[string]event.Position)}
	if s.opts.Durability == DurabilityFull {
		w.syncs = make(chan committed, 1024)
		w.syncerDone = make(chan struct{})
	}
	// Statements are prepared here, not on first use: the writer's one
	// connection is busy inside every later transaction, and preparing on
	// the pool from there would wait for it forever.
	for _, q := range batchQueries() {
		st, err := s.write.PrepareContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("sqlite: prepare %q: %w", q, err)
		}
		w.stmts[q] = st
	}
	if s.opts.LazyHeads {
		if err := w.recordOwedHeads(ctx); err != nil {
			return nil, fmt.Errorf("sqlite: record the heads a previous writer owed: %w", err)
		}
	}
	return w, nil
}

// recordOwedHeads writes the heads of every stream with events after
// heads_position and moves it to the log's tip. A lazy writer's flush
// moves heads_position past everything before its tip, but writes only
// the heads it moved itself: the heads a lazy writer that died before
// flushing (a crash, a SIGKILL) left owed would then be skipped for
// ever, and Verify would find those streams' last events missing from
// their heads. So a lazy writer pays them first; it is a scan of what
// one writer left unflushed, at most a few batches.
func (w *writer) recordOwedHeads(ctx context.Context) error {
	tx, err := w.s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var cp int64
	if err := tx.QueryRowContext(ctx, qHeadsPosition).Scan(&cp); err != nil {
		return fmt.Errorf("read heads position: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT e.stream, e.version, e.hash, e.position FROM events e
		JOIN (SELECT max(position) AS p FROM events WHERE position > ? GROUP BY stream) last ON e.position = last.p`, cp)
	if err != nil {
		return fmt.Errorf("read owed heads: %w", err)
	}
	var owed []any
	tip := cp
	for rows.Next() {
		var (
			stream string
			h      head
		)
		if err := rows.Scan(&stream, &h.version, &h.hash, &h.pos); err != nil {
			rows.Close()
			return fmt.Errorf("read owed heads: %w", err)
		}
		owed = append(owed, stream, h.version, h.hash, h.pos)
		tip = max(tip, h.pos)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read owed heads: %w", err)
	}
	rows.Close()
	if len(owed) == 0 {
		return nil
	}
	for len(owed) > 0 {
		n := chunk(len(owed) / 4)
		if _, err := tx.ExecContext(ctx, qHeads(n), owed[:4*n]...); err != nil {
			return fmt.Errorf("write owed heads: %w", err)
		}
		owed = owed[4*n:]
	}
	if _, err := tx.ExecContext(ctx, qSetHeadsPos, tip); err != nil {
		return fmt.Errorf("write heads position: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	w.s.opts.Log.Info("event store: recorded the stream heads a writer left unrecorded", "heads_position", cp, "to", tip)
	return nil
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
			if err := w.flushHeads(); err != nil {
				w.s.opts.Log.Error("event store: recording stream heads at close failed; readers scan for them instead", "err", err)
			}
			return
		case r := <-w.s.queue:
			batch, n := []*appendReq{r}, len(r.evs)
			// Let appenders that were just answered queue their next
			// append before the batch closes: it costs one scheduler pass
			// and makes batches, and so the work per commit, larger.
			for range 3 {
				runtime.Gosched()
				got := false
			more:
				for n < w.s.opts.MaxBatch {
					select {
					case r := <-w.s.queue:
						batch = append(batch, r)
						n += len(r.evs)
						got = true
					default:
						break more
					}
				}
				if !got {
					break
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

// apply runs batch in one transaction. The fast way trusts what this
// writer cached (the log's tip, stream heads) and lets SQLite's unique
// constraints catch the rare exceptions: an event ID already stored (a
// retry) or a position taken (another process appended). Either makes it
// start over the careful way, which reads the tip and looks every ID up.
func (w *writer) apply(batch []*appendReq) ([]appendResult, error) {
	careful := !w.tipKnown
	for _, r := range batch {
		// Catching up needs the log's real tip, which another process
		// may have moved.
		careful = careful || r.catchUp
	}
	results, err := w.try(batch, careful)
	if errors.Is(err, errCareful) {
		results, err = w.try(batch, true)
	}
	return results, err
}

func (w *writer) try(batch []*appendReq, careful bool) (results []appendResult, err error) {
	ctx := context.Background()
	tx, err := w.s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
			// What the cache holds may include this batch's heads: forget it.
			w.heads, w.tip, w.tipKnown = make(map[string]head), logTip{}, false
			clear(w.inlinePos)
		}
	}()
	b := &batchTx{w: w, tx: tx, careful: careful, tip: w.tip, flush: w.flushDue(),
		pending: make(map[string]head, len(batch)), inBatch: make(map[ulid.ULID]event.Envelope, len(batch)),
		inlinePos: make(map[string]event.Position)}
	if careful {
		// The log's tip is read inside the write transaction. If it is not
		// the one this writer left, another process appended: the cached
		// stream heads may be stale, so drop them.
		if err := b.readTip(ctx); err != nil {
			return nil, err
		}
		if b.tip.pos != w.tip.pos || !bytes.Equal(b.tip.hash, w.tip.hash) {
			w.heads = make(map[string]head)
		}
	}
	if len(w.heads) > maxCachedHeads {
		w.heads = make(map[string]head)
	}
	first := b.tip.pos + 1 // of this batch's events, if it writes any
	b.start = b.tip.pos
	if results, err = b.run(ctx, batch); err != nil {
		return nil, err
	}
	if b.tip.pos >= first && w.syncs != nil {
		w.s.markUnsynced(first)
	}
	if err := tx.Commit(); err != nil {
		if b.tip.pos >= first && w.syncs != nil {
			w.s.unmarkLast()
		}
		return nil, err
	}
	for stream, h := range b.pending {
		w.heads[stream] = h
	}
	if len(b.rows) > 0 {
		w.s.opts.Metrics.Committed(len(b.rows))
	}
	maps.Copy(w.inlinePos, b.inlinePos)
	w.sinceFlush++
	switch {
	case b.flush:
		clear(w.dirty)
		w.sinceFlush, w.lastFlush = 0, time.Now()
	case w.s.opts.LazyHeads:
		for stream, h := range b.pending {
			w.dirty[stream] = h
		}
	}
	w.tip, w.tipKnown = b.tip, true
	return results, nil
}

// Lazy heads are flushed every flushBatches batches, and at least every
// flushInterval, so that under light load every batch records its heads.
const (
	flushBatches  = 8
	flushInterval = 20 * time.Millisecond
)

func (w *writer) flushDue() bool {
	return w.s.opts.LazyHeads && (w.sinceFlush+1 >= flushBatches || time.Since(w.lastFlush) >= flushInterval ||
		len(w.dirty) >= maxCachedHeads/4)
}

// flushHeads records the dirty heads in a transaction of their own; the
// writer calls it when it stops.
func (w *writer) flushHeads() error {
	if len(w.dirty) == 0 {
		return nil
	}
	ctx := context.Background()
	tx, err := w.s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	b := &batchTx{w: w, tx: tx, flush: true, tip: w.tip, start: w.tip.pos, pending: map[string]head{}}
	if err := b.writeHeads(ctx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	clear(w.dirty)
	return nil
}

// maxCachedHeads bounds the stream-head cache; past it the cache starts over.
const maxCachedHeads = 1 << 17

// maxSyncs is how many WAL fsyncs may run at once. A batch that commits
// while an fsync runs need not wait for it to end before its own starts:
// the second fsync also waits for what the first is writing, so when it
// returns, every batch committed before it started is durable.
const maxSyncs = 2

// syncer fsyncs the WAL for committed batches and answers their appenders
// in commit order once an fsync that started after their commit returns.
func (w *writer) syncer() {
	defer close(w.syncerDone)
	var wal *os.File
	defer func() {
		if wal != nil {
			wal.Close()
		}
	}()
	type synced struct {
		cover int // batches numbered below cover are durable (if err is nil)
		err   error
	}
	var (
		queue    []committed // received, not yet answered; queue[0] is number base
		base     int
		next     int // number of the next batch received
		started  int // batches numbered below started are covered by a started fsync
		inflight int
		in       = w.syncs
		done     = make(chan synced)
	)
	for in != nil || inflight > 0 || len(queue) > 0 {
		if started < next && inflight < maxSyncs {
			err := w.s.failure()
			if err == nil && wal == nil {
				wal, err = os.OpenFile(w.s.path+"-wal", os.O_RDWR, 0)
			}
			cover := next
			started, inflight = next, inflight+1
			go func() {
				if err == nil {
					// fdatasync: the WAL's data and size, not its times.
					began := time.Now()
					if err = syscall.Fdatasync(int(wal.Fd())); err == nil {
						w.s.opts.Metrics.Synced(time.Since(began))
					}
				}
				done <- synced{cover, err}
			}()
		}
		select {
		case c, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			queue = append(queue, c)
			next++
		case r := <-done:
			inflight--
			n := r.cover - base
			if n <= 0 {
				continue // a later fsync already answered these
			}
			err := r.err
			if err != nil {
				// After a failed fsync the kernel may have dropped the dirty
				// pages: nothing after this point can be promised durable.
				err = w.s.fail(fmt.Errorf("sqlite: fsync %s-wal: %w", w.s.path, err))
			}
			w.s.synced(n)
			for _, c := range queue[:n] {
				if err != nil {
					for _, r := range c.batch {
						r.result <- appendResult{err: err}
					}
					continue
				}
				w.s.release(c.batch, c.results)
			}
			queue, base = queue[n:], base+n
		}
	}
}
