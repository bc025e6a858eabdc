package e2e

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"annals.im/annals/adapters/websocket"
)

// scrapeMetrics GETs url (a /metrics) in the text format and parses it
// with Prometheus's own parser.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET %s: Content-Type %q, want the text format", url, ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the scrape does not parse: %v", err)
	}
	return fams
}

// sample returns the value of family name's series with exactly the given
// labels (name, value pairs): a counter's or gauge's value, a
// histogram's count. ok is false when there is no such series.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		if len(m.Label)*2 != len(labels) {
			continue
		}
		for i, l := range m.Label {
			if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
				continue next
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

// getBody GETs url and returns the status and the body.
func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// annals serve --metrics serves /healthz, /readyz and /metrics; a scrape
// parsed with Prometheus's text parser moves as clients log in and send
// messages: logins and their failures, connections and sessions, stanzas
// in and out, appends, group commits and fsyncs, the archive's size,
// and every projection and live subscription has a lag.
func TestMetricsScrape(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUsers(t, data, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	s, _ := serveOn(t, data, "--metrics", fmt.Sprintf("127.0.0.1:%d", port))
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)

	if code, body := getBody(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	// serve says where it listens once it is ready: the projections
	// caught up and the sessions' log follower started.
	if code, body := getBody(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	before := scrapeMetrics(t, base+"/metrics")
	for _, name := range []string{"annals_projection_lag_events", "annals_subscription_lag_events"} {
		if f := before[name]; f == nil || len(f.Metric) == 0 {
			t.Fatalf("no %s in the scrape", name)
		}
	}
	for _, p := range []string{"accounts/v1", "rooms/v1"} {
		if _, ok := sample(before, "annals_projection_lag_events", "projection", p); !ok {
			t.Errorf("no projection lag for %s", p)
		}
	}
	for _, c := range []string{"sessions", "projection:rooms/v1"} {
		if _, ok := sample(before, "annals_subscription_lag_events", "consumer", c); !ok {
			t.Errorf("no subscription lag for %s", c)
		}
	}

	if _, err := dialAuth(addr, "localhost", "romeo", "wrong"); err == nil {
		t.Fatal("a login with a wrong password succeeded")
	}
	romeo, err := dialLogin(addr, "localhost", "romeo", "montague", "orchard")
	if err != nil {
		t.Fatal(err)
	}
	defer romeo.close()
	juliet, err := dialLogin(addr, "localhost", "juliet", "capulet", "balcony")
	if err != nil {
		t.Fatal(err)
	}
	defer juliet.close()
	const n = 5
	var sb strings.Builder
	for k := range n {
		fmt.Fprintf(&sb, "<message to='juliet@localhost/balcony' type='chat' id='m%d'><body>message %d</body></message>", k, k)
	}
	if err := romeo.send(sb.String()); err != nil {
		t.Fatal(err)
	}
	juliet.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	for k := 0; k < n; {
		st, _, err := juliet.next()
		if err != nil {
			t.Fatal(err)
		}
		if st.Name.Local == "message" {
			k++
		}
	}
	// A message is archived when its append returns, before it is
	// routed: juliet has them all, so the archive and the store do.
	after := scrapeMetrics(t, base+"/metrics")
	moved := func(name string, labels ...string) float64 {
		a, _ := sample(after, name, labels...)
		b, _ := sample(before, name, labels...)
		return a - b
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"annals_c2s_stanzas_received_total", []string{"kind", "message"}, n},
		{"annals_c2s_stanzas_sent_total", []string{"kind", "message"}, n},
		{"annals_c2s_logins_total", []string{"transport", "tcp"}, 2},
		{"annals_c2s_login_failures_total", []string{"reason", "not-authorized", "transport", "tcp"}, 1},
		{"annals_c2s_connections_accepted_total", []string{"transport", "tcp"}, 3},
		{"annals_c2s_connections", []string{"transport", "tcp"}, 2},
		{"annals_c2s_sessions", []string{"transport", "tcp"}, 2},
		// One copy in romeo's archive and one in juliet's.
		{"annals_archive_messages", nil, 2 * n},
	} {
		if got := moved(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Each message is an append at least (the sessions' own events come
	// on top); the writer groups them in commits, each fsynced.
	for _, name := range []string{"annals_eventstore_append_duration_seconds", "annals_eventstore_commit_batch_events"} {
		if got := moved(name); got < 1 {
			t.Errorf("%s moved by %v, want some", name, got)
		}
	}
	if got := moved("annals_eventstore_append_duration_seconds"); got < n {
		t.Errorf("appends moved by %v, want %d or more", got, n)
	}
	if got := moved("annals_eventstore_fsync_duration_seconds"); got < 1 {
		t.Errorf("fsyncs moved by %v, want some (durability full)", got)
	}
	if got := moved("annals_eventstore_head_position"); got < n {
		t.Errorf("the log's head moved by %v, want %d or more", got, n)
	}
	if code, body := getBody(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz after the messages: %d %q", code, body)
	}
}

// Over WebSocket, xmpp.js's sessions are counted under transport
// websocket; the HTTP listener (--http-plaintext) serves /healthz and
// /readyz, and /metrics to a scraper on this host only, not to what a
// reverse proxy relays.
func TestMetricsWebSocket(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("clients/xmppjs/node_modules/@xmpp/client"); err != nil {
		t.Fatal("xmpp.js is not installed: make test runs npm ci in e2e/clients/xmppjs")
	}
	data := t.TempDir()
	addUsers(t, data, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	mport, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	hport, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	web := fmt.Sprintf("127.0.0.1:%d", hport)
	serveOn(t, data, "--metrics", fmt.Sprintf("127.0.0.1:%d", mport), "--http-plaintext", web)
	if err := waitListen(web, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", mport)
	before := scrapeMetrics(t, base+"/metrics")
	rs := xmppjsWS(t, "chat.mjs", "ws://"+web+websocket.Path, "fork", "romeo@localhost", "montague", "juliet@localhost", "capulet")
	checkXmppjsFork(t, rs)
	after := scrapeMetrics(t, base+"/metrics")
	moved := func(name string, labels ...string) float64 {
		a, _ := sample(after, name, labels...)
		b, _ := sample(before, name, labels...)
		return a - b
	}
	if got := moved("annals_c2s_logins_total", "transport", "websocket"); got < 2 {
		t.Errorf("logins over WebSocket moved by %v, want 2 or more", got)
	}
	if got := moved("annals_c2s_connections_accepted_total", "transport", "websocket"); got < 2 {
		t.Errorf("WebSocket connections accepted moved by %v, want 2 or more", got)
	}
	if got := moved("annals_c2s_logins_total", "transport", "tcp"); got != 0 {
		t.Errorf("logins over TCP moved by %v with only WebSocket clients", got)
	}
	if got := moved("annals_c2s_stanzas_received_total", "kind", "message"); got < 1 {
		t.Errorf("messages received moved by %v, want 1 or more", got)
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := getBody(t, "http://"+web+path); code != 200 {
			t.Errorf("%s on the HTTP listener: %d %q", path, code, body)
		}
	}
	if fams := scrapeMetrics(t, "http://"+web+"/metrics"); fams["annals_c2s_stanzas_received_total"] == nil {
		t.Error("/metrics on the HTTP listener, from this host: no stanza counts")
	}
	req, _ := http.NewRequest("GET", "http://"+web+"/metrics", nil)
	req.Header.Set("X-Forwarded-For", "192.0.2.7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("/metrics relayed by a reverse proxy: %s, want 403", resp.Status)
	}
}

// A file slixmpp uploads (XEP-0363) is counted, byte for byte, in
// annals_upload_bytes_total.
func TestMetricsUpload(t *testing.T) {
	t.Parallel()
	hport, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	mport, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	addUsers(t, data, map[string]string{"alice@localhost": "pw", "bob@localhost": "pw"})
	web := "127.0.0.1:" + strconv.Itoa(hport)
	s, _ := serveOn(t, data, "--http", web, "--metrics", "127.0.0.1:"+strconv.Itoa(mport))
	if err := waitListen(web, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "photo.jpg")
	content := make([]byte, 100<<10+7)
	rand.Read(content)
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	if got, ok := sample(scrapeMetrics(t, metricsURL), "annals_upload_bytes_total"); !ok || got != 0 {
		t.Fatalf("upload bytes before any upload: %v (present: %v)", got, ok)
	}
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_upload.py", "127.0.0.1:"+strconv.Itoa(s.port), filepath.Join(data, "tls-cert.pem"),
		"pw", "alice@localhost", "bob@localhost", file)
	find(t, rs, "uploaded")
	if got, _ := sample(scrapeMetrics(t, metricsURL), "annals_upload_bytes_total"); got != float64(len(content)) {
		t.Fatalf("upload bytes after one upload of %d: %v", len(content), got)
	}
}
