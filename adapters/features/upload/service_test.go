package upload

import (
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/upload"
)

// accounts grants slots as the account streams would, through the
// domain's Decide and Evolve, and keeps the events.
type accounts struct {
	mu     sync.Mutex
	st     map[string]upload.State
	events []event.Envelope
	ids    *event.IDs
}

func (a *accounts) UploadSlot(ctx context.Context, acct string, r upload.Request, now time.Time) (upload.Granted, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	evs, err := upload.Decide(a.st[acct], r, a.ids, now, event.Cause(ctx, "upload"))
	if err != nil {
		return upload.Granted{}, err
	}
	s, err := upload.Evolve(a.st[acct], evs[0])
	if err != nil {
		return upload.Granted{}, err
	}
	a.st[acct] = s
	evs[0].Stream = "account-" + acct
	a.events = append(a.events, evs[0])
	var g upload.Granted
	return g, evs[0].Decode(upload.Schema, &g)
}

// clock is a clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	svc   *Service
	accts *accounts
	clock *clock
	http  *httptest.Server
	mux   *mux.Mux
}

// limits are small ones, for tests to reach.
var limits = upload.Limits{MaxSize: 1000, Quota: 2500, MaxOpen: 3, PutWindow: 5 * time.Minute, Expiry: 24 * time.Hour}

// newFixture serves the service's HTTP side on 127.0.0.1 as the
// listener would mount it, on a ServeMux at /upload/.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{accts: &accounts{st: map[string]upload.State{}, ids: event.NewIDs()},
		clock: &clock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}, mux: mux.New()}
	hm := http.NewServeMux()
	f.http = httptest.NewServer(hm)
	t.Cleanup(f.http.Close)
	svc, err := New(Config{Domain: "upload.localhost", Domains: []string{"localhost"}, Slots: f.accts, Dir: filepath.Join(t.TempDir(), "uploads"),
		URL: f.http.URL, Limits: limits, Now: f.clock.Now, Log: discard})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	hm.Handle(DefaultPath, svc.Handler())
	svc.Register(f.mux)
	return f
}

var romeo = jid.MustParse("romeo@localhost/garden")

// ask sends iq to the service as the session core would, and parses the
// one answer.
func (f *fixture) ask(t *testing.T, from jid.JID, iq string) *stanza.Element {
	t.Helper()
	e, err := muxtest.Parse(iq)
	if err != nil {
		t.Fatal(err)
	}
	s := &muxtest.Session{Full: from}
	to := jid.MustParse(e.Attr("to"))
	svc, ok := f.mux.Service(to.Domainpart())
	if !ok {
		t.Fatalf("no service on %s", to)
	}
	ctx := event.WithCause(context.Background(), "c2s:test/"+e.Attr("id"))
	if err := svc.Handle(ctx, s, e, to); err != nil {
		t.Fatal(err)
	}
	if len(s.Sent) != 1 {
		t.Fatalf("%d answers: %q", len(s.Sent), s.Sent)
	}
	a, err := muxtest.Parse(s.Sent[0])
	if err != nil {
		t.Fatalf("the answer does not parse: %v: %s", err, s.Sent[0])
	}
	if a.Attr("id") != e.Attr("id") || a.Attr("from") != to.String() || a.Attr("to") != from.String() {
		t.Fatalf("answered with the wrong addresses: %s", s.Sent[0])
	}
	return a
}

// request asks for a slot.
func (f *fixture) request(t *testing.T, from jid.JID, name string, size int64, ct string) *stanza.Element {
	t.Helper()
	cta := ""
	if ct != "" {
		cta = " content-type='" + stanza.Escape(ct) + "'"
	}
	return f.ask(t, from, fmt.Sprintf("<iq type='get' id='r1' to='upload.localhost'><request xmlns='%s' filename='%s' size='%d'%s/></iq>",
		NS, stanza.Escape(name), size, cta))
}

// slot asks for a slot that must be granted, and returns its PUT and GET
// URLs.
func (f *fixture) slot(t *testing.T, name string, size int64, ct string) (put, get string) {
	t.Helper()
	a := f.request(t, romeo, name, size, ct)
	sl, ok := a.Named(NS, "slot")
	if a.Attr("type") != "result" || !ok {
		t.Fatalf("no slot: %s", a.Inner)
	}
	var x struct {
		Put struct {
			URL     string `xml:"url,attr"`
			Headers []struct {
				Name string `xml:"name,attr"`
			} `xml:"header"`
		} `xml:"put"`
		Get struct {
			URL string `xml:"url,attr"`
		} `xml:"get"`
	}
	b, _ := xml.Marshal(struct {
		XMLName xml.Name `xml:"s"`
		Inner   []byte   `xml:",innerxml"`
	}{Inner: sl.Inner})
	if err := xml.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	if x.Put.URL == "" || x.Get.URL == "" || len(x.Put.Headers) != 0 {
		t.Fatalf("slot %s", sl.Inner)
	}
	return x.Put.URL, x.Get.URL
}

// The server lists the service; the service says what it is, and the
// largest file it takes (XEP-0363 §2).
func TestDisco(t *testing.T) {
	f := newFixture(t)
	// The disco feature answers from these (a feature may not import
	// another: make depcheck).
	if items := f.mux.Items(mux.Server); len(items) != 1 || items[0] != (mux.Item{JID: "upload.localhost", Name: "HTTP File Upload"}) {
		t.Fatalf("the server's items: %v", items)
	}
	info := f.ask(t, romeo, "<iq type='get' id='i2' to='upload.localhost'><query xmlns='"+nsInfo+"'/></iq>")
	for _, want := range []string{"<identity category='store' type='file' name='HTTP File Upload'/>", "<feature var='" + NS + "'/>",
		"<field var='FORM_TYPE' type='hidden'><value>" + NS + "</value></field>", "<field var='max-file-size'><value>1000</value></field>"} {
		if !strings.Contains(string(info.Inner), want) {
			t.Errorf("disco#info lacks %s: %s", want, info.Inner)
		}
	}
}

// A slot's URLs are under the base URL, with a 128-bit token and the
// sanitized name, percent-encoded; the grant is an event in the
// account's stream, caused by the request.
func TestSlot(t *testing.T) {
	f := newFixture(t)
	put, get := f.slot(t, "très cool.jpg", 23, "image/jpeg")
	if put != get {
		t.Fatalf("put %s, get %s", put, get)
	}
	u, err := url.Parse(put)
	if err != nil {
		t.Fatal(err)
	}
	token, name, _ := strings.Cut(strings.TrimPrefix(u.EscapedPath(), "/upload/"), "/")
	if !strings.HasPrefix(put, f.http.URL+"/upload/") || len(token) != 32 || !validHex(token) || name != "tr%C3%A8s%20cool.jpg" {
		t.Fatalf("URL %s", put)
	}
	if len(f.accts.events) != 1 {
		t.Fatalf("%d events", len(f.accts.events))
	}
	e := f.accts.events[0]
	var g upload.Granted
	if err := e.Decode(upload.Schema, &g); err != nil || e.Stream != "account-romeo@localhost" || e.Cause != "c2s:test/r1" ||
		g.Filename != "très cool.jpg" || g.Size != 23 || g.ContentType != "image/jpeg" || g.Slot != SlotID(token) || strings.Contains(string(e.Data), token) {
		t.Fatalf("event %+v: %+v %v", e, g, err)
	}
	// Two slots never share a token.
	put2, _ := f.slot(t, "très cool.jpg", 23, "image/jpeg")
	if put2 == put {
		t.Fatal("the same URL twice")
	}
}

// A name that tries to leave its directory is cut to its last segment:
// the URL has one segment for it, and nothing is written outside the
// uploads directory.
func TestSlotPathTraversal(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"../../../etc/passwd", `..\..\boot.ini`, "..", "a/../../b.png", "%2e%2e%2fx"} {
		put, _ := f.slot(t, name, 1, "")
		rest := strings.TrimPrefix(put, f.http.URL+"/upload/")
		_, seg, _ := strings.Cut(rest, "/")
		if strings.Contains(seg, "/") || strings.HasPrefix(seg, ".") || strings.Contains(seg, "%2F") {
			t.Errorf("%q: URL %s", name, put)
		}
		if resp := do(t, "PUT", put, "", "x"); resp.StatusCode != http.StatusCreated {
			t.Errorf("%q: PUT %d", name, resp.StatusCode)
		}
	}
	root := filepath.Dir(f.svc.cfg.Dir)
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if rel, _ := filepath.Rel(f.svc.cfg.Dir, p); p != root && strings.HasPrefix(rel, "..") {
			t.Errorf("written outside the uploads: %s", p)
		}
		return nil
	})
}

// The refusals, each with its condition (XEP-0363 §5).
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	juliet := jid.MustParse("juliet@capulet.example/balcony")
	cond := func(a *stanza.Element) string {
		if a.Attr("type") != "error" {
			return "a " + a.Attr("type") + ": " + string(a.Inner)
		}
		return stanza.ErrorCondition(a)
	}
	// Too large: the limit is told, as XEP-0363 §5's example has it.
	a := f.request(t, romeo, "big.mp4", 1001, "video/mp4")
	if cond(a) != "not-acceptable" || !strings.Contains(string(a.Inner), "<file-too-large xmlns='"+NS+"'><max-file-size>1000</max-file-size></file-too-large>") {
		t.Fatalf("too large: %s", a.Inner)
	}
	for _, c := range []struct {
		name string
		iq   string
		from jid.JID
		want string
	}{
		{"not a MIME type", "<request xmlns='" + NS + "' filename='a.jpg' size='5' content-type='jpeg'/>", romeo, "bad-request"},
		{"a header in the type", "<request xmlns='" + NS + "' filename='a.jpg' size='5' content-type='text/plain&#13;&#10;X: y'/>", romeo, "bad-request"},
		{"no size", "<request xmlns='" + NS + "' filename='a.jpg'/>", romeo, "bad-request"},
		{"a size that is no number", "<request xmlns='" + NS + "' filename='a.jpg' size='0x10'/>", romeo, "bad-request"},
		{"a signed size", "<request xmlns='" + NS + "' filename='a.jpg' size='+10'/>", romeo, "bad-request"},
		{"an empty file", "<request xmlns='" + NS + "' filename='a.jpg' size='0'/>", romeo, "bad-request"},
		{"no name", "<request xmlns='" + NS + "' size='5'/>", romeo, "bad-request"},
		{"a user of another server", "<request xmlns='" + NS + "' filename='a.jpg' size='5'/>", juliet, "forbidden"},
		{"another payload", "<query xmlns='jabber:iq:version'/>", romeo, "service-unavailable"},
	} {
		a := f.ask(t, c.from, "<iq type='get' id='x' to='upload.localhost'>"+c.iq+"</iq>")
		if got := cond(a); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	if len(f.accts.events) != 0 {
		t.Fatalf("a refusal made %d events", len(f.accts.events))
	}
	// Open slots are bounded; uploading to one frees it.
	var puts []string
	for range 3 {
		put, _ := f.slot(t, "a.txt", 100, "text/plain")
		puts = append(puts, put)
	}
	if a := f.request(t, romeo, "a.txt", 100, "text/plain"); cond(a) != "resource-constraint" {
		t.Fatalf("a fourth open slot: %s", a.Inner)
	}
	if resp := do(t, "PUT", puts[0], "text/plain", strings.Repeat("x", 100)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %d", resp.StatusCode)
	}
	f.slot(t, "a.txt", 100, "text/plain")
	// The quota: 2500 bytes of live files; 400 granted so far.
	f.clock.Add(10 * time.Minute) // the open slots' windows are over
	f.slot(t, "a.bin", 1000, "")
	f.slot(t, "a.bin", 1000, "")
	if a := f.request(t, romeo, "a.bin", 101, ""); cond(a) != "resource-constraint" {
		t.Fatalf("over the quota: %s", a.Inner)
	}
	f.slot(t, "a.bin", 100, "")
	// Another account has its own.
	if a := f.request(t, jid.MustParse("benvolio@localhost/x"), "a.bin", 1000, ""); a.Attr("type") != "result" {
		t.Fatalf("another account: %s", a.Inner)
	}
	// A day later the files are gone and the quota free again.
	f.clock.Add(24 * time.Hour)
	f.slot(t, "a.bin", 1000, "")
}

var discard = slog.New(slog.DiscardHandler)
