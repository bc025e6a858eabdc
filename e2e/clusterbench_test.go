package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/jetstream"
	"annals.im/annals/eventstore/jetstream/natstest"
	"annals.im/annals/eventstore/sqlite"
)

// BenchmarkCluster is the cluster part of `make bench`: Annals on one node
// with its SQLite store (the baseline) beside two nodes, a and b, serving
// one log held by three JetStream servers embedded in this process
// (replicas 3), in the same run on the same machine, with BenchmarkChat's
// and BenchmarkMUC's loads and clients:
//
//   - chat: BenchmarkChat's 1:1 load (100 pairs, ANNALS_BENCH_CHAT_PER_SENDER
//     messages each, default 100, window 32, SM-acked, carbons, MAM): on the
//     SQLite node; on the cluster with the senders on a and the receivers
//     on b, where each message reaches b from the log (a->b); and with
//     both on a (a->a), where a delivers what it appended itself.
//   - muc: BenchmarkMUC's fan-out (1 room, ANNALS_BENCH_MUC_ACCOUNTS
//     accounts x 2 sessions, ANNALS_BENCH_MUC_SENDERS senders x
//     ANNALS_BENCH_MUC_PER_SENDER messages, ANNALS_BENCH_MUC_WINDOW): on
//     the SQLite node, and on the cluster with the even accounts on a and
//     the odd ones on b (senders on both), every node delivering the room's
//     messages from the log.
//
// Each cluster figure is reported beside its ratio to the SQLite node's
// (x-sqlite). Then where the time goes:
//
//   - each store's round trips on a command's path, idle
//     (ANNALS_BENCH_CLUSTER_PROBES sequential reads of an empty stream tail
//     and appends of one chat-sized event, default 200; SQLite at the
//     serving durability, full; on JetStream in a stream of the probe's own,
//     and reads only in the log's stream, which the nodes follow): then
//     the same JetStream probes every 10 ms under the cluster's loads, and
//     the SQLite node's own append and fsync histograms (its /metrics)
//     under its loads;
//   - after-ack: a message's delivery latency less its ack latency, which
//     on a->b is the time b's log follower takes after a's append;
//   - the JetStream API requests on the log's stream (a NATS subscriber
//     sees a copy of each) and the log's messages, per message;
//   - the log's Head, idle, before the load and after it: on a cluster
//     each 1:1 message waits for one (the archive's duplicate check reads
//     your writes), and its cost grows with the log;
//   - how far each node's read models trail the log (its /metrics, every
//     500 ms): on a cluster a 1:1 message waits for the sender's node's
//     archive to reach the log's head (its duplicate check reads your
//     writes);
//   - the CPU of each process per message (the test process runs the
//     client, and for the cluster the three NATS servers too: go test
//     -cpuprofile shows their share);
//   - with ANNALS_BENCH_CLUSTER_PERF=DIR, where Linux perf is installed and
//     allowed, perf profiles of the nodes during the cluster's phases:
//     self time by Go package, and this module's functions by time on
//     the stack.
//
// A run takes about 2 minutes on two cores. A message the cluster refuses
// or loses fails the benchmark after the figures are printed.
// Only this one: go test -run '^$' -bench '^BenchmarkCluster$' -benchtime 1x ./e2e/
func BenchmarkCluster(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	perSender := envInt(b, "ANNALS_BENCH_CHAT_PER_SENDER", 100)
	pairs := benchAccounts / 2
	mp := mucParams{
		rooms:     []string{"bench@conference.localhost"},
		accounts:  envInt(b, "ANNALS_BENCH_MUC_ACCOUNTS", 50),
		sessions:  2,
		senders:   envInt(b, "ANNALS_BENCH_MUC_SENDERS", 10),
		perSender: envInt(b, "ANNALS_BENCH_MUC_PER_SENDER", 200),
		window:    envInt(b, "ANNALS_BENCH_MUC_WINDOW", 8),
		sameNick:  true,
	}
	mp.senders = min(mp.senders, mp.accounts)
	probes := envInt(b, "ANNALS_BENCH_CLUSTER_PROBES", 200)
	perfDir := os.Getenv("ANNALS_BENCH_CLUSTER_PERF")
	if perfDir != "" {
		if err := os.MkdirAll(perfDir, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	stop := func(cmd *exec.Cmd) { cmd.Process.Kill(); cmd.Wait() }

	// The baseline, with its metrics for its append histograms.
	mport, err := freePort()
	if err != nil {
		b.Fatal(err)
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	lite, liteCmd := serveOnB(b, b.TempDir(), "--registration", "--registrations-per-address", "0",
		"--metrics", "127.0.0.1:"+strconv.Itoa(mport))
	defer stop(liteCmd)
	liteAddr := "127.0.0.1:" + strconv.Itoa(lite.port)

	// The cluster. Its nodes stop before the NATS servers (b.Cleanup).
	cluster := natstest.Embedded(b, 3)
	node := map[string]string{}
	pid := map[string]int{}
	lagURLs := map[string]string{}
	for _, name := range []string{"a", "b"} {
		port, err := freePort()
		if err != nil {
			b.Fatal(err)
		}
		s, cmd := serveOnB(b, b.TempDir(), "--store", cluster.URLs(), "--node", name,
			"--registration", "--registrations-per-address", "0", "--metrics", "127.0.0.1:"+strconv.Itoa(port))
		defer stop(cmd)
		node[name], pid[name] = "127.0.0.1:"+strconv.Itoa(s.port), cmd.Process.Pid
		lagURLs[name] = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	}
	for _, addr := range []string{liteAddr, node["a"]} {
		if err := makeAccounts(addr); err != nil {
			b.Fatalf("accounts at %s: %v", addr, err)
		}
	}
	tap, err := startTap(cluster.URLs(), "ANNALS")
	if err != nil {
		b.Fatal(err)
	}
	defer tap.nc.Close()
	logSeq, err := streamSeq(cluster.URLs(), "ANNALS")
	if err != nil {
		b.Fatal(err)
	}
	probe, err := jetstream.Connect(ctx, cluster.URLs(), jetstream.Options{Stream: "PROBE", Prefix: "probe", Replicas: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer probe.Close()
	// The log itself is only read: the nodes would meet what the probe
	// appended.
	logProbe, err := jetstream.Connect(ctx, cluster.URLs(), jetstream.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer logProbe.Close()
	liteProbe, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "probe.db"),
		sqlite.Options{Durability: sqlite.DurabilityFull, PreallocateWAL: sqlite.ServerWAL, LazyHeads: true})
	if err != nil {
		b.Fatal(err)
	}
	defer liteProbe.Close()
	// Unmeasured: the first messages fold the accounts into each node's
	// memory and open the archives' streams.
	for _, warm := range [][2]string{{liteAddr, liteAddr}, {node["a"], node["b"]}} {
		if _, err := benchChatOn(warm[0], warm[1], pairs, 5, nil); err != nil {
			b.Fatalf("warm-up %s->%s: %v", warm[0], warm[1], err)
		}
	}
	idle := map[string]probeFigures{}
	for name, st := range map[string]eventstore.Store{"sqlite": liteProbe, "jetstream": probe, "log": logProbe} {
		if idle[name], err = storeProbe(ctx, st, probes, 0, name == "log"); err != nil {
			b.Fatalf("%s probe: %v", name, err)
		}
	}
	// The log's head, idle, before the load and after it, with the log's
	// length each time.
	var heads []headFigures
	timeHead := func() {
		h := headFigures{seq: logSeq()}
		if h.took, err = headProbe(ctx, logProbe, probes); err != nil {
			b.Fatalf("head probe: %v", err)
		}
		heads = append(heads, h)
	}
	timeHead()

	self := os.Getpid()
	liteMeter := func() *meter {
		return &meter{procs: map[string]int{"node": liteCmd.Process.Pid, "test": self}, metrics: metricsURL,
			lagURLs: map[string]string{"node": metricsURL}}
	}
	clusterMeter := func(phase string, probed bool) *meter {
		m := &meter{procs: map[string]int{"a": pid["a"], "b": pid["b"], "test": self}, tap: tap, logSeq: logSeq, lagURLs: lagURLs}
		if probed {
			m.probe, m.logProbe = probe, logProbe
		}
		if perfDir != "" {
			m.perf = filepath.Join(perfDir, phase)
		}
		return m
	}
	chats := []*chatPhase{
		{name: "sqlite/chat", label: "sqlite", send: liteAddr, recv: liteAddr, m: liteMeter()},
		{name: "cluster/chat-across", label: "cluster a->b", send: node["a"], recv: node["b"], m: clusterMeter("chat-across", true)},
		{name: "cluster/chat-same-node", label: "cluster a->a", send: node["a"], recv: node["a"], m: clusterMeter("chat-same-node", false)},
	}
	for _, c := range chats {
		b.Run(c.name, func(b *testing.B) {
			c.f, c.err = benchChatOn(c.send, c.recv, pairs, perSender, c.m.mark)
			if c.err != nil {
				b.Fatal(c.err)
			}
			if c.m.err != nil {
				b.Error(c.m.err)
			}
			if c.f.delivered != c.f.acked {
				c.err = fmt.Errorf("%d of %d acked messages delivered", c.f.delivered, c.f.acked)
				b.Error(c.err)
			}
			b.ReportMetric(c.f.rate, "msgs/s")
			b.ReportMetric(ms(c.f.p99), "ack-p99-ms")
			b.ReportMetric(ms(c.f.d99), "delivery-p99-ms")
			if base := chats[0]; c != base && base.f.rate > 0 {
				b.ReportMetric(c.f.rate/base.f.rate, "x-sqlite-msgs/s")
				b.ReportMetric(ms(c.f.p99)/ms(base.f.p99), "x-sqlite-ack-p99")
			}
		})
	}
	mucs := []*mucPhase{
		{name: "sqlite/muc", label: "sqlite", m: liteMeter()},
		{name: "cluster/muc", label: "cluster a+b", m: clusterMeter("muc", true),
			addrOf: func(a int) string { return node[[]string{"a", "b"}[a%2]] }},
	}
	for _, mu := range mucs {
		b.Run(mu.name, func(b *testing.B) {
			q := mp
			q.addr, q.addrOf, q.mark = liteAddr, mu.addrOf, mu.m.mark
			q.cpu = func() time.Duration { return 0 } // the meter counts it
			mu.f, mu.err = benchMUC(q)
			if mu.err != nil {
				b.Error(mu.err)
			}
			if mu.m.err != nil {
				b.Error(mu.m.err)
			}
			if mu.f.delivered == 0 {
				return
			}
			b.ReportMetric(mu.f.rate, "delivered/s")
			b.ReportMetric(ms(mu.f.p99), "p99-ms")
			if base := mucs[0]; mu != base && base.f.rate > 0 {
				b.ReportMetric(mu.f.rate/base.f.rate, "x-sqlite-delivered/s")
				b.ReportMetric(ms(mu.f.p99)/ms(base.f.p99), "x-sqlite-p99")
			}
		})
	}
	timeHead()
	reportCluster(chats, mucs, idle, heads, pairs, perSender, mp)
}

// headFigures are the latencies of the log's Head, idle, with the log
// seq messages long.
type headFigures struct {
	seq  uint64
	took []time.Duration
}

type chatPhase struct {
	name, label string
	send, recv  string
	m           *meter
	f           chatFigures
	err         error
}

type mucPhase struct {
	name, label string
	addrOf      func(account int) string
	m           *meter
	f           mucFigures
	err         error
}

// streamSeq returns a reader of the last sequence of a JetStream stream.
func streamSeq(urls, stream string) (func() uint64, error) {
	nc, err := nats.Connect(urls)
	if err != nil {
		return nil, err
	}
	js, err := njs.New(nc)
	if err != nil {
		return nil, err
	}
	return func() uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return 0
		}
		info, err := s.Info(ctx)
		if err != nil {
			return 0
		}
		return info.State.LastSeq
	}, nil
}

// meter measures one phase between the marks of its timed part.
type meter struct {
	procs   map[string]int    // by name: the nodes, and "test" (this process)
	metrics string            // the SQLite node's /metrics, or ""
	lagURLs map[string]string // the nodes' /metrics, for their read models' lag
	tap     *natsTap          // nil on SQLite
	logSeq  func() uint64     // nil on SQLite
	probe   eventstore.Store  // probed during the phase, or nil
	// logProbe is the log's stream, whose tail reads are probed during the
	// phase beside probe's, or nil.
	logProbe eventstore.Store
	perf     string // perf profiles' file prefix, or ""

	began    time.Time
	cpu0     map[string]time.Duration
	hist0    map[string]histogram
	api0     map[string]int64
	seq0     uint64
	endProbe func() (probeFigures, probeFigures, error)
	endPerf  map[string]func() error
	lagging  *lagSampler

	wall    time.Duration
	cpu     map[string]time.Duration
	hists   map[string]histogram
	api     map[string]int64
	logMsgs uint64
	probed  probeFigures
	logRead probeFigures
	lags    map[string][]float64 // read models' lag samples, by "node projection"
	perfs   map[string]string    // profile files by process
	err     error
}

func (m *meter) fail(err error) {
	if err != nil && m.err == nil {
		m.err = err
	}
}

func (m *meter) mark(end bool) {
	if !end {
		if m.perf != "" {
			m.endPerf, m.perfs = map[string]func() error{}, map[string]string{}
			for name, p := range m.procs {
				if name == "test" {
					continue // go test strips its binary: go test -cpuprofile instead
				}
				file := m.perf + "-" + name + ".perf"
				stop, err := perfRecord(p, file)
				if err != nil {
					m.fail(fmt.Errorf("perf: %v", err))
					break
				}
				m.endPerf[name], m.perfs[name] = stop, file
			}
		}
		m.cpu0 = map[string]time.Duration{}
		for name, p := range m.procs {
			m.cpu0[name] = procCPU(p)
		}
		if m.metrics != "" {
			h, err := scrapeHists(m.metrics)
			m.fail(err)
			m.hist0 = h
		}
		if m.tap != nil {
			m.api0, m.seq0 = m.tap.snapshot(), m.logSeq()
		}
		if m.probe != nil {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{}, 2)
			var p, l probeFigures
			var err, lerr error
			go func() { p, err = storeProbe(ctx, m.probe, 0, 10*time.Millisecond, false); done <- struct{}{} }()
			go func() { l, lerr = storeProbe(ctx, m.logProbe, 0, 10*time.Millisecond, true); done <- struct{}{} }()
			m.endProbe = func() (probeFigures, probeFigures, error) {
				cancel()
				<-done
				<-done
				if err == nil {
					err = lerr
				}
				return p, l, err
			}
		}
		if m.lagURLs != nil {
			m.lagging = sampleLags(m.lagURLs)
		}
		m.began = time.Now()
		return
	}
	m.wall = time.Since(m.began)
	m.cpu = map[string]time.Duration{}
	for name, p := range m.procs {
		m.cpu[name] = procCPU(p) - m.cpu0[name]
	}
	if m.metrics != "" {
		h, err := scrapeHists(m.metrics)
		m.fail(err)
		m.hists = map[string]histogram{}
		for k, v := range h {
			m.hists[k] = v.minus(m.hist0[k])
		}
	}
	if m.tap != nil {
		m.api = m.tap.snapshot()
		for k := range m.api {
			m.api[k] -= m.api0[k]
		}
		m.logMsgs = m.logSeq() - m.seq0
	}
	if m.endProbe != nil {
		var err error
		m.probed, m.logRead, err = m.endProbe()
		m.fail(err)
	}
	if m.lagging != nil {
		var err error
		m.lags, err = m.lagging.stop()
		m.fail(err)
	}
	for _, stop := range m.endPerf {
		m.fail(stop())
	}
}

// lagLine is how far the nodes' read models trailed the log: mean and
// highest of the samples, in events, and the mean in time at rate.
func (m *meter) lagLine(rate float64) string {
	var keys []string
	for k := range m.lags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		var sum, top float64
		for _, v := range m.lags[k] {
			sum += v
			top = max(top, v)
		}
		if top == 0 {
			continue
		}
		mean := sum / float64(len(m.lags[k]))
		parts = append(parts, fmt.Sprintf("%s mean %.0f (%.0f ms) max %.0f", k, mean, 1000*mean/rate, top))
	}
	if len(parts) == 0 {
		return "none behind"
	}
	return strings.Join(parts, ", ")
}

// cpuLine is the phase's CPU by process: % of one core, and per unit.
func (m *meter) cpuLine(n int, unit string) string {
	var names []string
	for k := range m.cpu {
		names = append(names, k)
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %3.0f%% %5.0f µs/%s", k, 100*m.cpu[k].Seconds()/m.wall.Seconds(),
			float64(m.cpu[k].Microseconds())/float64(max(n, 1)), unit))
	}
	return strings.Join(parts, ", ")
}

// apiLine is the phase's JetStream requests and log messages per unit.
func (m *meter) apiLine(n int, unit string) string {
	if m.tap == nil {
		return ""
	}
	var names []string
	for k := range m.api {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := []string{fmt.Sprintf("log messages %.2f", float64(m.logMsgs)/float64(max(n, 1)))}
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(m.api[k])/float64(max(n, 1))))
	}
	return "per " + unit + ": " + strings.Join(parts, ", ")
}

// histLine is the SQLite node's appends and fsyncs in the phase.
func (m *meter) histLine(n int, unit string) string {
	app, sync, batch := m.hists["annals_eventstore_append_duration_seconds"], m.hists["annals_eventstore_fsync_duration_seconds"],
		m.hists["annals_eventstore_commit_batch_events"]
	if app.count() == 0 {
		return "no appends in its metrics"
	}
	return fmt.Sprintf("appends %.2f/%s p50 %.2f p99 %.2f ms; fsyncs %.2f/%s p50 %.2f p99 %.2f ms; %.1f events per commit",
		app.count()/float64(max(n, 1)), unit, 1000*app.quantile(0.5), 1000*app.quantile(0.99),
		sync.count()/float64(max(n, 1)), unit, 1000*sync.quantile(0.5), 1000*sync.quantile(0.99), batch.sum/max(batch.count(), 1))
}

func reportCluster(chats []*chatPhase, mucs []*mucPhase, idle map[string]probeFigures, heads []headFigures, pairs, perSender int, mp mucParams) {
	fmt.Printf("cluster: sqlite = one node on its SQLite store; cluster = nodes a and b on one log, 3 JetStream servers (R3) embedded in the test process; one machine\n")
	fmt.Printf("chat: %d pairs x %d messages, window %d, SM-acked, carbons, MAM on\n", pairs, perSender, chatWindow)
	for _, c := range chats {
		if c.f.acked == 0 {
			fmt.Printf("  %-13s not measured: %v\n", c.label, c.err)
			continue
		}
		fmt.Printf("  %-13s %7.0f msgs/s  ack p50 %6.2f p99 %7.2f ms  delivered %d/%d p50 %6.2f p99 %7.2f ms  after-ack p50 %6.2f p99 %7.2f ms\n",
			c.label, c.f.rate, ms(c.f.p50), ms(c.f.p99), c.f.delivered, c.f.acked, ms(c.f.d50), ms(c.f.d99), ms(c.f.f50), ms(c.f.f99))
	}
	if base := chats[0]; base.f.rate > 0 {
		for _, c := range chats[1:] {
			if c.f.rate > 0 {
				fmt.Printf("  %s / sqlite: msgs/s x%.2f, ack p50 x%.1f p99 x%.1f, delivery p99 x%.1f\n", c.label, c.f.rate/base.f.rate,
					ms(c.f.p50)/ms(base.f.p50), ms(c.f.p99)/ms(base.f.p99), ms(c.f.d99)/ms(base.f.d99))
			}
		}
	}
	fmt.Printf("muc: 1 room, %d accounts x %d sessions (one nick per account), %d senders x %d messages, window %d; cluster: even accounts on a, odd on b\n",
		mp.accounts, mp.sessions, mp.senders, mp.perSender, mp.window)
	for _, mu := range mucs {
		if mu.f.delivered == 0 {
			fmt.Printf("  %-13s not measured: %v\n", mu.label, mu.err)
			continue
		}
		fmt.Printf("  %-13s %7.0f delivered/s  p50 %7.2f p99 %7.2f ms  delivered %d/%d (dup %d) in %v\n", mu.label, mu.f.rate,
			ms(mu.f.p50), ms(mu.f.p99), mu.f.delivered, mu.f.expected, mu.f.dups, mu.f.elapsed.Round(time.Millisecond))
		if mu.f.errs > 0 {
			fmt.Printf("  %-13s %d error stanzas, first: %s\n", "", mu.f.errs, mu.f.firstErr)
		}
	}
	if base, c := mucs[0], mucs[1]; base.f.rate > 0 && c.f.rate > 0 {
		fmt.Printf("  %s / sqlite: delivered/s x%.2f, p50 x%.1f p99 x%.1f\n", c.label, c.f.rate/base.f.rate,
			ms(c.f.p50)/ms(base.f.p50), ms(c.f.p99)/ms(base.f.p99))
	}

	fmt.Printf("where the time goes\n")
	fmt.Printf("  store round trips idle (one at a time: read of an empty stream tail, then append of one chat-sized event):\n")
	fmt.Printf("    sqlite (full, fsync)      %s\n", idle["sqlite"])
	fmt.Printf("    jetstream R3, own stream  %s\n", idle["jetstream"])
	fmt.Printf("    jetstream, the log        %s\n", idle["log"])
	for _, h := range heads {
		fmt.Printf("    the log's Head at %6d messages (leader get of the last on annals.log.>; each 1:1 message waits for one): %s\n", h.seq, latencies(h.took))
	}
	for _, c := range chats {
		if c.m.wall == 0 {
			continue
		}
		fmt.Printf("  chat %s (%v):\n", c.label, c.m.wall.Round(time.Millisecond))
		if c.m.metrics != "" {
			fmt.Printf("    the node's store: %s\n", c.m.histLine(c.f.acked, "msg"))
		}
		if c.m.probe != nil {
			fmt.Printf("    probes every 10 ms: own stream %s; the log %s\n", c.m.probed, c.m.logRead)
		}
		if l := c.m.apiLine(c.f.acked, "msg"); l != "" {
			fmt.Printf("    %s\n", l)
		}
		fmt.Printf("    read models behind the log (events; time at %.0f events/s): %s\n", c.f.rate, c.m.lagLine(c.f.rate))
		fmt.Printf("    CPU: %s\n", c.m.cpuLine(c.f.acked, "msg"))
		printPerf(c.m)
	}
	for _, mu := range mucs {
		if mu.m.wall == 0 {
			continue
		}
		fmt.Printf("  muc %s (%v, %d messages sent):\n", mu.label, mu.m.wall.Round(time.Millisecond), mu.f.sent)
		if mu.m.metrics != "" {
			fmt.Printf("    the node's store: %s\n", mu.m.histLine(mu.f.sent, "msg"))
		}
		if mu.m.probe != nil {
			fmt.Printf("    probes every 10 ms: own stream %s; the log %s\n", mu.m.probed, mu.m.logRead)
		}
		if l := mu.m.apiLine(mu.f.sent, "msg sent"); l != "" {
			fmt.Printf("    %s\n", l)
		}
		rate := float64(mu.f.sent) / mu.f.elapsed.Seconds()
		fmt.Printf("    read models behind the log (events; time at %.0f events/s): %s\n", rate, mu.m.lagLine(rate))
		fmt.Printf("    CPU: %s\n", mu.m.cpuLine(mu.f.delivered, "delivery"))
		printPerf(mu.m)
	}
}

func printPerf(m *meter) {
	var names []string
	for k := range m.perfs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		perfSummary(os.Stdout, k, m.perfs[k])
	}
}
