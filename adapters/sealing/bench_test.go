package sealing_test

// What sealing costs the SQLite store, in one run (make bench: -benchtime
// 1x), in three variants on files of their own:
//
//	plain     no codec: the store as it was before sealing
//	seal-off  the codec with sealing off (serve --seal-content=false)
//	seal-on   the codec sealing (serve's default)
//
//	append/<n>-writers/<variant>  n goroutines, one ChatMessageSent per
//	    Append to a conversation stream of their own, each from its own
//	    author (one message key each), with an inline read model as serve
//	    keeps the archive (it sees the events opened)
//	follow/<variant>  a follower (another process, a restart) reads the
//	    log in pages of 4096 with ReadAll, on a store and codec of its own,
//	    so that every sealed event is opened once, keys fetched included
//	codec/seal/<variant>, codec/open/<variant>  the codec alone: Seal
//	    one event at a time, as Append does, and Open pages of 4096 on a
//	    codec of its own, as follow does (plain has no codec)
//
// Each figure is ns/event, wall time and the process's CPU time, from a
// run of thousands of events; b.N only repeats it. The summary gives each
// variant's ratio to plain. Durability
// is normal: with full, an fsync per group commit hides most of the CPU
// that sealing adds, and this is where to see it.

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"annals.im/annals/adapters/sealing"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore/sqlite"
)

const (
	sealAppendEvents = 20_000
	sealAppendCap    = 6 * time.Second // a run stops early after it; the figure is from what it appended
	sealFollowEvents = 4 * sealPage
	sealPage         = 4096
	sealAuthors      = 64 // the follower's log: one message key each
)

// sealVariant is one way the store is opened.
type sealVariant struct {
	name  string
	codec bool // the store has a codec
	seal  bool // which seals
}

var sealVariants = []sealVariant{{"plain", false, false}, {"seal-off", true, false}, {"seal-on", true, true}}

// sealStore opens a store on path as serve does (its preallocated WAL,
// lazy heads, keys in the same file), with v's codec; close closes both.
func sealStore(b *testing.B, path string, v sealVariant) (s *sqlite.Store, close func()) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path, sqlite.Options{Durability: sqlite.DurabilityNormal, PreallocateWAL: sqlite.ServerWAL, LazyHeads: true})
	if err != nil {
		b.Fatal(err)
	}
	if !v.codec {
		return s, func() { s.Close() }
	}
	db, err := sqlite.OpenDB(path)
	if err != nil {
		s.Close()
		b.Fatal(err)
	}
	close = func() { s.Close(); db.Close() }
	keys, err := sealing.OpenSQLKeys(ctx, db, kek)
	if err != nil {
		close()
		b.Fatal(err)
	}
	s.SetCodec(sealing.New(keys, v.seal))
	return s, close
}

// sealedMark starts a sealed field (codec.go).
var sealedMark = []byte(`{"sealed":"`)

// chatEvent is message n of author a to its partner, shaped as the
// ChatMessageSent c2s appends (testdata/events/ChatMessageSent.v1.json).
func chatEvent(b *testing.B, ids *event.IDs, a, n int) event.Envelope {
	from, to := fmt.Sprintf("user%d@example.com", a), fmt.Sprintf("partner%d@example.com", a)
	e, err := event.New(ids, time.Now(), archive.TypeMessageSent, archive.Schema, fmt.Sprintf("message-%d-%d", a, n), archive.MessageSent{
		From: from + "/phone", To: to, Kind: "chat", WellFormed: true,
		Stanza: fmt.Sprintf("<message xmlns='jabber:client' type='chat' id='m-%d-%d' to='%s' from='%s/phone'><body>message %d: did the build go green today?</body></message>",
			a, n, to, from, n),
		SenderID: fmt.Sprintf("5f3c1a0d9e2b7c44:m-%d-%d", a, n), RecipientID: ids.New(time.Now()).String()})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func chatStream(a int) string {
	return archive.Stream(fmt.Sprintf("user%d@example.com", a), fmt.Sprintf("partner%d@example.com", a))
}

// seenInline is an inline read model that keeps nothing but its
// checkpoint: it makes the writer open each batch for it, as it does for
// the archive in serve, without adding the archive's own work.
type seenInline struct {
	mu   sync.Mutex
	last event.Position
}

func (*seenInline) Name() string { return "bench/seen" }

func (m *seenInline) Checkpoint(context.Context, *sql.Tx) (event.Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last, nil
}

func (m *seenInline) Apply(_ context.Context, _ *sql.Tx, evs []event.Envelope) error {
	for _, e := range evs {
		if bytes.Contains(e.Data, sealedMark) {
			return fmt.Errorf("%s reached the read model sealed: %s", e.ID, e.Data)
		}
	}
	m.mu.Lock()
	m.last = evs[len(evs)-1].Position
	m.mu.Unlock()
	return nil
}

// clock is the benchmark's timer with the process's CPU time beside it
// (every thread, SQLite's included): on a shared machine, CPU time per
// event moves less with other work than wall time does.
type clock struct {
	b       *testing.B
	cpu, at time.Duration
}

func (c *clock) start() {
	c.at = cpuTime()
	c.b.StartTimer()
}

func (c *clock) stop() {
	c.b.StopTimer()
	c.cpu += cpuTime() - c.at
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sealResults: wall and CPU ns/event by sub-benchmark, for the summary.
var sealResults struct {
	sync.Mutex
	ns, cpu map[string]float64
	order   []string
}

// sealResult reports what c timed over events.
func sealResult(b *testing.B, c *clock, group, variant string, events int) {
	ns := float64(b.Elapsed().Nanoseconds()) / float64(events)
	cpu := float64(c.cpu.Nanoseconds()) / float64(events)
	b.ReportMetric(ns, "ns/event")
	b.ReportMetric(cpu, "cpu-ns/event")
	b.ReportMetric(float64(events), "events")
	if strings.Contains(b.Name(), "/warm-up") {
		return
	}
	sealResults.Lock()
	defer sealResults.Unlock()
	if !slices.Contains(sealResults.order, group) {
		sealResults.order = append(sealResults.order, group)
	}
	sealResults.ns[group+"/"+variant] = ns
	sealResults.cpu[group+"/"+variant] = cpu
}

func BenchmarkSealedLog(b *testing.B) {
	sealResults.Lock()
	sealResults.ns, sealResults.cpu, sealResults.order = map[string]float64{}, map[string]float64{}, nil
	sealResults.Unlock()
	// The variants take turns within each shape, so that a change in
	// the machine's load weighs on all three alike, after a run that is
	// not counted: the variant measured first would pay for the process
	// warming up.
	b.Run("warm-up", func(b *testing.B) { benchSealAppend(b, sealVariants[0], 16) })
	for _, writers := range []int{1, 16, 64} {
		for _, v := range sealVariants {
			b.Run(fmt.Sprintf("append/%d-writers/%s", writers, v.name), func(b *testing.B) { benchSealAppend(b, v, writers) })
		}
	}
	for _, v := range sealVariants {
		b.Run("follow/"+v.name, func(b *testing.B) { benchSealFollow(b, v) })
	}
	for _, op := range []string{"seal", "open"} {
		for _, v := range sealVariants[1:] {
			b.Run("codec/"+op+"/"+v.name, func(b *testing.B) { benchSealCodec(b, v, op) })
		}
	}

	sealResults.Lock()
	defer sealResults.Unlock()
	if len(sealResults.order) == 0 {
		return
	}
	fmt.Println("\nSealedLog summary: ns/event, wall and CPU (this process), and each variant over plain")
	if l := loadavg(); l != "" {
		fmt.Printf("  load average (1, 5, 15 min) at the end: %s\n", l)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\t\tplain\tseal-off\tseal-on\tseal-off/plain\tseal-on/plain\tseal-on/seal-off\t")
	for _, g := range sealResults.order {
		for _, m := range []struct {
			name string
			ns   map[string]float64
		}{{"wall", sealResults.ns}, {"cpu", sealResults.cpu}} {
			p, off, on := m.ns[g+"/plain"], m.ns[g+"/seal-off"], m.ns[g+"/seal-on"]
			fmt.Fprintf(tw, "  %s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t\n", g, m.name, p, off, on, ratio(off, p), ratio(on, p), ratio(on, off))
		}
	}
	tw.Flush()
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("x%.3f", a/b)
}

// benchSealAppend runs writers goroutines, each appending one event per
// call to its own stream, until sealAppendEvents are appended (or
// sealAppendCap passes), as eventstore/sqlite's append benchmark does.
func benchSealAppend(b *testing.B, v sealVariant, writers int) {
	ctx := context.Background()
	s, closeStore := sealStore(b, filepath.Join(b.TempDir(), "annals.db"), v)
	defer closeStore()
	seen := &seenInline{}
	s.SetInline(seen)
	ids := event.NewIDs()
	versions := make([]int64, writers)
	var total int64
	c := &clock{b: b}
	b.StopTimer()
	b.ResetTimer()
	for range b.N {
		// The events are made before the timer starts, round by round
		// so that their IDs grow in about the order they are appended.
		evs := make([][]event.Envelope, writers)
		for k := range sealAppendEvents {
			w := k % writers
			evs[w] = append(evs[w], chatEvent(b, ids, w, int(versions[w])+len(evs[w])))
		}
		runtime.GC()
		c.start()
		var done atomic.Int64
		var failed atomic.Pointer[error]
		deadline := time.Now().Add(sealAppendCap)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, e := range evs[w] {
					if time.Now().After(deadline) {
						return
					}
					out, err := s.Append(ctx, chatStream(w), versions[w], e)
					if err == nil && (len(out) != 1 || string(out[0].Data) != string(e.Data)) {
						err = fmt.Errorf("append to %s answered %+v, not the event appended", chatStream(w), out)
					}
					if err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
					versions[w] = int64(out[0].Version)
					done.Add(1)
				}
			}()
		}
		wg.Wait()
		c.stop()
		if p := failed.Load(); p != nil {
			b.Fatal(*p)
		}
		total += done.Load()
	}
	if seen.last == (event.Position{}) {
		b.Fatal("the inline read model saw nothing")
	}
	sealResult(b, c, fmt.Sprintf("append/%d-writers", writers), v.name, int(total))
}

// benchSealFollow appends sealFollowEvents from sealAuthors authors, then
// reads them all in pages, each time on a store and codec opened anew:
// nothing opened before is remembered, as in another process.
func benchSealFollow(b *testing.B, v sealVariant) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "annals.db")
	w, closeW := sealStore(b, path, v)
	ids := event.NewIDs()
	const perCall = 64
	for n := 0; n < sealFollowEvents/sealAuthors; n += perCall {
		for a := range sealAuthors {
			batch := make([]event.Envelope, perCall)
			for i := range batch {
				batch[i] = chatEvent(b, ids, a, n+i)
			}
			if _, err := w.Append(ctx, chatStream(a), int64(n), batch...); err != nil {
				b.Fatal(err)
			}
		}
	}
	closeW()
	// The log keeps what the variant says: sealed stanzas for seal-on
	// only.
	raw, closeRaw := sealStore(b, path, sealVariants[0])
	page, err := raw.ReadAll(ctx, event.Position{}, 1)
	closeRaw()
	if err != nil || len(page) != 1 || bytes.Contains(page[0].Data, sealedMark) != v.seal {
		b.Fatalf("the log keeps %v (%v), want it sealed: %v", page, err, v.seal)
	}
	// Each pass opens the store and codec anew. The first is not timed:
	// the variant measured first would pay for the process warming up.
	var total int
	c := &clock{b: b}
	pass := func(timed bool) {
		s, closeStore := sealStore(b, path, v)
		defer closeStore()
		runtime.GC()
		if timed {
			c.start()
		}
		var after event.Position
		read := 0
		for {
			page, err := s.ReadAll(ctx, after, sealPage)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, e := range []event.Envelope{page[0], page[len(page)-1]} {
				if !bytes.Contains(e.Data, []byte("did the build go green")) {
					b.Fatalf("%s reads %s", e.ID, e.Data)
				}
			}
			read += len(page)
			after = page[len(page)-1].Position
		}
		if timed {
			c.stop()
			total += read
		}
		if read != sealFollowEvents {
			b.Fatalf("read %d events, want %d", read, sealFollowEvents)
		}
	}
	b.StopTimer()
	b.ResetTimer()
	pass(false)
	for range b.N {
		pass(true)
	}
	sealResult(b, c, "follow", v.name, total)
}

// loadavg returns the first three fields of /proc/loadavg, or "" off Linux.
func loadavg() string {
	p, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(p)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// benchSealCodec times the codec alone over sealAppendEvents events of
// sealAuthors authors, their keys made or fetched once first.
func benchSealCodec(b *testing.B, v sealVariant, op string) {
	ctx := context.Background()
	db, err := sqlite.OpenDB(filepath.Join(b.TempDir(), "keys.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	keys, err := sealing.OpenSQLKeys(ctx, db, kek)
	if err != nil {
		b.Fatal(err)
	}
	ids := event.NewIDs()
	evs := make([]event.Envelope, sealAppendEvents)
	for i := range evs {
		evs[i] = chatEvent(b, ids, i%sealAuthors, i/sealAuthors)
	}
	sealer := sealing.New(keys, v.seal)
	if _, err := sealer.Seal(ctx, evs[:sealAuthors]); err != nil { // the keys
		b.Fatal(err)
	}
	kept := make([]event.Envelope, len(evs))
	c := &clock{b: b}
	b.StopTimer()
	b.ResetTimer()
	for range b.N {
		if op == "seal" {
			runtime.GC()
			c.start()
		}
		for i := range evs {
			out, err := sealer.Seal(ctx, evs[i:i+1])
			if err != nil {
				b.Fatal(err)
			}
			kept[i] = out[0]
		}
		if op == "seal" {
			c.stop()
			continue
		}
		opener := sealing.New(keys, v.seal)
		if err := opener.Open(ctx, slices.Clone(kept[:sealAuthors])); err != nil { // the keys
			b.Fatal(err)
		}
		page := make([]event.Envelope, sealPage)
		runtime.GC()
		c.start()
		for i := 0; i < len(kept); i += sealPage {
			n := copy(page, kept[i:])
			if err := opener.Open(ctx, page[:n]); err != nil {
				b.Fatal(err)
			}
		}
		c.stop()
		if !bytes.Contains(page[0].Data, []byte("did the build go green")) || bytes.Contains(page[0].Data, sealedMark) {
			b.Fatalf("opened as %s", page[0].Data)
		}
	}
	if bytes.Contains(kept[0].Data, sealedMark) != v.seal {
		b.Fatalf("%s kept as %s", v.name, kept[0].Data)
	}
	sealResult(b, c, "codec/"+op, v.name, b.N*len(evs))
}
