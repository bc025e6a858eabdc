package jetstream_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"

	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/jetstream"
	"annals.im/annals/eventstore/jetstream/natstest"
	"annals.im/annals/eventstore/storetest"
)

func open(urls string, opts jetstream.Options) storetest.Open {
	return func(t testing.TB, _ string) eventstore.Store {
		s, err := jetstream.Connect(context.Background(), urls, opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// openCodec opens a store sealing and opening with c, given by SetCodec
// after Connect as cmd/annals does (its codec's keys are in the store's
// bucket).
func openCodec(urls string, opts jetstream.Options) storetest.OpenCodec {
	return func(t testing.TB, _ string, c eventstore.Codec) eventstore.Store {
		s, err := jetstream.Connect(context.Background(), urls, opts)
		if err != nil {
			t.Fatal(err)
		}
		if c != nil {
			s.SetCodec(c)
		}
		return s
	}
}

// envDebianURLs carries the Debian cluster's URLs to the crash test's
// child, as envURLs does the shared cluster's.
const envDebianURLs = "ANNALS_JETSTREAM_TEST_DEBIAN_URLS"

// TestConformance runs the whole storetest suite, sealing included
// (RunCodec), against three embedded servers, and against three
// processes of Debian's nats-server (2.9), with the log replicated three
// times. The crash test's child is this
// binary again, appending over its own connection to the same cluster
// until the parent kills it.
func TestConformance(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, open(sharedURLs(), jetstream.Options{Replicas: 3}))
		storetest.RunCodec(t, openCodec(sharedURLs(), jetstream.Options{Replicas: 3}))
	})
	t.Run("debian", func(t *testing.T) {
		t.Parallel()
		urls := os.Getenv(envDebianURLs)
		if urls == "" {
			urls = natstest.Debian(t, 3).URLs()
			os.Setenv(envDebianURLs, urls)
			t.Cleanup(func() { os.Unsetenv(envDebianURLs) })
		}
		storetest.Run(t, open(urls, jetstream.Options{Replicas: 3}))
		storetest.RunCodec(t, openCodec(urls, jetstream.Options{Replicas: 3}))
	})
}

var ids = event.NewIDs()

func proposed(t testing.TB, n int) []event.Envelope {
	t.Helper()
	out := make([]event.Envelope, n)
	for i := range out {
		e, err := event.New(ids, time.Now(), "TestHappened", 1, "", map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e
	}
	return out
}

func connect(t testing.TB, opts jetstream.Options) *jetstream.Store {
	t.Helper()
	s, err := jetstream.Connect(context.Background(), sharedURLs(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func unique(t testing.TB) string { return strings.ToLower(ulid.Make().String()[14:]) }

// checkStream reads stream whole and checks dense versions and the chain.
func checkStream(t testing.TB, s eventstore.Store, stream string, want int) []event.Envelope {
	t.Helper()
	got, err := s.ReadStream(context.Background(), stream, 1, 10*want+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != want {
		t.Fatalf("%s has %d events, want %d", stream, len(got), want)
	}
	var prev []byte
	for i, e := range got {
		if e.Version != uint64(i+1) || !event.Verify(prev, e) {
			t.Fatalf("%s: event %d has version %d or does not chain", stream, i, e.Version)
		}
		prev = e.Hash
	}
	return got
}

// The streams the suite runs on are replicated three times, by the three
// servers, not merely configured so, and refuse deletes.
func TestReplicatedThreeTimes(t *testing.T) {
	s := connect(t, jetstream.Options{})
	if _, err := s.Append(context.Background(), unique(t)+"account-r3@example.com", eventstore.Any, proposed(t, 1)...); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(sharedURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := njs.New(nc)
	for _, name := range []string{"ANNALS", "ANNALS-IDS"} {
		st, err := js.Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		info := st.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("%s: config replicas %d, cluster %+v", name, info.Config.Replicas, info.Cluster)
		}
		if !info.Config.DenyDelete || !info.Config.DenyPurge || !info.Config.AllowDirect || info.State.Msgs == 0 {
			t.Fatalf("%s: config %+v, state %+v", name, info.Config, info.State)
		}
	}
}

func TestToken(t *testing.T) {
	long := strings.Repeat("é.", 1600) // 4800 bytes encoded: hashed
	cases := []struct{ name, want string }{
		{"account-juliet@example.com", "account-juliet@example%2Ecom"},
		{"room-a*b>c d", "room-a%2Ab%3Ec%20d"},
		{"x%2E", "x%252E"},
		{"é", "%C3%A9"},
		{long, "%%" + fmt.Sprintf("%x", sha256.Sum256([]byte(long)))},
	}
	seen := map[string]string{}
	for _, c := range cases {
		got := jetstream.Token(c.name)
		if got != c.want {
			t.Errorf("Token(%.40q) = %.80s, want %.80s", c.name, got, c.want)
		}
		if len(got) > 200 || strings.ContainsAny(got, ".*> \t\r\n") {
			t.Errorf("Token(%.40q) = %q is not one short subject token", c.name, got)
		}
		for _, r := range got {
			if r < '!' || r > '~' {
				t.Errorf("Token(%.40q) has %q", c.name, r)
			}
		}
		if other, ok := seen[got]; ok {
			t.Errorf("%q and %q share token %q", c.name, other, got)
		}
		seen[got] = c.name
	}
	// The escape character is escaped, so "x." and "x%2E" differ.
	if jetstream.Token("x.") == jetstream.Token("x%2E") {
		t.Error("escaped and literal forms collide")
	}
}

// Any stream name a store accepts can be appended to and read back,
// however long and whatever it holds.
func TestAwkwardStreamNames(t *testing.T) {
	s := connect(t, jetstream.Options{})
	ctx := context.Background()
	p := unique(t)
	for _, name := range []string{
		p + "room-a.b.c@conference.example.com",
		p + "room-*>",
		p + "room with spaces and ünïcode 🎉",
		p + strings.Repeat("ж.", event.MaxStreamLen/3-len(p)),
	} {
		if _, err := s.Append(ctx, name, eventstore.NoStream, proposed(t, 2)...); err != nil {
			t.Fatalf("%.40q: %v", name, err)
		}
		if _, err := s.Append(ctx, name, eventstore.Any, proposed(t, 1)...); err != nil {
			t.Fatalf("%.40q: %v", name, err)
		}
		for _, e := range checkStream(t, s, name, 3) {
			if e.Stream != name {
				t.Fatalf("read back stream %.40q", e.Stream)
			}
		}
	}
}

// Two stores appending to one stream with Any each chain from a head the
// other has moved: the server refuses the stale one, which starts over.
func TestStaleHeadsDoNotFork(t *testing.T) {
	a, b := connect(t, jetstream.Options{}), connect(t, jetstream.Options{})
	ctx := context.Background()
	stream := unique(t) + "room-shared@example.com"
	const rounds = 20
	for i := 0; i < rounds; i++ {
		for _, s := range []*jetstream.Store{a, b} {
			if _, err := s.Append(ctx, stream, eventstore.Any, proposed(t, 1+i%2)...); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkStream(t, a, stream, rounds*3)
}

// The head cache stays within MaxCachedHeads.
func TestHeadCacheBound(t *testing.T) {
	for _, c := range []struct{ max, want int }{{0, 10}, {4, 4}} {
		s := connect(t, jetstream.Options{MaxCachedHeads: c.max})
		p := unique(t)
		most := 0
		for i := 0; i < 10; i++ {
			if _, err := s.Append(context.Background(), fmt.Sprintf("%saccount-%d@example.com", p, i), eventstore.Any, proposed(t, 1)...); err != nil {
				t.Fatal(err)
			}
			most = max(most, s.CachedHeads())
		}
		if most != c.want {
			t.Errorf("MaxCachedHeads %d: cache held up to %d heads, want %d", c.max, most, c.want)
		}
	}
}

// The default MaxAppend takes 400 events; one more is refused before any
// write, and so is an append larger than the servers' max_payload, since
// an append is one message.
func TestMaxAppend(t *testing.T) {
	s := connect(t, jetstream.Options{})
	ctx := context.Background()
	stream := unique(t) + "room-big@example.com"
	if _, err := s.Append(ctx, stream, eventstore.NoStream, proposed(t, 400)...); err != nil {
		t.Fatalf("400 events: %v", err)
	}
	// Reads from inside the one message find it, far below.
	for _, from := range []uint64{400, 200, 2} {
		got, err := s.ReadStream(ctx, stream, from, 3)
		if err != nil || len(got) != min(3, int(401-from)) || got[0].Version != from {
			t.Fatalf("ReadStream from %d: %d events, %v", from, len(got), err)
		}
	}
	if _, err := s.Append(ctx, stream, eventstore.Any, proposed(t, 401)...); !errors.Is(err, event.ErrInvalid) {
		t.Fatalf("401 events: err = %v, want event.ErrInvalid", err)
	}
	small := connect(t, jetstream.Options{MaxAppend: 2})
	if _, err := small.Append(ctx, stream, eventstore.Any, proposed(t, 3)...); !errors.Is(err, event.ErrInvalid) {
		t.Fatalf("MaxAppend 2, 3 events: err = %v, want event.ErrInvalid", err)
	}
	big := proposed(t, 3)
	for i := range big {
		big[i].Data = []byte(`{"x":"` + strings.Repeat("x", 600<<10) + `"}`)
	}
	if _, err := s.Append(ctx, stream, eventstore.Any, big[0]); err != nil {
		t.Fatalf("600 KiB: %v", err)
	}
	if _, err := s.Append(ctx, stream, eventstore.Any, big[1:]...); !errors.Is(err, event.ErrInvalid) {
		t.Fatalf("1.2 MiB in one append: err = %v, want event.ErrInvalid", err)
	}
	checkStream(t, s, stream, 401)
}

// Open refuses a stream that would not keep the store's promises: one
// that does not allow direct gets, or one with a limit that would delete
// events.
func TestOpenRefusesUnfitStream(t *testing.T) {
	nc, err := nats.Connect(sharedURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := njs.New(nc)
	ctx := context.Background()
	for _, c := range []struct {
		cfg  njs.StreamConfig
		want string
	}{
		{njs.StreamConfig{Subjects: []string{"plain.log.>"}}, "direct"},
		{njs.StreamConfig{Subjects: []string{"plain.log.>"}, AllowDirect: true, MaxAge: time.Hour}, "limits"},
		{njs.StreamConfig{Subjects: []string{"plain.>"}, AllowDirect: true}, "subjects"},
	} {
		c.cfg.Name, c.cfg.Replicas = "PLAIN", 3
		if _, err := js.CreateOrUpdateStream(ctx, c.cfg); err != nil {
			t.Fatal(err)
		}
		if s, err := jetstream.Open(ctx, nc, jetstream.Options{Stream: "PLAIN", Prefix: "plain"}); err == nil || !strings.Contains(err.Error(), c.want) {
			if s != nil {
				s.Close()
			}
			t.Errorf("open over %+v: err = %v, want one saying %q", c.cfg, err, c.want)
		}
		if err := js.DeleteStream(ctx, "PLAIN"); err != nil {
			t.Fatal(err)
		}
	}
}

// Reads served by a replica that lags the leader still return every
// acknowledged event: what a replica did not have is asked of the leader.
func TestLaggingReplica(t *testing.T) {
	s := connect(t, jetstream.Options{})
	ctx := context.Background()
	stream := unique(t) + "room-lag@example.com"
	var want []event.Envelope
	for i := 0; i < 10; i++ {
		out, err := s.Append(ctx, stream, eventstore.Any, proposed(t, 1+i%3)...)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, out...)
	}
	s.Lag(jetstream.SeqOf(want[len(want)/2].Position))
	got := checkStream(t, s, stream, len(want))
	for i := range got {
		if got[i].ID != want[i].ID || got[i].Position != want[i].Position {
			t.Fatalf("ReadStream event %d = %s at %s, want %s at %s", i, got[i].ID, got[i].Position, want[i].ID, want[i].Position)
		}
	}
	all, err := s.ReadAll(ctx, event.Position{Commit: want[0].Position.Commit - 1, Prepare: want[0].Position.Commit - 1}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var mine []event.Envelope
	for _, e := range all {
		if e.Stream == stream {
			mine = append(mine, e)
		}
	}
	if len(mine) != len(want) || mine[len(mine)-1].ID != want[len(want)-1].ID {
		t.Fatalf("ReadAll found %d of the stream's %d events", len(mine), len(want))
	}
}

// audit verify (eventstore.Verify) catches a writer that bypasses the
// store: an event whose hash does not chain, or one that skips a version.
// The servers refuse to delete an event at all.
func TestVerifyCatchesForgery(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		forge  func(e *event.Envelope)
		reason string
	}{
		{"bad hash", func(e *event.Envelope) { e.Hash[0] ^= 1 }, "hash does not match"},
		{"skipped version", func(e *event.Envelope) { e.Version++; e.Hash = nil }, "missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := "forge" + strings.ToLower(ulid.Make().String()[16:])
			s := connect(t, jetstream.Options{Stream: strings.ToUpper(p), Prefix: p})
			stream := "room-audit@example.com"
			out, err := s.Append(ctx, stream, eventstore.NoStream, proposed(t, 2)...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := eventstore.Verify(ctx, s); err != nil {
				t.Fatalf("before forging: %v", err)
			}
			f := proposed(t, 1)[0]
			f.Stream, f.Version = stream, 3
			f.Hash = event.Chain(out[1].Hash, f)
			c.forge(&f)
			data, _ := json.Marshal([]event.Envelope{f})
			nc, err := nats.Connect(sharedURLs())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := njs.New(nc)
			if _, err := js.Publish(ctx, fmt.Sprintf("%s.log.%s.%d", p, jetstream.Token(stream), f.Version), data); err != nil {
				t.Fatal(err)
			}
			_, err = eventstore.Verify(ctx, s)
			var broken *eventstore.BrokenError
			if !errors.As(err, &broken) || !strings.Contains(broken.Reason, c.reason) {
				t.Fatalf("Verify = %v, want a BrokenError saying %q", err, c.reason)
			}
			st, err := js.Stream(ctx, strings.ToUpper(p))
			if err != nil {
				t.Fatal(err)
			}
			if err := st.DeleteMsg(ctx, jetstream.SeqOf(out[1].Position)); err == nil {
				t.Fatal("the servers deleted an event")
			}
		})
	}
}
