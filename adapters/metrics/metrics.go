package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults of Options.
const (
	// DefaultReadTimeout bounds each value read at scrape time (a count of
	// rows, the log's head): a scrape that waits longer reports the
	// metric as failed instead of holding the scraper.
	DefaultReadTimeout = 5 * time.Second
	// DefaultMaxScrapes is how many scrapes may run at once; more are
	// answered 503. Scrape-time reads query the read models: a flood of
	// scrapes must not become a flood of queries.
	DefaultMaxScrapes = 2
)

// Options tune Metrics. The zero value is usable.
type Options struct {
	ReadTimeout time.Duration // default DefaultReadTimeout
	MaxScrapes  int           // default DefaultMaxScrapes
}

// Metrics holds the server's metrics in a registry of its own (never
// Prometheus's global one): several servers in one process, as tests run
// them, count apart. Its methods implement the small interfaces the
// instrumented packages declare (c2s.Metrics, sqlite.Metrics) and the
// upload service's Uploaded. It is safe for concurrent use.
type Metrics struct {
	opts Options
	reg  *prometheus.Registry

	conns         *prometheus.CounterVec
	connsOpen     *prometheus.GaugeVec
	logins        *prometheus.CounterVec
	loginFailures *prometheus.CounterVec
	// Per stanza: counters resolved once, so that the hot path is an
	// atomic add, not a label lookup.
	in, out [kinds]prometheus.Counter

	appendSeconds prometheus.Histogram
	batchEvents   prometheus.Histogram
	fsyncSeconds  prometheus.Histogram

	uploadBytes prometheus.Counter
}

// Stanza kinds, the values of the kind label.
const (
	kindMessage = iota
	kindPresence
	kindIQ
	kinds
)

var kindNames = [kinds]string{"message", "presence", "iq"}

func kindOf(kind string) int {
	switch kind {
	case "message":
		return kindMessage
	case "presence":
		return kindPresence
	case "iq":
		return kindIQ
	}
	return -1
}

// New returns Metrics with the process's and the Go runtime's collectors
// beside Annals' own.
func New(opts Options) *Metrics {
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.MaxScrapes <= 0 {
		opts.MaxScrapes = DefaultMaxScrapes
	}
	m := &Metrics{opts: opts, reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.reg.MustRegister(v)
		return v
	}
	m.conns = counter("annals_c2s_connections_accepted_total", "Client connections accepted (within the connection caps).", "transport")
	m.connsOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "annals_c2s_connections", Help: "Client connections open now."}, []string{"transport"})
	m.reg.MustRegister(m.connsOpen)
	m.logins = counter("annals_c2s_logins_total", "Successful SASL authentications.", "transport")
	m.loginFailures = counter("annals_c2s_login_failures_total",
		"Failed SASL authentications, by reason: the SASL failure condition, or throttled.", "transport", "reason")
	in := counter("annals_c2s_stanzas_received_total", "Stanzas received from bound client sessions, by kind.", "kind")
	out := counter("annals_c2s_stanzas_sent_total", "Stanzas sent to client sessions, by kind.", "kind")
	for k, name := range kindNames {
		m.in[k], m.out[k] = in.WithLabelValues(name), out.WithLabelValues(name)
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
		m.reg.MustRegister(h)
		return h
	}
	// 50 µs to 1.6 s: an append is an fsync away from its answer, which is
	// tens of µs on NVMe and tens of ms on a spinning disk.
	latency := prometheus.ExponentialBuckets(50e-6, 2, 16)
	m.appendSeconds = histogram("annals_eventstore_append_duration_seconds",
		"Time from an append's call to its answer, for appends that committed.", latency)
	m.batchEvents = histogram("annals_eventstore_commit_batch_events",
		"Events written by one group commit (one transaction).", prometheus.ExponentialBuckets(1, 2, 13))
	m.fsyncSeconds = histogram("annals_eventstore_fsync_duration_seconds", "Time one fdatasync of the write-ahead log took.", latency)
	m.uploadBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_upload_bytes_total",
		Help: "Bytes of files stored by HTTP file upload (XEP-0363)."})
	m.reg.MustRegister(m.uploadBytes)
	return m
}

// Registry is where the metrics are; a caller may register more.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus's text format (or what the
// scraper asks for). A metric whose scrape-time read fails is left out and
// logged by the scrape, instead of failing the others.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: m.opts.MaxScrapes,
		Timeout:             2 * m.opts.ReadTimeout,
	})
}

// Connected counts a connection accepted on transport ("tcp",
// "websocket"); closed counts it closed, and may be called more than once.
func (m *Metrics) Connected(transport string) (closed func()) {
	m.conns.WithLabelValues(transport).Inc()
	open := m.connsOpen.WithLabelValues(transport)
	open.Inc()
	var once sync.Once
	return func() { once.Do(open.Dec) }
}

// Transport makes the per-transport series of transport exist at 0, so
// that a scrape shows them before the first connection.
func (m *Metrics) Transport(transport string) {
	m.conns.WithLabelValues(transport)
	m.connsOpen.WithLabelValues(transport)
	m.logins.WithLabelValues(transport)
}

// LoggedIn counts a successful authentication.
func (m *Metrics) LoggedIn(transport string) { m.logins.WithLabelValues(transport).Inc() }

// LoginFailed counts a failed authentication; reason is one of a few
// conditions (the SASL ones, "throttled"), never a user's name.
func (m *Metrics) LoginFailed(transport, reason string) {
	m.loginFailures.WithLabelValues(transport, reason).Inc()
}

// StanzaReceived counts a stanza from a client; kinds other than message,
// presence and iq are not counted.
func (m *Metrics) StanzaReceived(kind string) {
	if k := kindOf(kind); k >= 0 {
		m.in[k].Inc()
	}
}

// StanzaSent counts a stanza to a client, as StanzaReceived.
func (m *Metrics) StanzaSent(kind string) {
	if k := kindOf(kind); k >= 0 {
		m.out[k].Inc()
	}
}

// Appended records how long a committed append took.
func (m *Metrics) Appended(took time.Duration) { m.appendSeconds.Observe(took.Seconds()) }

// Committed records the events of one group commit.
func (m *Metrics) Committed(events int) { m.batchEvents.Observe(float64(events)) }

// Synced records how long an fsync of the log took.
func (m *Metrics) Synced(took time.Duration) { m.fsyncSeconds.Observe(took.Seconds()) }

// Uploaded counts the bytes of a stored upload (XEP-0363). The upload
// service declares the one-method interface it needs.
func (m *Metrics) Uploaded(bytes int64) {
	if bytes > 0 {
		m.uploadBytes.Add(float64(bytes))
	}
}

// Read is a value read at scrape time, such as a count of rows.
type Read func(ctx context.Context) (float64, error)

// ReadEach is a set of values read at scrape time, by label value.
type ReadEach func(ctx context.Context) (map[string]float64, error)

// Gauge registers a gauge whose value read returns at each scrape.
func (m *Metrics) Gauge(name, help string, read Read) {
	m.GaugeEach(name, help, "", func(ctx context.Context) (map[string]float64, error) {
		v, err := read(ctx)
		return map[string]float64{"": v}, err
	})
}

// GaugeEach registers a gauge with one label whose values read returns at
// each scrape. The label's values must be few (projection names, consumers).
func (m *Metrics) GaugeEach(name, help, label string, read ReadEach) {
	var labels []string
	if label != "" {
		labels = []string{label}
	}
	m.reg.MustRegister(&readCollector{desc: prometheus.NewDesc(name, help, labels, nil), read: read, labeled: label != "", timeout: m.opts.ReadTimeout})
}
