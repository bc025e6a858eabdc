package jetstream_test

// Append throughput of the JetStream store (three embedded servers, the
// log replicated three times, all on this machine's loopback) beside the
// SQLite store at its serving durability, and beside raw JetStream
// publishes of the same bytes, in one run (make bench: -benchtime 1x).
// Each sub-benchmark appends a fixed number of chat-sized events (or until
// appendTimeCap) and reports events/s; b.N only repeats that run.
//
//	raw-publish/<n>           n goroutines, one JetStream publish (R3) per event, no expectation
//	jetstream/<n>             n goroutines, one event per Append with Any, own stream each
//	sqlite-full/<n>           the same appends on eventstore/sqlite, DurabilityFull
//
// Each Append is two replicated writes one after the other: its event's
// claim, then its append (doc.go, Idempotent retries); raw-publish is one.
// The durabilities differ: SQLite's ack follows an fdatasync; JetStream's
// follows a quorum of replicas holding the message, which sync to disk
// every two minutes by default (doc.go, Durability). And the three
// servers, the client and the test share this machine's cores, where a
// deployment gives each server its own: the JetStream figures are CPU-bound
// here with many writers.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/jetstream"
	"annals.im/annals/eventstore/sqlite"
)

const (
	benchEvents   = 20_000
	appendTimeCap = 8 * time.Second
)

type chatEvent struct {
	Room, From, StanzaID, Body string
}

func benchEvent(ids *event.IDs, user, n int) event.Envelope {
	e, err := event.New(ids, time.Now(), "MessagePosted", 1, fmt.Sprintf("stanza-%d-%d", user, n), chatEvent{
		Room: "lounge@conference.example.com", From: fmt.Sprintf("user%d@example.com/phone", user),
		StanzaID: fmt.Sprintf("st-%08d-%04d", n, user), Body: fmt.Sprintf("message %d: did the build go green today?", n)})
	if err != nil {
		panic(err)
	}
	return e
}

var benchRows struct {
	sync.Mutex
	rate map[string]float64
}

func BenchmarkAppend(b *testing.B) {
	benchRows.Lock()
	benchRows.rate = map[string]float64{}
	benchRows.Unlock()
	for _, w := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("raw-publish/%d", w), func(b *testing.B) { benchRaw(b, w) })
		b.Run(fmt.Sprintf("jetstream/%d", w), func(b *testing.B) {
			s, err := jetstream.Connect(context.Background(), sharedURLs(), jetstream.Options{Stream: "BENCH", Prefix: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchStore(b, s, w)
		})
		b.Run(fmt.Sprintf("sqlite-full/%d", w), func(b *testing.B) {
			s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "annals.db"),
				sqlite.Options{Durability: sqlite.DurabilityFull, PreallocateWAL: 64 << 20, LazyHeads: true})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchStore(b, s, w)
		})
	}
	benchRows.Lock()
	defer benchRows.Unlock()
	names := make([]string, 0, len(benchRows.rate))
	for n := range benchRows.rate {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stdout, "\nAppend summary (events/s; ratio to sqlite-full with as many writers)")
	for _, n := range names {
		var w int
		fmt.Sscanf(n[len(filepath.Dir(n))+1:], "%d", &w)
		ratio := benchRows.rate[n] / benchRows.rate[fmt.Sprintf("sqlite-full/%d", w)]
		fmt.Fprintf(os.Stdout, "  %-18s %9.0f  %.2fx\n", n, benchRows.rate[n], ratio)
	}
}

func record(b *testing.B, name string, events int64, d time.Duration) {
	rate := float64(events) / d.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(0, "ns/op")
	benchRows.Lock()
	benchRows.rate[name] = rate
	benchRows.Unlock()
}

// run starts writers goroutines, each calling one(w, n) until benchEvents
// are done in all or appendTimeCap passes, and returns how many were.
func run(b *testing.B, writers int, one func(w, n int) error) (int64, time.Duration) {
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				if done.Load() >= benchEvents || time.Since(start) > appendTimeCap {
					return
				}
				if err := one(w, n); err != nil {
					b.Error(err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return done.Load(), time.Since(start)
}

func benchStore(b *testing.B, s eventstore.Store, writers int) {
	for i := 0; i < b.N; i++ {
		ids := event.NewIDs()
		prefix := fmt.Sprintf("b%d-%d-", i, time.Now().UnixNano())
		n, d := run(b, writers, func(w, n int) error {
			_, err := s.Append(context.Background(), fmt.Sprintf("%saccount-user%d@example.com", prefix, w), eventstore.Any, benchEvent(ids, w, n))
			return err
		})
		record(b, b.Name()[len("BenchmarkAppend/"):], n, d)
	}
}

// benchRaw publishes each event's JSON as one message to an R3 stream and
// waits for its ack: what JetStream costs before this store adds a claim
// written first and an expectation.
func benchRaw(b *testing.B, writers int) {
	nc, err := nats.Connect(sharedURLs())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := njs.New(nc)
	ctx := context.Background()
	if _, err := js.CreateOrUpdateStream(ctx, njs.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}, Replicas: 3, Storage: njs.FileStorage}); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		ids := event.NewIDs()
		n, d := run(b, writers, func(w, n int) error {
			e := benchEvent(ids, w, n)
			data, _ := e.MarshalJSON()
			_, err := js.Publish(ctx, fmt.Sprintf("raw.account-user%d", w), data)
			return err
		})
		record(b, b.Name()[len("BenchmarkAppend/"):], n, d)
	}
}
