package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs /metrics from h and parses it with Prometheus's text parser.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "text/plain") // the text format, not protobuf
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("scrape does not parse: %v", err)
	}
	return fams
}

// value returns the value of the series of family name whose labels are
// exactly labels (name, value pairs), and whether there is one.
func valueOf(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
series:
	for _, m := range f.Metric {
		if len(m.Label)*2 != len(labels) {
			continue
		}
		for i, l := range m.Label {
			if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// What the instrumented packages report comes out of a scrape with the
// names, labels and values Prometheus's conventions ask for; the values
// read at scrape time are read at each scrape.
func TestScrape(t *testing.T) {
	m := New(Options{})
	m.Transport("tcp")
	closed := m.Connected("tcp")
	m.Connected("websocket")
	closed()
	closed() // twice counts once
	m.LoggedIn("tcp")
	m.LoginFailed("tcp", "not-authorized")
	m.LoginFailed("tcp", "not-authorized")
	m.LoginFailed("tcp", "throttled")
	for range 3 {
		m.StanzaReceived("message")
	}
	m.StanzaReceived("iq")
	m.StanzaReceived("frobnicate") // not a stanza kind: not counted
	m.StanzaSent("presence")
	m.Appended(2 * time.Millisecond)
	m.Committed(7)
	m.Committed(1)
	m.Synced(time.Millisecond)
	m.Uploaded(1000)
	m.Uploaded(-5) // nonsense: not counted
	rooms := 4.0
	m.Gauge("annals_rooms", "Rooms.", func(context.Context) (float64, error) { return rooms, nil })
	m.GaugeEach("annals_projection_lag_events", "Lag.", "projection", func(context.Context) (map[string]float64, error) {
		return map[string]float64{"rooms/v1": 3, "accounts/v1": 0}, nil
	})

	fams := scrape(t, m.Handler())
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"annals_c2s_connections_accepted_total", []string{"transport", "tcp"}, 1},
		{"annals_c2s_connections_accepted_total", []string{"transport", "websocket"}, 1},
		{"annals_c2s_connections", []string{"transport", "tcp"}, 0},
		{"annals_c2s_connections", []string{"transport", "websocket"}, 1},
		{"annals_c2s_logins_total", []string{"transport", "tcp"}, 1},
		{"annals_c2s_login_failures_total", []string{"reason", "not-authorized", "transport", "tcp"}, 2},
		{"annals_c2s_login_failures_total", []string{"reason", "throttled", "transport", "tcp"}, 1},
		{"annals_c2s_stanzas_received_total", []string{"kind", "message"}, 3},
		{"annals_c2s_stanzas_received_total", []string{"kind", "iq"}, 1},
		{"annals_c2s_stanzas_received_total", []string{"kind", "presence"}, 0},
		{"annals_c2s_stanzas_sent_total", []string{"kind", "presence"}, 1},
		{"annals_eventstore_append_duration_seconds", nil, 1},
		{"annals_eventstore_commit_batch_events", nil, 2},
		{"annals_eventstore_fsync_duration_seconds", nil, 1},
		{"annals_upload_bytes_total", nil, 1000},
		{"annals_rooms", nil, 4},
		{"annals_projection_lag_events", []string{"projection", "rooms/v1"}, 3},
		{"annals_projection_lag_events", []string{"projection", "accounts/v1"}, 0},
	} {
		if got, ok := valueOf(fams, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present: %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := valueOf(fams, "annals_c2s_stanzas_received_total", "kind", "frobnicate"); ok {
		t.Error("a kind that is no stanza's has a series")
	}
	if h := fams["annals_eventstore_commit_batch_events"].Metric[0].Histogram; h.GetSampleSum() != 8 {
		t.Errorf("batch events sum %v, want 8", h.GetSampleSum())
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	// Conventions: every Annals metric is annals_*, counters end in
	// _total, histograms of time in _seconds, and the labels are from a
	// small fixed set: none names a user.
	allowed := []string{"transport", "reason", "kind", "projection", "consumer"}
	for name, f := range fams {
		if !strings.HasPrefix(name, "annals_") {
			continue
		}
		if (f.GetType() == dto.MetricType_COUNTER) != strings.HasSuffix(name, "_total") {
			t.Errorf("%s: a %s", name, f.GetType())
		}
		if f.GetType() == dto.MetricType_HISTOGRAM && strings.Contains(name, "duration") && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("%s: a duration not in seconds", name)
		}
		for _, s := range f.Metric {
			for _, l := range s.Label {
				if !slices.Contains(allowed, l.GetName()) {
					t.Errorf("%s has label %s", name, l.GetName())
				}
			}
		}
	}
	rooms = 5
	if got, _ := valueOf(scrape(t, m.Handler()), "annals_rooms"); got != 5 {
		t.Errorf("annals_rooms on the next scrape: %v, want 5", got)
	}
}

// Two registries do not share a series: no package-global state.
func TestRegistriesApart(t *testing.T) {
	a, b := New(Options{}), New(Options{})
	a.StanzaReceived("message")
	if got, _ := valueOf(scrape(t, b.Handler()), "annals_c2s_stanzas_received_total", "kind", "message"); got != 0 {
		t.Fatalf("a stanza counted by one Metrics shows in another's scrape: %v", got)
	}
}

// A value read at scrape time that fails, or takes longer than
// ReadTimeout, is left out of the scrape; the rest is served.
func TestReadFailuresAndTimeout(t *testing.T) {
	if d := New(Options{}).opts; d.ReadTimeout != DefaultReadTimeout || d.MaxScrapes != DefaultMaxScrapes {
		t.Errorf("defaults: %+v", d)
	}
	m := New(Options{ReadTimeout: 50 * time.Millisecond})
	m.Gauge("annals_slow", "Never answers in time.", func(ctx context.Context) (float64, error) {
		<-ctx.Done()
		return 1, nil // ignoring ctx's error: late is still late
	})
	m.Gauge("annals_broken", "Fails.", func(context.Context) (float64, error) { return 0, errors.New("no table") })
	m.Gauge("annals_fine", "Works.", func(context.Context) (float64, error) { return 42, nil })
	start := time.Now()
	fams := scrape(t, m.Handler())
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the scrape took %v with a read bounded at 50ms", took)
	}
	for _, name := range []string{"annals_slow", "annals_broken"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s, whose read failed, is in the scrape", name)
		}
	}
	if got, _ := valueOf(fams, "annals_fine"); got != 42 {
		t.Errorf("annals_fine = %v, want 42", got)
	}
}

// Past MaxScrapes scrapes at once, one is answered 503 at once.
func TestMaxScrapes(t *testing.T) {
	m := New(Options{MaxScrapes: 2, ReadTimeout: 10 * time.Second})
	entered, release := make(chan struct{}, 4), make(chan struct{})
	m.Gauge("annals_held", "Held.", func(context.Context) (float64, error) {
		entered <- struct{}{}
		<-release
		return 1, nil
	})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("a scrape within the bound: %s", resp.Status)
			}
		})
	}
	<-entered
	<-entered
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	close(release)
	wg.Wait()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a third scrape at once: %s, want 503", resp.Status)
	}
}

func TestPositionsLags(t *testing.T) {
	p := NewPositions()
	p.Set("sessions", 90)
	p.Set("projection:rooms/v1", 100)
	p.Set("ahead", 120) // read the head after the scrape read it
	got := p.Lags(100)
	if got["sessions"] != 10 || got["projection:rooms/v1"] != 0 || got["ahead"] != 0 || len(got) != 3 {
		t.Fatalf("lags: %v", got)
	}
	p.Drop("sessions")
	if _, ok := p.Lags(100)["sessions"]; ok {
		t.Fatal("a dropped consumer still has a lag")
	}
}

func TestHealthAndReadiness(t *testing.T) {
	var notReady error = errors.New("projection rooms/v1 is 5000 events behind the log")
	mux := New(Options{}).Mux(func(context.Context) error { return notReady })
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "5000 events behind") {
		t.Errorf("/readyz, not ready: %d %q", code, body)
	}
	notReady = nil
	if code, body := get("/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz, ready: %d %q", code, body)
	}
	if code, _ := get("/metrics"); code != 200 {
		t.Errorf("/metrics: %d", code)
	}
}
