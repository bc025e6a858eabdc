package e2e

// What BenchmarkCluster measures beside the load (clusterbench_test.go):
// a store's round trips (storeProbe), the JetStream API requests and bus
// messages of a phase (natsTap), the SQLite node's append histograms from
// its /metrics (scrapeHist), and, when asked, perf profiles of the
// processes (perfRecord).

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// probeFigures are the latencies of a store's two round trips on the path
// of a command: the read of a stream's empty tail (what eventstore/owner
// and app/accounts do before deciding) and the append of one event.
type probeFigures struct {
	reads, appends []time.Duration
}

func (p probeFigures) String() string {
	if len(p.reads) == 0 {
		return "not measured"
	}
	out := "read " + latencies(p.reads)
	if len(p.appends) > 0 {
		out += ", append " + latencies(p.appends)
	}
	return fmt.Sprintf("%s (%d)", out, len(p.reads))
}

func latencies(ds []time.Duration) string {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return fmt.Sprintf("p50 %5.2f mean %6.2f p99 %6.2f ms", ms(percentile(ds, 50)), ms(sum)/float64(max(len(ds), 1)), ms(percentile(ds, 99)))
}

// storeProbe appends chat-sized events, one at a time, to a stream of its
// own in st, each after reading the stream's tail past the last one, as a
// command does: n times (n > 0), or until ctx ends, pausing between
// iterations. With readOnly it only reads, the tail of a stream nobody
// writes: it probes a log that others write (a read is one request to the
// stream's leader on JetStream).
func storeProbe(ctx context.Context, st eventstore.Store, n int, pause time.Duration, readOnly bool) (probeFigures, error) {
	var p probeFigures
	ids := event.NewIDs()
	stream := fmt.Sprintf("probe-%d@localhost", time.Now().UnixNano())
	for i := 0; n <= 0 || i < n; i++ {
		if ctx.Err() != nil {
			return p, nil
		}
		e, err := event.New(ids, time.Now(), "ProbeSent", 1, "bench", map[string]string{
			"from": "probe@localhost/bench", "to": "peer@localhost", "body": fmt.Sprintf("probe %d: about as long as a benchmark chat message", i)})
		if err != nil {
			return p, err
		}
		t0 := time.Now()
		from := uint64(i + 1)
		if readOnly {
			from = 1
		}
		if _, err := st.ReadStream(ctx, stream, from, eventstore.PageSize); err != nil {
			return p, nonCancel(ctx, err)
		}
		t1 := time.Now()
		p.reads = append(p.reads, t1.Sub(t0))
		if !readOnly {
			if _, err := st.Append(ctx, stream, int64(i), e); err != nil {
				return p, nonCancel(ctx, err)
			}
			p.appends = append(p.appends, time.Since(t1))
		}
		if pause > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
	}
	return p, nil
}

// headProbe times n calls of Head, one at a time: on JetStream a get of
// the last message on any of the log's subjects, which the stream's
// leader answers by walking them all (one per event).
func headProbe(ctx context.Context, st interface {
	Head(context.Context) (event.Position, error)
}, n int) ([]time.Duration, error) {
	var out []time.Duration
	for range n {
		t0 := time.Now()
		if _, err := st.Head(ctx); err != nil {
			return out, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

func nonCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// natsTap counts, on its own connection, the JetStream API requests on the
// log's stream by kind, and the messages on the cluster's bus: a NATS
// subscriber gets a copy of each, beside the servers' own handlers.
type natsTap struct {
	nc     *nats.Conn
	stream string
	mu     sync.Mutex
	counts map[string]int64
}

func startTap(urls, stream string) (*natsTap, error) {
	nc, err := nats.Connect(urls)
	if err != nil {
		return nil, err
	}
	t := &natsTap{nc: nc, stream: stream, counts: map[string]int64{}}
	for _, subj := range []string{"$JS.API.>", "annals.bus.>"} {
		if _, err := nc.Subscribe(subj, t.count); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return t, nc.Flush()
}

func (t *natsTap) count(m *nats.Msg) {
	kind := ""
	switch s := m.Subject; {
	case strings.HasPrefix(s, "annals.bus."):
		kind = "bus messages"
	case s == "$JS.API.STREAM.MSG.GET."+t.stream:
		kind = "leader gets"
	case strings.HasPrefix(s, "$JS.API.DIRECT.GET."+t.stream):
		kind = "direct gets"
	case strings.HasPrefix(s, "$JS.API.CONSUMER.MSG.NEXT."+t.stream+"."):
		kind = "consumer pulls"
	case strings.HasPrefix(s, "$JS.API.CONSUMER.") && strings.Contains(s, "."+t.stream):
		kind = "consumer admin"
	default:
		return // other streams (the probe's, the secrets'), stream info
	}
	t.mu.Lock()
	t.counts[kind]++
	t.mu.Unlock()
}

func (t *natsTap) snapshot() map[string]int64 {
	t.nc.Flush()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int64, len(t.counts))
	for k, v := range t.counts {
		out[k] = v
	}
	return out
}

// histogram is a Prometheus histogram as scraped: cumulative counts by
// upper bound, ascending, the last +Inf.
type histogram struct {
	le     []float64
	counts []float64
	sum    float64
}

// fetchMetrics GETs and parses the /metrics at url.
func fetchMetrics(url string) (map[string]*dto.MetricFamily, error) {
	c := http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	return parser.TextToMetricFamilies(resp.Body)
}

// scrapeHists reads every histogram of the /metrics at url.
func scrapeHists(url string) (map[string]histogram, error) {
	fams, err := fetchMetrics(url)
	if err != nil {
		return nil, err
	}
	out := map[string]histogram{}
	for name, f := range fams {
		if len(f.Metric) != 1 || f.Metric[0].Histogram == nil {
			continue
		}
		h := f.Metric[0].Histogram
		var x histogram
		for _, b := range h.Bucket {
			x.le, x.counts = append(x.le, b.GetUpperBound()), append(x.counts, float64(b.GetCumulativeCount()))
		}
		x.le, x.counts = append(x.le, math.Inf(1)), append(x.counts, float64(h.GetSampleCount()))
		x.sum = h.GetSampleSum()
		out[name] = x
	}
	return out, nil
}

// lagSampler reads the nodes' annals_projection_lag_events every 500 ms
// until stop: how far each node's read models trail the log. Each read
// costs a cluster node three Heads: a few per second beside the load's
// hundreds.
type lagSampler struct {
	done    chan struct{}
	stopped chan struct{}
	mu      sync.Mutex
	lags    map[string][]float64 // by node and projection, "a archive/v11"
	err     error
}

func sampleLags(urls map[string]string) *lagSampler {
	l := &lagSampler{done: make(chan struct{}), stopped: make(chan struct{}), lags: map[string][]float64{}}
	go func() {
		defer close(l.stopped)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			for node, url := range urls {
				fams, err := fetchMetrics(url)
				if err != nil {
					l.err = err
					return
				}
				f := fams["annals_projection_lag_events"]
				if f == nil {
					continue
				}
				for _, m := range f.Metric {
					for _, lb := range m.Label {
						if lb.GetName() == "projection" {
							k := node + " " + lb.GetValue()
							l.mu.Lock()
							l.lags[k] = append(l.lags[k], m.Gauge.GetValue())
							l.mu.Unlock()
						}
					}
				}
			}
			select {
			case <-l.done:
				return
			case <-tick.C:
			}
		}
	}()
	return l
}

func (l *lagSampler) stop() (map[string][]float64, error) {
	close(l.done)
	<-l.stopped
	return l.lags, l.err
}

// minus is h less an earlier scrape of it.
func (h histogram) minus(before histogram) histogram {
	out := histogram{le: h.le, counts: slices.Clone(h.counts), sum: h.sum - before.sum}
	for i := range out.counts {
		if i < len(before.counts) {
			out.counts[i] -= before.counts[i]
		}
	}
	return out
}

func (h histogram) count() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// quantile interpolates within the bucket as Prometheus's
// histogram_quantile does.
func (h histogram) quantile(q float64) float64 {
	n := h.count()
	if n == 0 {
		return math.NaN()
	}
	rank := q * n
	i := sort.Search(len(h.counts), func(i int) bool { return h.counts[i] >= rank })
	if i >= len(h.le)-1 {
		return h.le[len(h.le)-2] // in +Inf: the highest finite bound
	}
	lo, below := 0.0, 0.0
	if i > 0 {
		lo, below = h.le[i-1], h.counts[i-1]
	}
	in := h.counts[i] - below
	if in <= 0 {
		return h.le[i]
	}
	return lo + (h.le[i]-lo)*(rank-below)/in
}

// perfRecord samples process pid's CPU (user and kernel) with Linux perf
// into file until the returned stop is called.
func perfRecord(pid int, file string) (stop func() error, err error) {
	cmd := exec.Command("perf", "record", "-q", "-g", "-F", "499", "-p", strconv.Itoa(pid), "-o", file)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() error {
		cmd.Process.Signal(os.Interrupt)
		err := cmd.Wait()
		if st, serr := os.Stat(file); serr != nil || st.Size() == 0 {
			return fmt.Errorf("perf record: %v %s", err, out.String())
		}
		return nil
	}, nil
}

// perfShare is a share of a profile's samples.
type perfShare struct {
	name string
	pct  float64
}

// perfTop reads a perf profile: the samples by Go package (self time;
// "kernel" for the kernel's, the library's name for a shared library's,
// "C/asm" for the binary's symbols that name no package: SQLite, the
// runtime's assembly), and the functions of this module with the most
// samples on their stacks (frame pointers: Go keeps them on amd64).
func perfTop(file string) (pkgs, cum []perfShare, err error) {
	report := func(args ...string) ([][]string, error) {
		out, err := exec.Command("perf", append([]string{"report", "-i", file, "--stdio", "-q", "--percent-limit", "0", "-g", "none"}, args...)...).Output()
		if err != nil {
			return nil, fmt.Errorf("perf report: %v", err)
		}
		var rows [][]string
		lines := bufio.NewScanner(bytes.NewReader(out))
		lines.Buffer(nil, 1<<20)
		for lines.Scan() {
			if f := strings.Fields(lines.Text()); len(f) >= 3 && strings.HasSuffix(f[0], "%") {
				rows = append(rows, f)
			}
		}
		return rows, lines.Err()
	}
	pct := func(s string) float64 {
		v, _ := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		return v
	}
	self, err := report("--no-children", "--sort", "dso,sym")
	if err != nil {
		return nil, nil, err
	}
	byPkg := map[string]float64{}
	for _, f := range self { // pct dso [.] sym...
		if len(f) < 4 {
			continue
		}
		pkg := goPackage(strings.Join(f[3:], " "))
		switch {
		case f[2] == "[k]":
			pkg = "kernel"
		case strings.Contains(f[1], ".so"):
			pkg = f[1]
		case pkg == "?":
			pkg = "C/asm"
		}
		byPkg[pkg] += pct(f[0])
	}
	for k, v := range byPkg {
		pkgs = append(pkgs, perfShare{k, v})
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].pct > pkgs[j].pct })
	children, err := report("--children", "--sort", "sym")
	if err != nil {
		return nil, nil, err
	}
	for _, f := range children { // children% self% [.] sym...
		if len(f) < 4 {
			continue
		}
		sym := strings.Join(f[3:], " ")
		if strings.HasPrefix(sym, "annals.im/annals/") && !strings.HasPrefix(sym, "annals.im/annals/cmd/annals.main") {
			cum = append(cum, perfShare{shortSym(sym), pct(f[0])})
		}
	}
	sort.SliceStable(cum, func(i, j int) bool { return cum[i].pct > cum[j].pct })
	return pkgs, cum, nil
}

// shortSym drops the module path and a generic's type arguments.
func shortSym(sym string) string {
	sym = strings.TrimPrefix(sym, "annals.im/annals/")
	if i := strings.IndexByte(sym, '['); i >= 0 {
		if j := strings.LastIndexByte(sym, ']'); j > i {
			sym = sym[:i] + "[…]" + sym[j+1:]
		}
	}
	return sym
}

var versionPart = regexp.MustCompile(`^(go|v[0-9]+)(\.|$)`)

// goPackage guesses the import path of a Go symbol such as
// annals.im/annals/adapters/c2s.(*conn).deliver or
// github.com/nats-io/nats%2ego.(*Conn).processMsg ("?" for none).
func goPackage(sym string) string {
	sym = strings.ReplaceAll(sym, "%2e", ".")
	if i := strings.IndexAny(sym, "[("); i >= 0 {
		sym = sym[:i]
	}
	slash := strings.LastIndexByte(sym, '/')
	rest := sym[slash+1:]
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return "?"
	}
	// A last path element with a dot in it (nats.go, yaml.v3).
	for versionPart.MatchString(rest[dot+1:]) {
		next := strings.IndexByte(rest[dot+1:], '.')
		if next < 0 {
			break
		}
		dot += 1 + next
	}
	return sym[:slash+1+dot]
}

// perfSummary is what BenchmarkCluster prints of a profile.
func perfSummary(w io.Writer, label, file string) {
	pkgs, cum, err := perfTop(file)
	if err != nil {
		fmt.Fprintf(w, "    %-4s %v\n", label, err)
		return
	}
	list := func(ss []perfShare, n int) string {
		var b strings.Builder
		for i, p := range ss[:min(len(ss), n)] {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %.0f%%", p.name, p.pct)
		}
		return b.String()
	}
	fmt.Fprintf(w, "    %-4s self by package: %s\n", label, list(pkgs, 10))
	fmt.Fprintf(w, "    %-4s on the stack: %s   (%s)\n", "", list(cum, 12), file)
}
