package rooms_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"annals.im/annals/app/internal/apptest"
	"annals.im/annals/app/rooms"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
)

const (
	service = "conference.example.com"
	hall    = "hall@" + service
)

func open(t *testing.T) (*apptest.Env, *rooms.Service) {
	t.Helper()
	env := apptest.Open(t)
	return env, rooms.New(env.Store, env.IDs, env.DB, service)
}

func joinCmd(acct, nick string) func(room.State) any {
	return func(room.State) any { return room.Join{Account: acct, Nick: nick, Create: true} }
}

// Do decides on the room's state and appends with the context's cause,
// or "c2s"; a refusal, the caller's or the rules', appends nothing.
func TestDo(t *testing.T) {
	t.Parallel()
	env, rms := open(t)
	refuse := errors.New("the caller refuses")
	steps := []struct {
		name       string
		cause      string // given in the context; "" none
		cmd        func(room.State) any
		wantErr    error
		wantEvents int // in the stream afterwards
		want       string
	}{
		{"create", "", joinCmd("juliet@example.com", "juliet"), nil, 2, "c2s"},
		{"join for a stanza", "presence-3", joinCmd("romeo@example.com", "romeo"), nil, 3, "presence-3"},
		{"nick in use", "presence-4", joinCmd("tybalt@example.com", "romeo"), room.ErrConflict, 3, "presence-3"},
		{"refused by the caller", "x", func(room.State) any { return refuse }, refuse, 3, "presence-3"},
		{"forget", "sweep", func(room.State) any { return room.Forget{Account: "romeo@example.com"} }, nil, 4, "sweep"},
	}
	for _, s := range steps {
		out, st, err := rms.Do(event.WithCause(context.Background(), s.cause), hall, s.cmd)
		if !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.wantErr)
		}
		evs := env.Events(t, room.Stream(hall))
		if len(evs) != s.wantEvents || evs[len(evs)-1].Cause != s.want {
			t.Fatalf("%s: %d events, the last caused by %q; want %d and %q", s.name, len(evs), evs[len(evs)-1].Cause, s.wantEvents, s.want)
		}
		if st.JID != hall || (err == nil && (len(out.Events) == 0 || st.Version != uint64(s.wantEvents))) {
			t.Fatalf("%s: state %s at %d after %d events", s.name, st.JID, st.Version, len(out.Events))
		}
	}
}

// At folds the stream up to a version, and says so when the stream does
// not reach it; Get names a room that does not exist.
func TestAtAndGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rms := open(t)
	for _, u := range []string{"juliet", "romeo", "nurse"} {
		if _, _, err := rms.Do(ctx, hall, joinCmd(u+"@example.com", u)); err != nil {
			t.Fatal(err)
		}
	}
	now, err := rms.Get(ctx, hall)
	if err != nil || len(now.Occupants) != 3 {
		t.Fatalf("Get: %d occupants, %v", len(now.Occupants), err)
	}
	cases := []struct {
		version   uint64
		occupants int
		fails     bool
	}{
		{0, 0, false},
		{2, 1, false}, // created (juliet its owner), juliet joined
		{3, 2, false},
		{now.Version, 3, false},
		{now.Version + 1, 0, true},
	}
	for _, c := range cases {
		st, err := rms.At(ctx, hall, c.version)
		if (err != nil) != c.fails {
			t.Fatalf("At %d: %v", c.version, err)
		}
		if c.fails {
			continue
		}
		if st.JID != hall || len(st.Occupants) != c.occupants || st.Version != c.version {
			t.Fatalf("At %d: %s with %d occupants at %d; want %d", c.version, st.JID, len(st.Occupants), st.Version, c.occupants)
		}
	}
	if st, err := rms.At(ctx, hall, now.Version); err != nil || !reflect.DeepEqual(st, now) {
		t.Fatalf("At the head differs from Get:\n%+v\n%+v (%v)", st, now, err)
	}
	if st, err := rms.Get(ctx, "crypt@"+service); err != nil || st.Exists || st.JID != "crypt@"+service {
		t.Fatalf("Get of no room: %+v %v", st, err)
	}
}

// Public lists the service's public, unlocked rooms from the read model.
func TestPublic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, rms := open(t)
	do := func(r string, cmd func(room.State) any) {
		t.Helper()
		if _, _, err := rms.Do(ctx, r, cmd); err != nil {
			t.Fatal(err)
		}
	}
	do(hall, joinCmd("juliet@example.com", "juliet"))
	do("crypt@"+service, joinCmd("romeo@example.com", "romeo"))
	do("crypt@"+service, func(s room.State) any {
		c := s.Config
		c.Public, c.Name = false, "the crypt"
		return room.Configure{By: "romeo@example.com", Config: c}
	})
	do("garden@"+service, func(room.State) any {
		return room.Join{Account: "nurse@example.com", Nick: "nurse", Create: true, Locked: true}
	})
	do(hall, func(s room.State) any {
		c := s.Config
		c.Name = "the great hall"
		return room.Configure{By: "juliet@example.com", Config: c}
	})
	do("hall@elsewhere.example.com", joinCmd("juliet@example.com", "juliet"))
	env.CatchUp(t)
	got, err := rms.Public(ctx)
	if want := []room.Listed{{JID: hall, Name: "the great hall"}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Public: %+v %v, want %+v", got, err, want)
	}
}

// Of waits until the read model has followed the log as far as it went
// when asked: a room joined a moment ago counts.
func TestOfWaitsForTheReadModel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, rms := open(t)
	if _, _, err := rms.Do(ctx, hall, joinCmd("juliet@example.com", "juliet")); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	if got, err := rms.Of(short, "juliet@example.com"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Of with the read model behind and nobody following the log: %v %v", got, err)
	}
	caughtUp := make(chan struct{})
	go func() {
		defer close(caughtUp)
		time.Sleep(100 * time.Millisecond)
		if _, err := env.Runner.CatchUp(ctx, env.Store); err != nil {
			t.Error(err)
		}
	}()
	got, err := rms.Of(ctx, "juliet@example.com")
	<-caughtUp
	if err != nil || !reflect.DeepEqual(got, []string{hall}) {
		t.Fatalf("Of: %v %v", got, err)
	}
	if err := rms.Forget(ctx, hall, "juliet@example.com"); err != nil {
		t.Fatal(err)
	}
	env.CatchUp(t)
	if got, err := rms.Of(ctx, "juliet@example.com"); err != nil || len(got) != 0 {
		t.Fatalf("Of after Forget: %v %v", got, err)
	}
}

// At start the occupants from other servers leave their rooms (cause
// shutdown); the accounts here stay.
func TestSweepRemoteOccupants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, rms := open(t)
	for _, c := range []func(room.State) any{
		joinCmd("juliet@example.com", "juliet"),
		joinCmd("romeo@elsewhere.example/orchard", "romeo"),
		joinCmd("mercutio@elsewhere.example/street", "mercutio"),
	} {
		if _, _, err := rms.Do(ctx, hall, c); err != nil {
			t.Fatal(err)
		}
	}
	env.CatchUp(t)
	n, err := rms.SweepRemoteOccupants(ctx)
	if err != nil || n != 2 {
		t.Fatalf("swept %d: %v; want the 2 remote occupants", n, err)
	}
	st, err := rms.Get(ctx, hall)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Occupants["juliet@example.com"]; !ok || len(st.Occupants) != 1 {
		t.Fatalf("occupants after the sweep: %v; want juliet alone", st.Occupants)
	}
	var d room.Left
	if e := env.Last(t, room.Stream(hall)); e.Type != room.TypeLeft || e.Decode(room.Schema, &d) != nil || d.Cause != "shutdown" {
		t.Fatalf("the last event: %s %+v; want a departure for shutdown", e.Type, d)
	}
	env.CatchUp(t)
	if n, err := rms.SweepRemoteOccupants(ctx); err != nil || n != 0 {
		t.Fatalf("a second sweep removed %d (%v)", n, err)
	}
}
