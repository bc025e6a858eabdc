package projections_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/projections"
	"annals.im/annals/projections/accounts"
)

type fixture struct {
	store *sqlite.Store
	db    *sql.DB
	ids   *event.IDs
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "annals.db")
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{Durability: sqlite.DurabilityNormal, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(); s.Close() })
	return &fixture{s, db, event.NewIDs()}
}

// create appends AccountCreated for j, with the given schema.
func (f *fixture) create(t *testing.T, j string, schema int) event.Envelope {
	t.Helper()
	e, err := event.New(f.ids, time.Unix(1800000000, 0), account.TypeCreated, schema, "", account.Created{JID: j})
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.store.Append(context.Background(), "account-"+j, eventstore.NoStream, e)
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func count(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM accounts`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A projection that meets an event it cannot read stops, names the event,
// and keeps neither the rows nor the checkpoint of its batch.
func TestStopsOnUndecodableEvent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.create(t, "a@example.com", 1)
	f.create(t, "b@example.com", 1)
	bad := f.create(t, "c@example.com", account.Schema+1)
	f.create(t, "d@example.com", 1)

	r, err := projections.NewRunner(ctx, f.db, nil, accounts.Projection{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.CatchUp(ctx, f.store)
	var ae *projections.ApplyError
	if !errors.As(err, &ae) || ae.Event.ID != bad.ID || !errors.Is(err, event.ErrSchemaTooNew) {
		t.Fatalf("CatchUp err = %v, want an ApplyError at %s wrapping ErrSchemaTooNew", err, bad.ID)
	}
	if !strings.Contains(err.Error(), "account-c@example.com version 1") {
		t.Fatalf("error %q does not name the stream and version", err)
	}
	// The batch held a, b, c, d: none of it is kept, the checkpoint stays.
	if n := count(t, f.db); n != 0 {
		t.Fatalf("%d accounts applied from a failed batch", n)
	}
	if cp, _ := r.Checkpoint(ctx, accounts.Name); !cp.IsZero() {
		t.Fatalf("checkpoint moved to %s", cp)
	}
	// Live, the runner stops too, with the same error.
	runCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = r.Run(runCtx, func(ctx context.Context, after event.Position) (projections.Tail, error) {
		return f.store.Subscribe(ctx, after)
	})
	if !errors.As(err, &ae) || ae.Event.ID != bad.ID {
		t.Fatalf("Run err = %v, want ApplyError at %s", err, bad.ID)
	}
}

func TestRunFollowsLiveAndResumes(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := projections.NewRunner(ctx, f.db, nil, accounts.Projection{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, func(ctx context.Context, after event.Position) (projections.Tail, error) {
			return f.store.Subscribe(ctx, after)
		})
	}()
	var last event.Envelope
	for _, j := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		last = f.create(t, j, 1)
	}
	waitFor(t, func() bool { cp, _ := r.Checkpoint(ctx, accounts.Name); return cp == last.Position })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if n := count(t, f.db); n != 3 {
		t.Fatalf("%d accounts, want 3", n)
	}
	// A new runner resumes after the checkpoint: nothing is applied twice
	// (a second insert of the same account would fail the projection).
	last = f.create(t, "d@example.com", 1)
	r2, err := projections.NewRunner(context.Background(), f.db, nil, accounts.Projection{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := r2.CatchUp(context.Background(), f.store)
	if err != nil || st[0].Events != 1 {
		t.Fatalf("resume applied %+v, %v; want 1 event", st, err)
	}
	if n := count(t, f.db); n != 4 {
		t.Fatalf("%d accounts, want 4", n)
	}
}

// renamed is the accounts projection under a new version: its checkpoint
// name differs, so the runner drops the old tables and replays.
type renamed struct{ accounts.Projection }

func (renamed) Name() string { return "accounts/v2" }

func TestVersionChangeRebuilds(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.create(t, "a@example.com", 1)
	f.create(t, "b@example.com", 1)
	r, err := projections.NewRunner(ctx, f.db, nil, accounts.Projection{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.CatchUp(ctx, f.store); err != nil {
		t.Fatal(err)
	}
	// Leave a mark that only a rebuild removes.
	if _, err := f.db.Exec(`INSERT INTO accounts (jid, created_at, version) VALUES ('stale@example.com', 0, 1)`); err != nil {
		t.Fatal(err)
	}
	r2, err := projections.NewRunner(ctx, f.db, nil, renamed{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := r2.CatchUp(ctx, f.store)
	if err != nil || st[0].Events != 2 {
		t.Fatalf("v2 replayed %+v, %v; want 2 events from the start", st, err)
	}
	if n := count(t, f.db); n != 2 {
		t.Fatalf("%d accounts after the v2 rebuild, want 2 (stale row dropped)", n)
	}
	var old int
	f.db.QueryRow(`SELECT COUNT(*) FROM projection_checkpoints WHERE name = 'accounts/v1'`).Scan(&old)
	if old != 0 {
		t.Fatal("the v1 checkpoint is still there")
	}
}

func TestNewRunnerRejectsBadNames(t *testing.T) {
	f := newFixture(t)
	for _, ps := range [][]projections.Projection{
		{named{"accounts"}},
		{accounts.Projection{}, renamed{}},
	} {
		if _, err := projections.NewRunner(context.Background(), f.db, nil, ps...); err == nil {
			t.Errorf("NewRunner accepted %v", ps)
		}
	}
}

type named struct {
	name string
}

func (n named) Name() string                                       { return n.name }
func (named) Schema() string                                       { return "" }
func (named) Tables() []string                                     { return nil }
func (named) Apply(context.Context, *sql.Tx, event.Envelope) error { return nil }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A Selective projection skips batches it reads nothing of without a
// transaction, and writes its checkpoint past them once the log has been
// quiet for CheckpointLag; a batch it reads is applied and saved at once.
func TestSelectiveCheckpoint(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := projections.NewRunner(ctx, f.db, nil, accounts.Projection{})
	if err != nil {
		t.Fatal(err)
	}
	go r.Run(ctx, func(ctx context.Context, after event.Position) (projections.Tail, error) {
		return f.store.Subscribe(ctx, after)
	})
	created := f.create(t, "a@example.com", 1)
	waitFor(t, func() bool { cp, _ := r.Checkpoint(ctx, accounts.Name); return cp == created.Position })
	// An event the accounts projection does not read.
	e, err := event.New(f.ids, time.Unix(1800000000, 0), "SomethingElse", 1, "", struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.store.Append(ctx, "elsewhere", eventstore.NoStream, e)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, func() bool { cp, _ := r.Checkpoint(ctx, accounts.Name); return cp == out[0].Position })
	if took := time.Since(start); took < projections.CheckpointLag/2 {
		t.Errorf("the checkpoint past a skipped batch was written after %v: not lazily", took)
	}
	if n := count(t, f.db); n != 1 {
		t.Fatalf("%d accounts, want 1", n)
	}
}

// Position follows a Selective projection past the events it skips at
// once, while its stored checkpoint waits CheckpointLag; the subscription
// Run asks for names the projection (Following), for the metrics.
func TestPositionLeadsLazyCheckpoint(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := projections.NewRunner(ctx, f.db, nil, accounts.Projection{})
	if err != nil {
		t.Fatal(err)
	}
	following := make(chan string, 1)
	go r.Run(ctx, func(ctx context.Context, after event.Position) (projections.Tail, error) {
		following <- projections.Following(ctx)
		return f.store.Subscribe(ctx, after)
	})
	if got := <-following; got != accounts.Name {
		t.Errorf("Following in the subscription's context: %q, want %q", got, accounts.Name)
	}
	if projections.Following(ctx) != "" {
		t.Error("Following outside a subscription is not empty")
	}
	created := f.create(t, "a@example.com", 1)
	waitFor(t, func() bool { p, _ := r.Position(ctx, accounts.Name); return p == created.Position })
	e, err := event.New(f.ids, time.Unix(1800000000, 0), "SomethingElse", 1, "", struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.store.Append(ctx, "elsewhere", eventstore.NoStream, e)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		p, err := r.Position(ctx, accounts.Name)
		if err != nil {
			t.Fatal(err)
		}
		if p == out[0].Position {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("position %v, want %v", p, out[0].Position)
		}
	}
	if cp, _ := r.Checkpoint(ctx, accounts.Name); cp == out[0].Position {
		t.Error("the checkpoint reached the skipped event as soon as the position did: Position shows nothing the checkpoint does not")
	}
}

// Await returns once the rows show everything up to the position, and
// not before; a context that ends first gets its error.
func TestAwait(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := projections.NewRunner(ctx, f.db, nil, accounts.Projection{})
	if err != nil {
		t.Fatal(err)
	}
	first := f.create(t, "a@example.com", 1)
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stop()
	if err := r.Await(short, accounts.Name, first.Position); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Await before Run: %v, want the deadline", err)
	}
	go r.Run(ctx, func(ctx context.Context, after event.Position) (projections.Tail, error) {
		return f.store.Subscribe(ctx, after)
	})
	for i, j := range []string{"b@example.com", "c@example.com", "d@example.com"} {
		e := f.create(t, j, 1)
		if err := r.Await(ctx, accounts.Name, e.Position); err != nil {
			t.Fatal(err)
		}
		if n := count(t, f.db); n != i+2 {
			t.Fatalf("after Await: %d accounts, want %d", n, i+2)
		}
	}
}
