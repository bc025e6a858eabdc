package sqlite

// store.go: opening the store, Append and the reads (ReadStream, ReadAll,
// the visibility of undurable rows). It stays a little over 600 lines so
// that the reads sit beside the lazy heads and unsynced bounds they depend
// on; the writer (writer.go, batch.go), the subscription (subscribe.go)
// and the log chain check (verifylog.go) live apart.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// Durability says when an append counts as committed.
type Durability string

const (
	// DurabilityFull: after the WAL is fsynced. The default.
	DurabilityFull Durability = "full"
	// DurabilityNormal: after the WAL is written; a power loss may take back
	// the last commits, a process crash does not.
	DurabilityNormal Durability = "normal"
)

// ParseDurability reads "full" or "normal".
func ParseDurability(s string) (Durability, error) {
	switch d := Durability(strings.ToLower(s)); d {
	case DurabilityFull, DurabilityNormal:
		return d, nil
	}
	return "", fmt.Errorf("sqlite: durability %q: want full or normal", s)
}

// Options tune a Store. The zero value is usable.
type Options struct {
	Durability Durability    // default DurabilityFull
	MaxBatch   int           // most events in one group commit; default 4096
	Poll       time.Duration // how often an idle subscription looks for events written by another process; default 1s
	Log        *slog.Logger  // default slog.Default()
	// PreallocateWAL, if positive, extends the WAL file with zeros to this
	// many bytes at Open. Appending inside an allocated file spares every
	// fdatasync a journal commit for the file's size: measured here, 64
	// writers in DurabilityFull went from ~55k to ~75k events/s. It costs
	// one write of that many bytes at each Open, so a long-running server
	// wants it and a one-shot command does not.
	PreallocateWAL int64
	// LazyHeads lets the writer record stream heads every few batches
	// instead of in every one: under load, the same heads are rewritten
	// batch after batch (measured: ~25% of the writer's work with 64
	// writers). Readers find the newer heads by scanning the events after
	// heads_position. At most one store per file may set it: each lazy
	// writer assumes the heads it has not written are only its own.
	LazyHeads bool
	// Metrics is told of appends, group commits and fsyncs; nil: nothing.
	Metrics Metrics
	// Codec, if set, seals what appends say before they are hashed and
	// written, and opens every event the store hands out (inline read
	// models included). Nil: the log keeps what it is given.
	Codec eventstore.Codec
}

// Metrics is what the store reports as it writes (adapters/metrics
// implements it). Its methods run on the writer's paths: they must be
// quick and must not block.
type Metrics interface {
	Appended(took time.Duration) // an append committed, took from call to answer
	Committed(events int)        // a group commit wrote events
	Synced(took time.Duration)   // an fsync of the WAL returned without error
}

type noMetrics struct{}

func (noMetrics) Appended(time.Duration) {}
func (noMetrics) Committed(int)          {}
func (noMetrics) Synced(time.Duration)   {}

// Store is the SQLite event store. It is safe for concurrent use.
type Store struct {
	opts  Options
	path  string
	write *sql.DB // one connection, used only by the writer goroutine
	read  *sql.DB
	// checkpoints is the checkpointer's own connection.
	checkpoints      *sql.DB
	checkpointerDone chan struct{}
	queue            chan *appendReq
	done             chan struct{} // closed by Close
	exited           chan struct{} // closed when the writer goroutine returns

	closeOnce sync.Once
	mu        sync.Mutex
	changed   chan struct{} // closed and replaced after each durable commit
	inflight  []int64       // first positions of batches committed but not yet fsynced, in order
	err       error         // set when an fsync failed: the store takes no more appends
	// unsynced is inflight[0], or 0: events at or above it are committed
	// but not yet durable, so readers in this process must not see them.
	unsynced atomic.Int64

	inlineMu sync.Mutex
	inline   []Inline // read models kept in the writer's transactions
}

type appendReq struct {
	stream   string
	expected int64
	evs      []event.Envelope
	result   chan appendResult
	// catchUp: no append, but a batch that brings the inline read models
	// to the log's tip (CatchUpInline).
	catchUp bool
}

type appendResult struct {
	evs []event.Envelope
	err error
}

// dsn builds the connection string. _txlock=immediate makes every
// transaction take the write lock at BEGIN, so that two processes never
// deadlock upgrading read locks. The event writer runs with
// synchronous=NORMAL in both durabilities: with DurabilityFull its syncer
// fsyncs the WAL itself, after the commit and off the writer's path.
func dsn(path string, sync string, readOnly bool) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", sync)
	q.Set("_busy_timeout", "10000")
	q.Set("_txlock", "immediate")
	// Deleted rows are overwritten with zeros, not left in free space:
	// erasing an account's content (adapters/sealing) deletes its
	// read-model rows and keys, and no byte of them may stay in the file.
	q.Set("_secure_delete", "on")
	if readOnly {
		q.Set("_query_only", "1")
	}

	return "file:" + path + "?" + q.Encode()
}

// driverName is go-sqlite3 with the connection settings that a DSN cannot
// carry: no connection checkpoints the WAL when it commits. SQLite's
// automatic checkpoint runs inside whichever commit crosses the threshold,
// which put copying pages and two fsyncs on the event writer's path every
// few dozen group commits; the store's checkpointer does it instead, on its
// own connection, beside the writer (see checkpointer).
const driverName = "annals-sqlite3"

var registerOnce sync.Once

func register() {
	registerOnce.Do(func() {
		sql.Register(driverName, &sqlite3.SQLiteDriver{
			ConnectHook: func(c *sqlite3.SQLiteConn) error {
				_, err := c.Exec(`PRAGMA wal_autocheckpoint = 0`, nil)
				return err
			},
		})
	})
}

// MaxReadConns bounds each pool of connections that readers share (the
// store's and OpenDB's). Each connection holds up to three descriptors
// (the database, its WAL, a temporary file): a bound is what lets the
// server keep enough of them in reserve for the store however many
// clients query at once. Past it, readers wait their turn; with queries of
// a millisecond or less, 32 at once keep any number of cores busy.
const MaxReadConns = 32

// OpenDB opens a general connection pool on the database file at path, for
// read models kept beside the log. Transactions take the write lock at
// BEGIN and wait up to 10 s for it.
func OpenDB(path string) (*sql.DB, error) {
	register()
	db, err := sql.Open(driverName, dsn(path, "FULL", false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(MaxReadConns)
	db.SetMaxIdleConns(MaxReadConns) // as the store's readers, for the same reason
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, nil
}

// Open opens (creating if needed) the store in the database file at path and
// applies pending schema migrations.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.Durability == "" {
		opts.Durability = DurabilityFull
	}
	if _, err := ParseDurability(string(opts.Durability)); err != nil {
		return nil, err
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = noMetrics{}
	}
	register()
	w, err := sql.Open(driverName, dsn(path, "NORMAL", false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r, err := sql.Open(driverName, dsn(path, "NORMAL", true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// Idle connections are kept up to the bound: opening one (a file, its
	// WAL index, the pragmas) cost more than the queries of a busy server,
	// which closed and reopened connections past the idle limit (measured
	// with BenchmarkChat: 5% of the server's CPU at 4 idle).
	r.SetMaxIdleConns(MaxReadConns)
	r.SetMaxOpenConns(MaxReadConns)
	s := &Store{
		opts:             opts,
		path:             path,
		write:            w,
		read:             r,
		queue:            make(chan *appendReq, 1024),
		done:             make(chan struct{}),
		exited:           make(chan struct{}),
		checkpointerDone: make(chan struct{}),
		changed:          make(chan struct{}),
	}
	wr, err := newWriter(ctx, s)
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	if opts.PreallocateWAL > 0 {
		if err := preallocateWAL(ctx, w, path+"-wal", opts.PreallocateWAL); err != nil {
			r.Close()
			w.Close()
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
	}
	ck, err := sql.Open(driverName, dsn(path, "NORMAL", false))
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	ck.SetMaxOpenConns(1)
	s.checkpoints = ck
	go wr.run()
	go s.checkpointer()
	return s, nil
}

// ServerWAL is the WAL preallocation a long-running server uses: room for
// bursts of about 16,000 pages between two WAL resets.
const ServerWAL = 64 << 20

// preallocateWAL writes zeros from the end of the WAL file to size. It
// holds SQLite's write lock meanwhile, so that no connection, in this
// process or another, appends a frame where the zeros go. Zeros past the
// last frame are harmless: recovery stops at the first frame whose
// checksum fails, and a reset WAL overwrites from the start.
func preallocateWAL(ctx context.Context, db *sql.DB, wal string, size int64) error {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: takes the write lock
	if err != nil {
		return fmt.Errorf("preallocate WAL: %w", err)
	}
	defer tx.Rollback()
	f, err := os.OpenFile(wal, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // SQLite makes it at the first write; the next Open extends it
	}
	if err != nil {
		return fmt.Errorf("preallocate WAL: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("preallocate WAL: %w", err)
	}
	zeros := make([]byte, 1<<20)
	for off := fi.Size(); off < size; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), size-off)], off); err != nil {
			return fmt.Errorf("preallocate WAL: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("preallocate WAL: %w", err)
	}
	return nil
}

// Checkpoint tuning: a passive checkpoint runs at most every
// checkpointEvery while the log is being written; when the WAL holds more
// than walRestartFrames frames, a restarting checkpoint (which waits for
// the writer between two commits) brings it back to the start, so that a
// writer that never pauses cannot grow the WAL without bound.
const (
	checkpointEvery  = 200 * time.Millisecond
	walRestartFrames = 64 << 10 // 256 MiB of 4 KiB pages
)

// checkpointer copies committed WAL frames into the database file on its
// own connection, so that the writer never does (see driverName). A passive
// checkpoint does not block the writer; it needs only that readers have
// moved past the frames it copies.
func (s *Store) checkpointer() {
	defer close(s.checkpointerDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	seen := s.changedCh()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if now := s.changedCh(); now == seen {
			continue // nothing committed since the last checkpoint
		} else {
			seen = now
		}
		var busy, frames, copied int
		err := s.checkpoints.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
		if err == nil && frames > walRestartFrames {
			err = s.checkpoints.QueryRow(`PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &frames, &copied)
		}
		if err != nil {
			s.opts.Log.Warn("event store checkpoint failed", "err", err)
		}
	}
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close stops the writer after the commit in progress, fails queued appends
// with eventstore.ErrClosed and closes the database.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		<-s.exited
		<-s.checkpointerDone
		err = errors.Join(s.read.Close(), s.checkpoints.Close(), s.write.Close())
	})
	return err
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected int64, evs ...event.Envelope) ([]event.Envelope, error) {
	if err := event.ValidStream(stream); err != nil {
		return nil, err
	}
	if expected < eventstore.Any {
		return nil, fmt.Errorf("%w: expected version %d", event.ErrInvalid, expected)
	}
	own, err := eventstore.Proposal(stream, evs)
	if err != nil {
		return nil, err
	}
	proposed := own
	if s.opts.Codec != nil {
		if own, err = s.opts.Codec.Seal(ctx, own); err != nil {
			return nil, fmt.Errorf("sqlite: seal: %w", err)
		}
	}
	req := &appendReq{stream: stream, expected: expected, evs: own, result: make(chan appendResult, 1)}
	start := time.Now()
	select {
	case s.queue <- req:
	case <-s.done:
		return nil, eventstore.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once queued, the append may commit even if ctx ends: the caller then
	// does not know, and a retry with the same IDs is idempotent.
	select {
	case r := <-req.result:
		if r.err == nil {
			s.opts.Metrics.Appended(time.Since(start))
			if s.opts.Codec != nil {
				eventstore.Plain(r.evs, proposed)
			}
		}
		return r.evs, r.err
	case <-s.exited:
		select {
		case r := <-req.result:
			if r.err == nil && s.opts.Codec != nil {
				eventstore.Plain(r.evs, proposed)
			}
			return r.evs, r.err
		default:
			return nil, eventstore.ErrClosed
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// markUnsynced records, before its transaction commits, that a batch
// starting at position first will be visible but not yet durable.
func (s *Store) markUnsynced(first int64) {
	s.mu.Lock()
	s.inflight = append(s.inflight, first)
	s.unsynced.Store(s.inflight[0])
	s.mu.Unlock()
}

// unmarkLast takes back the last markUnsynced, whose commit failed.
func (s *Store) unmarkLast() {
	s.mu.Lock()
	s.inflight = s.inflight[:len(s.inflight)-1]
	s.storeUnsynced()
	s.mu.Unlock()
}

// synced records that the oldest n committed batches are durable.
func (s *Store) synced(n int) {
	s.mu.Lock()
	s.inflight = s.inflight[min(n, len(s.inflight)):]
	s.storeUnsynced()
	s.mu.Unlock()
}

func (s *Store) storeUnsynced() {
	if len(s.inflight) == 0 {
		s.unsynced.Store(0)
	} else {
		s.unsynced.Store(s.inflight[0])
	}
}

// Unsynced returns the first position that is committed but not yet
// durable, or 0 when every committed event is durable. A reader of an
// inline read model drops rows at or above it, read after its query (see
// visible), so that nothing this process shows can vanish in a crash.
func (s *Store) Unsynced() int64 { return s.unsynced.Load() }

// Head returns the position of the last event committed, by any process;
// the zero Position for an empty log.
func (s *Store) Head(ctx context.Context) (event.Position, error) {
	var pos int64
	if err := s.read.QueryRowContext(ctx, `SELECT coalesce(max(position), 0) FROM events`).Scan(&pos); err != nil {
		return event.Position{}, fmt.Errorf("sqlite: head: %w", err)
	}
	return event.Position{Commit: uint64(pos), Prepare: uint64(pos)}, nil
}

// visible drops from evs (in position order) the events that are committed
// but not yet durable. It must be called after the query that read evs: a
// batch marks itself before it commits, so any not-yet-durable event the
// query could see is at or above the mark read here.
func (s *Store) visible(evs []event.Envelope) []event.Envelope {
	u := s.unsynced.Load()
	if u == 0 {
		return evs
	}
	for i, e := range evs {
		if int64(e.Position.Commit) >= u {
			return evs[:i]
		}
	}
	return evs
}

// fail puts the store in a failed state and returns err.
func (s *Store) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	return s.err
}

// Err returns why the store takes no more appends: ErrClosed after Close,
// the error of a failed fsync; nil while it is open and well.
func (s *Store) Err() error {
	select {
	case <-s.done:
		return eventstore.ErrClosed
	default:
	}
	return s.failure()
}

func (s *Store) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// release answers the appenders of a durable batch and wakes subscribers.
func (s *Store) release(batch []*appendReq, results []appendResult) {
	s.notify()
	for i, r := range batch {
		r.result <- results[i]
	}
}

// changedCh returns a channel closed at the next durable commit.
func (s *Store) changedCh() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Store) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation on
// column ("table.column").
func isUnique(err error, column string) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey ||
		se.ExtendedCode == sqlite3.ErrConstraintRowID) && strings.Contains(se.Error(), column)
}
