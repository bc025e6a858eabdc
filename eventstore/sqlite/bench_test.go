package sqlite_test

// Throughput of the SQLite event store next to raw SQLite on the same
// machine, in one run (make bench: -benchtime 1x). Every figure comes from
// a run of thousands of events, so each sub-benchmark sizes its own work and
// reports events/s; b.N only repeats that run.
//
//	raw-insert-baseline       one prepared INSERT loop, one transaction, one commit
//	append/<durability>/<n>   n goroutines, one event per Append, own stream each
//	replay                    ReadAll pages of 4096 over 200,000 events, beside a raw scan

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
)

const (
	rawInsertEvents = 50_000 // per transaction, as many as the largest append run
	rawInsertRuns   = 3      // fresh files per measurement, for a steadier figure
	// appendTimeCap stops an append run early (e.g. durability full with one
	// writer, one fsync per event) so that make bench stays short; the
	// figure then comes from the events appended until then.
	appendTimeCap  = 6 * time.Second
	replayEvents   = 200_000
	replayStreams  = 1_000
	replayPerCall  = 100
	replayPageSize = 4096
	benchType      = event.Type("MessagePosted")
)

// rawInsertRate is the events/s of raw-insert-baseline in this run; the
// append sub-benchmarks measure it themselves when it was filtered out.
var rawInsertRate float64

// benchResults collects one row per sub-benchmark for the summary table.
var benchResults struct {
	sync.Mutex
	rows [][2]string
}

func addResult(name, format string, args ...any) {
	benchResults.Lock()
	defer benchResults.Unlock()
	benchResults.rows = append(benchResults.rows, [2]string{name, fmt.Sprintf(format, args...)})
}

func BenchmarkEventLog(b *testing.B) {
	loadStart := loadavg()
	benchResults.Lock()
	benchResults.rows = nil
	benchResults.Unlock()

	b.Run("raw-insert-baseline", benchRawInsert)
	for _, d := range []sqlite.Durability{sqlite.DurabilityFull, sqlite.DurabilityNormal} {
		for _, w := range []struct {
			name    string
			writers int
			events  int
		}{
			{"1-writer", 1, 20_000},
			{"64-writers", 64, 50_000},
		} {
			b.Run(fmt.Sprintf("append/%s/%s", d, w.name), func(b *testing.B) {
				benchAppend(b, d, w.writers, w.events)
			})
		}
	}
	b.Run("replay", benchReplay)

	benchResults.Lock()
	defer benchResults.Unlock()
	if len(benchResults.rows) == 0 {
		return
	}
	fmt.Println("\nEventLog summary")
	if loadEnd := loadavg(); loadStart != "" {
		// Other work on the machine skews every figure: say how busy it
		// was (this benchmark alone keeps about 1-2 cores busy).
		fmt.Printf("  load average (1, 5, 15 min) before: %s, after: %s\n", loadStart, loadEnd)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	for _, r := range benchResults.rows {
		fmt.Fprintf(tw, "  %s\t%s\n", r[0], r[1])
	}
	tw.Flush()
}

// loadavg returns the first three fields of /proc/loadavg, or "" off Linux.
func loadavg() string {
	p, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(p)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// messagePosted is shaped like a chat event: about 150 bytes of JSON.
type messagePosted struct {
	Room     string `json:"room"`
	From     string `json:"from"`
	StanzaID string `json:"stanza_id"`
	Body     string `json:"body"`
}

func payload(user, n int) messagePosted {
	return messagePosted{
		Room:     "lounge@conference.example.com",
		From:     fmt.Sprintf("user%d@example.com/phone", user),
		StanzaID: fmt.Sprintf("st-%08d-%04d", n, user),
		Body:     fmt.Sprintf("message %d: did the build go green today?", n),
	}
}

func streamName(user int) string { return fmt.Sprintf("account-user%d@example.com", user) }

func newEvent(ids *event.IDs, user, n int) event.Envelope {
	e, err := event.New(ids, time.Now(), benchType, 1, fmt.Sprintf("stanza-%d-%d", user, n), payload(user, n))
	if err != nil {
		panic(err) // payload always encodes
	}
	return e
}

// eventsTable is the store's events table, read from a fresh store's file
// so that the raw baseline always has exactly the store's schema: its
// CREATE TABLE and its columns, in order.
var eventsTable struct {
	create string
	cols   []rawColumn
}

type rawColumn struct {
	name, typ string
	pk        bool
}

func loadEventsTable(b *testing.B) {
	if eventsTable.create != "" {
		return
	}
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "schema.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite3", rawDSN(path))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'`).Scan(&eventsTable.create); err != nil {
		b.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, `SELECT name, type, pk FROM pragma_table_info('events') ORDER BY cid`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var c rawColumn
		if err := rows.Scan(&c.name, &c.typ, &c.pk); err != nil {
			b.Fatal(err)
		}
		eventsTable.cols = append(eventsTable.cols, c)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
}

func rawDSN(path string) string {
	return "file:" + path + "?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=10000"
}

// rawInsert inserts n event-shaped rows (64 streams, like the 64-writer
// append) into a fresh file in dir with one prepared INSERT in one
// transaction and returns events/s. Only the transaction (prepare, inserts,
// commit) is measured; rows are built before. With timed, the benchmark
// timer, stopped on entry, runs for exactly that part.
func rawInsert(b *testing.B, dir string, n int, timed bool) float64 {
	ctx := context.Background()
	loadEventsTable(b)
	var names, marks []string
	for _, c := range eventsTable.cols {
		if c.pk { // position: the rowid, assigned by SQLite
			continue
		}
		names = append(names, c.name)
		marks = append(marks, "?")
	}
	ids := event.NewIDs()
	rows := make([][]any, n)
	for i := range rows {
		user := i % 64
		data, err := json.Marshal(payload(user, i))
		if err != nil {
			b.Fatal(err)
		}
		known := map[string]any{
			"id":          ids.New(time.Now()).Bytes(),
			"stream":      streamName(user),
			"version":     i/64 + 1,
			"type":        string(benchType),
			"schema":      1,
			"occurred_at": time.Now().UnixNano(),
			"cause":       fmt.Sprintf("stanza-%d-%d", user, i),
			"data":        data,
			"hash":        randomBytes(32),
		}
		args := make([]any, 0, len(names))
		for _, c := range eventsTable.cols {
			if c.pk {
				continue
			}
			v, ok := known[c.name]
			if !ok { // a column added since this benchmark was written
				switch strings.ToUpper(c.typ) {
				case "BLOB":
					v = randomBytes(32) // a hash, like hash
				case "INTEGER":
					v = i + 1
				default:
					v = c.name
				}
			}
			args = append(args, v)
		}
		rows[i] = args
	}
	db, err := sql.Open("sqlite3", rawDSN(filepath.Join(dir, "raw.db")))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, eventsTable.create); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	if timed {
		b.StartTimer()
	}
	start := time.Now()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO events (`+strings.Join(names, ", ")+`) VALUES (`+strings.Join(marks, ", ")+`)`)
	if err != nil {
		b.Fatal(err)
	}
	for _, args := range rows {
		if _, err := st.ExecContext(ctx, args...); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	if timed {
		b.StopTimer()
	}
	st.Close()
	return float64(n) / elapsed.Seconds()
}

func randomBytes(n int) []byte {
	p := make([]byte, n)
	rand.Read(p)
	return p
}

func benchRawInsert(b *testing.B) {
	var total int
	b.StopTimer()
	b.ResetTimer()
	for range b.N * rawInsertRuns {
		rawInsert(b, b.TempDir(), rawInsertEvents, true)
		total += rawInsertEvents
	}
	rate := float64(total) / b.Elapsed().Seconds()
	rawInsertRate = rate
	b.ReportMetric(rate, "events/s")
	addResult("raw-insert-baseline", "%9.0f events/s  (%d runs of %d events, one transaction each)", rate, total/rawInsertEvents, rawInsertEvents)
}

// benchAppend runs writers goroutines, each appending one event per call to
// its own stream with the expected version it last saw, until events events
// are appended (or appendTimeCap passes).
func benchAppend(b *testing.B, d sqlite.Durability, writers, events int) {
	if rawInsertRate == 0 {
		var sum float64
		for range rawInsertRuns {
			sum += 1 / rawInsert(b, b.TempDir(), rawInsertEvents, false)
		}
		rawInsertRate = rawInsertRuns / sum
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "annals.db"), sqlite.Options{Durability: d, PreallocateWAL: sqlite.ServerWAL, LazyHeads: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ids := event.NewIDs()
	versions := make([]int64, writers) // eventstore.NoStream
	var total, runs int64
	b.ResetTimer()
	for range b.N {
		// The events are made before the timer starts, as the raw
		// baseline's rows are: the figure is the cost of Append.
		b.StopTimer()
		// Round by round, so that IDs (ULIDs, in time order) grow in
		// about the order the events are appended, as they do live.
		evs := make([][]event.Envelope, writers)
		for w := range evs {
			evs[w] = make([]event.Envelope, 0, events/writers+1)
		}
		for k := range events {
			w := k % writers
			evs[w] = append(evs[w], newEvent(ids, w, int(versions[w])+len(evs[w])))
		}
		runtime.GC()
		b.StartTimer()

		var done atomic.Int64
		var failed atomic.Pointer[error]
		deadline := time.Now().Add(appendTimeCap)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stream := streamName(w)
				for _, e := range evs[w] {
					if time.Now().After(deadline) {
						return
					}
					out, err := s.Append(ctx, stream, versions[w], e)
					if err == nil && (len(out) != 1 || out[0].Version != uint64(versions[w])+1) {
						err = fmt.Errorf("append to %s at %d returned %+v", stream, versions[w], out)
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
		if p := failed.Load(); p != nil {
			b.Fatal(*p)
		}
		total += done.Load()
		runs++
	}
	b.StopTimer()
	var sum int64
	for _, v := range versions {
		sum += v
	}
	if sum != total {
		b.Fatalf("stream versions add up to %d, appended %d", sum, total)
	}
	rate := float64(total) / b.Elapsed().Seconds()
	ratio := rate / rawInsertRate
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(ratio, "x_raw_insert")
	b.ReportMetric(float64(total)/float64(runs), "events/run")
	addResult(strings.TrimPrefix(b.Name(), "BenchmarkEventLog/"), "%9.0f events/s  %5.1f%% of raw insert  (%d events in %.2fs)",
		rate, 100*ratio, total, b.Elapsed().Seconds())
}

// populate appends replayEvents events over replayStreams streams in
// multi-event appends from a few goroutines.
func populate(b *testing.B, s eventstore.Store) {
	ctx := context.Background()
	ids := event.NewIDs()
	const workers = 4
	perStream := replayEvents / replayStreams
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]event.Envelope, replayPerCall)
			for round := 0; round*replayPerCall < perStream; round++ {
				for user := g; user < replayStreams; user += workers {
					for i := range batch {
						batch[i] = newEvent(ids, user, round*replayPerCall+i)
					}
					if _, err := s.Append(ctx, streamName(user), int64(round*replayPerCall), batch...); err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
}

// rawScan reads the whole events table in one query, scanning into the same
// Go types as the store, and returns the events read and events/s.
func rawScan(b *testing.B, path string) (int, float64) {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", rawDSN(path)+"&_query_only=1")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	rows, err := db.QueryContext(ctx, `SELECT position, id, stream, version, type, schema, occurred_at, cause, data, hash FROM events ORDER BY position`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var n int
	var last event.Envelope
	for rows.Next() {
		var (
			e    event.Envelope
			pos  int64
			id   []byte
			at   int64
			typ  string
			data []byte
		)
		if err := rows.Scan(&pos, &id, &e.Stream, &e.Version, &typ, &e.Schema, &at, &e.Cause, &data, &e.Hash); err != nil {
			b.Fatal(err)
		}
		copy(e.ID[:], id)
		e.Type = event.Type(typ)
		e.Data = data
		e.Position = event.Position{Commit: uint64(pos), Prepare: uint64(pos)}
		e.OccurredAt = time.Unix(0, at).UTC()
		last = e
		n++
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	if last.Type != benchType {
		b.Fatalf("raw scan ended on a %q event", last.Type)
	}
	return n, float64(n) / elapsed.Seconds()
}

func benchReplay(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "annals.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{Durability: sqlite.DurabilityNormal})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	populate(b, s)

	runtime.GC()
	n, rawRate := rawScan(b, path)
	if n != replayEvents {
		b.Fatalf("raw scan read %d events, want %d", n, replayEvents)
	}

	var total int
	runtime.GC()
	b.ResetTimer()
	for range b.N {
		var after event.Position
		read := 0
		for {
			page, err := s.ReadAll(ctx, after, replayPageSize)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			read += len(page)
			after = page[len(page)-1].Position
		}
		if read != replayEvents {
			b.Fatalf("replay read %d events, want %d", read, replayEvents)
		}
		total += read
	}
	b.StopTimer()
	rate := float64(total) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(rawRate, "raw_scan_events/s")
	b.ReportMetric(rate/rawRate, "x_raw_scan")
	addResult("replay", "%9.0f events/s  %5.1f%% of raw scan (%.0f events/s)  (%d events, pages of %d)",
		rate, 100*rate/rawRate, rawRate, replayEvents, replayPageSize)
}
