package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"annals.im/annals/domain/event"
)

// Projection is one read model.
type Projection interface {
	// Name is "<name>/v<version>"; bump the version when Schema or Apply
	// change meaning, and the read model is rebuilt on the next start.
	Name() string
	// Schema is the DDL that creates the read model's tables; it runs in a
	// transaction and must use CREATE ... IF NOT EXISTS.
	Schema() string
	// Tables are the tables Schema creates, dropped on rebuild.
	Tables() []string
	// Apply folds e into the read model. Types it does not read are ignored.
	Apply(ctx context.Context, tx *sql.Tx, e event.Envelope) error
}

// Batcher is implemented by a projection that folds a batch of events
// at once, e.g. summing per key before it writes: the runner then calls
// ApplyBatch instead of Apply. An error names its event with *ApplyError.
type Batcher interface {
	ApplyBatch(ctx context.Context, tx *sql.Tx, evs []event.Envelope) error
}

// Selective is implemented by a projection that reads only some events: a
// batch with none of them changes nothing, so the runner moves its
// checkpoint in memory and writes it at most CheckpointLag later, instead
// of taking SQLite's write lock (and an fsync) for every batch the
// log's writer commits. An idle projection cost the writer a tenth of its
// throughput in BenchmarkMUC that way.
type Selective interface {
	Reads(e event.Envelope) bool
}

// CheckpointLag is how long the checkpoint of a Selective projection may
// stay behind the events it skipped; it is what a reader waiting for the
// read model to reach the log's head may wait in addition.
const CheckpointLag = 250 * time.Millisecond

// applyAll folds evs into p, in tx.
func applyAll(ctx context.Context, tx *sql.Tx, p Projection, evs []event.Envelope) error {
	if b, ok := p.(Batcher); ok {
		err := b.ApplyBatch(ctx, tx, evs)
		var ae *ApplyError
		if err != nil && !errors.As(err, &ae) {
			err = &ApplyError{Projection: p.Name(), Event: evs[0], Err: err}
		}
		return err
	}
	for _, e := range evs {
		if err := p.Apply(ctx, tx, e); err != nil {
			return &ApplyError{Projection: p.Name(), Event: e, Err: err}
		}
	}
	return nil
}

// Log is the part of an event store the runner reads.
type Log interface {
	ReadAll(ctx context.Context, after event.Position, max int) ([]event.Envelope, error)
}

// Tail is a live subscription, as eventstore.Subscription.
type Tail interface {
	Next(ctx context.Context) ([]event.Envelope, error)
	Close() error
}

// Subscribe starts a live Tail after a position, as eventstore.Store's
// Subscribe does; cmd/ adapts the store to it so that this package needs
// nothing but domain/.
type Subscribe func(ctx context.Context, after event.Position) (Tail, error)

// ApplyError says which event stopped a projection.
type ApplyError struct {
	Projection string
	Event      event.Envelope
	Err        error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("projection %s stopped at %s version %d (%s, position %s): %v",
		e.Projection, e.Event.Stream, e.Event.Version, e.Event.Type, e.Event.Position, e.Err)
}

func (e *ApplyError) Unwrap() error { return e.Err }

// ErrUnknown: Rebuild was asked for a projection the runner does not have.
var ErrUnknown = errors.New("projections: no such projection")

// Runner keeps a set of projections up to date.
type Runner struct {
	db  *sql.DB
	log *slog.Logger
	ps  []Projection

	mu     sync.Mutex
	inline map[string]bool // applied by a store's writer, not followed by Run
	// at is where each followed projection is, applied or skipped, which
	// its stored checkpoint may lag by CheckpointLag (Position).
	at map[string]event.Position
	// moved is closed, and replaced, whenever a followed projection moves:
	// Await's waiters look again.
	moved chan struct{}
}

// Page is how many events one read-model transaction applies at most.
const Page = 4096

// NewRunner prepares the checkpoint table and each projection's tables,
// rebuilding any projection whose stored version differs from its Name.
func NewRunner(ctx context.Context, db *sql.DB, log *slog.Logger, ps ...Projection) (*Runner, error) {
	if log == nil {
		log = slog.Default()
	}
	seen := make(map[string]bool)
	for _, p := range ps {
		base, _, ok := strings.Cut(p.Name(), "/")
		if !ok || base == "" {
			return nil, fmt.Errorf("projections: name %q: want <name>/v<version>", p.Name())
		}
		if seen[base] {
			return nil, fmt.Errorf("projections: %s registered twice", base)
		}
		seen[base] = true
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS projection_checkpoints (
		name        TEXT PRIMARY KEY,
		commit_pos  INTEGER NOT NULL,
		prepare_pos INTEGER NOT NULL
	)`); err != nil {
		return nil, fmt.Errorf("projections: create checkpoint table: %w", err)
	}
	r := &Runner{db: db, log: log, ps: ps}
	for _, p := range ps {
		if err := r.prepare(ctx, p); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// prepare creates p's tables and checkpoint; a checkpoint left by another
// version of p means its tables are stale: drop them and start over.
func (r *Runner) prepare(ctx context.Context, p Projection) error {
	base, _, _ := strings.Cut(p.Name(), "/")
	return r.inTx(ctx, func(tx *sql.Tx) error {
		var stale []string
		rows, err := tx.QueryContext(ctx, `SELECT name FROM projection_checkpoints WHERE name LIKE ? || '/%' AND name != ?`, base, p.Name())
		if err != nil {
			return err
		}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			stale = append(stale, n)
		}
		rows.Close()
		if len(stale) > 0 {
			r.log.Info("projection version changed: rebuilding from the start of the log",
				"projection", p.Name(), "was", strings.Join(stale, ","))
			if err := reset(ctx, tx, p); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `DELETE FROM projection_checkpoints WHERE name LIKE ? || '/%' AND name != ?`, base, p.Name())
			return err
		}
		if _, err := tx.ExecContext(ctx, p.Schema()); err != nil {
			return fmt.Errorf("projections: %s schema: %w", p.Name(), err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO projection_checkpoints (name, commit_pos, prepare_pos) VALUES (?, 0, 0)
			ON CONFLICT (name) DO NOTHING`, p.Name())
		return err
	})
}

// reset drops p's tables, creates them again and sets its checkpoint to the
// start of the log.
func reset(ctx context.Context, tx *sql.Tx, p Projection) error {
	for _, t := range p.Tables() {
		if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS "`+strings.ReplaceAll(t, `"`, `""`)+`"`); err != nil {
			return fmt.Errorf("projections: drop %s: %w", t, err)
		}
	}
	if _, err := tx.ExecContext(ctx, p.Schema()); err != nil {
		return fmt.Errorf("projections: %s schema: %w", p.Name(), err)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO projection_checkpoints (name, commit_pos, prepare_pos) VALUES (?, 0, 0)
		ON CONFLICT (name) DO UPDATE SET commit_pos = 0, prepare_pos = 0`, p.Name())
	return err
}

func (r *Runner) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Checkpoint returns the position of the last event p applied.
func (r *Runner) Checkpoint(ctx context.Context, name string) (event.Position, error) {
	return CheckpointOf(ctx, r.db, name)
}

// CheckpointOf reads projection name's checkpoint from the read models in
// db, whichever process runs it.
func CheckpointOf(ctx context.Context, db *sql.DB, name string) (event.Position, error) {
	var p event.Position
	err := db.QueryRowContext(ctx, `SELECT commit_pos, prepare_pos FROM projection_checkpoints WHERE name = ?`, name).
		Scan(&p.Commit, &p.Prepare)
	if err != nil {
		return p, fmt.Errorf("projections: checkpoint of %s: %w", name, err)
	}
	return p, nil
}

// apply folds one batch into p and moves its checkpoint past it, in one
// transaction. Events at or before the checkpoint are skipped: a
// subscription may hand a batch that overlaps what a restart already applied.
func (r *Runner) apply(ctx context.Context, p Projection, from event.Position, batch []event.Envelope) (event.Position, error) {
	last := from
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		var fresh []event.Envelope
		for i, e := range batch {
			if last.Less(e.Position) {
				fresh = batch[i:]
				break
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		if err := applyAll(ctx, tx, p, fresh); err != nil {
			return err
		}
		last = fresh[len(fresh)-1].Position
		return saveCheckpoint(ctx, tx, p.Name(), last)
	})
	if err != nil {
		return from, err
	}
	return last, nil
}

// Stats is what a catch-up or rebuild did.
type Stats struct {
	Projection string
	Events     int
	Took       time.Duration
}

// CatchUp applies to each projection the events stored after its checkpoint
// and returns when every one has reached the end of the log as it was read.
func (r *Runner) CatchUp(ctx context.Context, log Log) ([]Stats, error) {
	var out []Stats
	for _, p := range r.ps {
		st, err := r.catchUp(ctx, log, p)
		out = append(out, st)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func (r *Runner) catchUp(ctx context.Context, log Log, p Projection) (Stats, error) {
	st := Stats{Projection: p.Name()}
	start := time.Now()
	pos, err := r.Checkpoint(ctx, p.Name())
	if err != nil {
		return st, err
	}
	for {
		page, err := log.ReadAll(ctx, pos, Page)
		if err != nil {
			return st, err
		}
		if len(page) == 0 {
			st.Took = time.Since(start)
			return st, nil
		}
		if pos, err = r.apply(ctx, p, pos, page); err != nil {
			return st, err
		}
		st.Events += len(page)
	}
}

// Rebuild drops the read models of the named projections (all when names
// is empty), replays the whole log into them and returns what it applied.
func (r *Runner) Rebuild(ctx context.Context, log Log, names ...string) ([]Stats, error) {
	ps, err := r.pick(names)
	if err != nil {
		return nil, err
	}
	var out []Stats
	for _, p := range ps {
		if err := r.inTx(ctx, func(tx *sql.Tx) error { return reset(ctx, tx, p) }); err != nil {
			return out, err
		}
		st, err := r.catchUp(ctx, log, p)
		out = append(out, st)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func (r *Runner) pick(names []string) ([]Projection, error) {
	if len(names) == 0 {
		return r.ps, nil
	}
	var out []Projection
	for _, n := range names {
		found := false
		for _, p := range r.ps {
			base, _, _ := strings.Cut(p.Name(), "/")
			if n == p.Name() || n == base {
				out, found = append(out, p), true
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: %q (have %s)", ErrUnknown, n, strings.Join(r.Names(), ", "))
		}
	}
	return out, nil
}

// Names lists the projections' names.
func (r *Runner) Names() []string {
	out := make([]string, len(r.ps))
	for i, p := range r.ps {
		out[i] = p.Name()
	}
	return out
}

// Run follows the log live and keeps every projection current (but the
// inline ones, which a store's writer keeps) until ctx
// ends or one of them fails; a failure stops all and is returned.
func (r *Runner) Run(ctx context.Context, subscribe Subscribe) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, p := range r.ps {
		r.mu.Lock()
		inline := r.inline[p.Name()]
		r.mu.Unlock()
		if inline {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.follow(ctx, subscribe, p); err != nil && !errors.Is(err, context.Canceled) {
				r.log.Error("projection stopped", "projection", p.Name(), "err", err)
				cancel(err)
			}
		}()
	}
	wg.Wait()
	<-ctx.Done() // with nothing to follow, Run still lasts as long as ctx
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (r *Runner) follow(ctx context.Context, subscribe Subscribe, p Projection) error {
	saved, err := r.Checkpoint(ctx, p.Name())
	if err != nil {
		return err
	}
	sub, err := subscribe(context.WithValue(ctx, followingKey{}, p.Name()), saved)
	if err != nil {
		return err
	}
	defer sub.Close()
	sel, _ := p.(Selective)
	pos := saved // what has been applied or skipped; saved may lag it
	for {
		r.setAt(p.Name(), pos)
		next := ctx
		cancel := context.CancelFunc(func() {})
		if pos != saved {
			next, cancel = context.WithTimeout(ctx, CheckpointLag)
		}
		batch, err := sub.Next(next)
		cancel()
		switch {
		case err != nil && pos != saved && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
			// Quiet for a while after skipped events: write where we are.
			if err := r.inTx(ctx, func(tx *sql.Tx) error { return saveCheckpoint(ctx, tx, p.Name(), pos) }); err != nil {
				return err
			}
			saved = pos
			continue
		case err != nil:
			return err
		}
		if sel != nil && !slices.ContainsFunc(batch, sel.Reads) {
			pos = later(pos, batch[len(batch)-1].Position)
			continue
		}
		applied, err := r.apply(ctx, p, pos, batch)
		if err != nil {
			return err
		}
		if applied != pos { // apply wrote its checkpoint
			pos, saved = applied, applied
		}
	}
}

func (r *Runner) setAt(name string, pos event.Position) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at == nil {
		r.at = make(map[string]event.Position)
	}
	if r.at[name] == pos {
		return
	}
	r.at[name] = pos
	if r.moved != nil {
		close(r.moved)
		r.moved = nil
	}
}

// Await returns once projection name, followed by Run, has applied or
// skipped every event up to pos, so that its rows show them; or ctx's
// error. A reader that must see what was acknowledged before it began
// (its own writes, or another node's) awaits the log's head.
func (r *Runner) Await(ctx context.Context, name string, pos event.Position) error {
	for {
		at, err := r.Position(ctx, name)
		if err != nil {
			return err
		}
		if !at.Less(pos) {
			return nil
		}
		r.mu.Lock()
		if !r.at[name].Less(pos) { // it moved since Position looked
			r.mu.Unlock()
			return nil
		}
		if r.moved == nil {
			r.moved = make(chan struct{})
		}
		moved := r.moved
		r.mu.Unlock()
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("projections: %s is at %v, short of %v: %w", name, at, pos, ctx.Err())
		}
	}
}

// Position returns where projection name is: the last event it applied or
// skipped as Run follows the log, which its checkpoint may lag, or else
// its checkpoint. Metrics and readiness read it.
func (r *Runner) Position(ctx context.Context, name string) (event.Position, error) {
	pos, err := r.Checkpoint(ctx, name)
	if err != nil {
		return pos, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return later(pos, r.at[name]), nil
}

type followingKey struct{}

// Following returns the name of the projection whose subscription
// Subscribe is asked for in ctx, "" for none: a Subscribe that tracks
// its subscriptions (metrics) names them by it.
func Following(ctx context.Context) string {
	name, _ := ctx.Value(followingKey{}).(string)
	return name
}

func later(a, b event.Position) event.Position {
	if a.Less(b) {
		return b
	}
	return a
}

func saveCheckpoint(ctx context.Context, tx *sql.Tx, name string, pos event.Position) error {
	_, err := tx.ExecContext(ctx, `UPDATE projection_checkpoints SET commit_pos = ?, prepare_pos = ? WHERE name = ?`,
		pos.Commit, pos.Prepare, name)
	return err
}
