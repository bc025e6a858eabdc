package upload

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// do sends a request with body (a Content-Length) and content type ct
// ("" for none), and reads the answer.
func do(t *testing.T, method, u, ct, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

func body(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A file put to its slot is served byte for byte, with its type, length,
// disposition, and the headers that keep a browser from running it.
func TestPutGet(t *testing.T) {
	f := newFixture(t)
	data := make([]byte, 1000)
	rand.Read(data)
	put, get := f.slot(t, "très cool.jpg", int64(len(data)), "image/jpeg")
	if resp := do(t, "PUT", put, "image/jpeg", string(data)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %d %s", resp.StatusCode, body(resp))
	}
	resp := do(t, "GET", get, "", "")
	if resp.StatusCode != http.StatusOK || body(resp) != string(data) {
		t.Fatalf("GET %d", resp.StatusCode)
	}
	for k, v := range map[string]string{"Content-Type": "image/jpeg", "Content-Length": "1000", "X-Content-Type-Options": "nosniff",
		"Content-Disposition": "inline; filename*=utf-8''tr%C3%A8s%20cool.jpg", "Access-Control-Allow-Origin": "*"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("CSP %q", resp.Header.Get("Content-Security-Policy"))
	}
	head := do(t, "HEAD", get, "", "")
	if head.StatusCode != http.StatusOK || head.Header.Get("Content-Length") != "1000" || body(head) != "" {
		t.Fatalf("HEAD %d %v", head.StatusCode, head.Header)
	}
	// Once only.
	if resp := do(t, "PUT", put, "image/jpeg", string(data)); resp.StatusCode != http.StatusConflict {
		t.Fatalf("a second PUT: %d", resp.StatusCode)
	}
	// Anything but images, video, audio and text is offered to save; a
	// slot asked without a type is served as application/octet-stream.
	put, get = f.slot(t, "notes.zip", 3, "application/zip")
	do(t, "PUT", put, "application/zip", "zip")
	if d := do(t, "GET", get, "", "").Header.Get("Content-Disposition"); d != "attachment; filename=notes.zip" {
		t.Errorf("zip: %q", d)
	}
	put, get = f.slot(t, "x", 3, "")
	if resp := do(t, "PUT", put, "text/html", "abc"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %d", resp.StatusCode)
	}
	if resp := do(t, "GET", get, "", ""); resp.Header.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("untyped: %v", resp.Header)
	}
}

// A PUT to anything but its granted, open, unused slot, or of anything
// but the granted size and type, is refused, and nothing is served.
func TestPutRefusals(t *testing.T) {
	f := newFixture(t)
	put, get := f.slot(t, "a.png", 10, "image/png")
	tok := strings.TrimPrefix(put, f.http.URL+"/upload/")[:32]
	wrong := strings.Replace(put, tok, strings.Repeat("0", 32), 1)
	other := f.http.URL + "/upload/" + tok + "/b.png"
	for _, c := range []struct {
		name, url, ct, body string
		want                int
	}{
		{"a wrong token", wrong, "image/png", "0123456789", http.StatusForbidden},
		{"a token cut short", f.http.URL + "/upload/" + tok[:31] + "/a.png", "image/png", "0123456789", http.StatusForbidden},
		{"another name", other, "image/png", "0123456789", http.StatusForbidden},
		{"more than granted", put, "image/png", "0123456789A", http.StatusRequestEntityTooLarge},
		{"less than granted", put, "image/png", "012345678", http.StatusBadRequest},
		{"another type", put, "image/jpeg", "0123456789", http.StatusUnsupportedMediaType},
		{"no type", put, "", "0123456789", http.StatusUnsupportedMediaType},
	} {
		if resp := do(t, "PUT", c.url, c.ct, c.body); resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
	// A body longer than its Content-Length says is read no further
	// than the slot's size: chunked, with no length.
	req, _ := http.NewRequest("PUT", put, io.MultiReader(strings.NewReader("0123456789"), strings.NewReader("and more")))
	req.Header.Set("Content-Type", "image/png")
	req.ContentLength = -1
	if resp := send(t, req); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked, too long: %d", resp.StatusCode)
	}
	if resp := do(t, "GET", get, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET after refused PUTs: %d", resp.StatusCode)
	}
	ents, _ := os.ReadDir(f.svc.dir(SlotID(tok)))
	if len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
	// The type's parameters may differ (a browser adds a charset).
	if resp := do(t, "PUT", put, "image/png; charset=binary", "0123456789"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("the right PUT: %d %s", resp.StatusCode, body(resp))
	}
	// A wrong token tells nothing on GET either.
	if resp := do(t, "GET", strings.Replace(get, tok, strings.Repeat("0", 32), 1), "", ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET with a wrong token: %d", resp.StatusCode)
	}
	// The upload window is five minutes.
	put, _ = f.slot(t, "late.png", 1, "image/png")
	f.clock.Add(5 * time.Minute)
	if resp := do(t, "PUT", put, "image/png", "x"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a PUT after the window: %d", resp.StatusCode)
	}
}

// A file is served until it expires, then is gone: 404 at once, and
// deleted by the sweeper, as are slots never uploaded to.
func TestExpiry(t *testing.T) {
	f := newFixture(t)
	put, get := f.slot(t, "a.txt", 2, "text/plain")
	do(t, "PUT", put, "text/plain", "hi")
	unused, _ := f.slot(t, "b.txt", 2, "text/plain")
	f.clock.Add(10 * time.Minute)
	if n, err := f.svc.Sweep(f.clock.Now()); err != nil || n != 1 {
		t.Fatalf("sweep after the window: %d %v", n, err)
	}
	if resp := do(t, "PUT", unused, "text/plain", "hi"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PUT to a swept slot: %d", resp.StatusCode)
	}
	f.clock.Add(24*time.Hour - 10*time.Minute - time.Second)
	if resp := do(t, "GET", get, "", ""); resp.StatusCode != http.StatusOK || body(resp) != "hi" {
		t.Fatalf("GET a second before expiry: %d", resp.StatusCode)
	}
	f.clock.Add(time.Second)
	if resp := do(t, "GET", get, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET at expiry: %d", resp.StatusCode)
	}
	if n, err := f.svc.Sweep(f.clock.Now()); err != nil || n != 1 {
		t.Fatalf("sweep at expiry: %d %v", n, err)
	}
	if ents, err := os.ReadDir(f.svc.cfg.Dir); err != nil || len(ents) != 0 {
		t.Fatalf("left: %v %v", ents, err)
	}
}

// Browsers' preflights are answered, and every answer allows any origin.
func TestCORS(t *testing.T) {
	f := newFixture(t)
	put, _ := f.slot(t, "a.txt", 2, "text/plain")
	req, _ := http.NewRequest("OPTIONS", put, nil)
	req.Header.Set("Origin", "https://converse.example")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp := send(t, req)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("OPTIONS %d", resp.StatusCode)
	}
	for k, v := range map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "PUT, GET, HEAD, OPTIONS",
		"Access-Control-Allow-Headers": "Content-Type, Authorization"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	for _, resp := range []*http.Response{do(t, "PUT", put, "text/plain", "hi"), do(t, "PUT", put, "text/plain", "hi"), do(t, "DELETE", put, "", "")} {
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%d without CORS", resp.StatusCode)
		}
	}
}

// A client that stalls in the middle of its body is cut off after the
// grace (plus its size at the minimum rate), and the slot stays open.
func TestPutStalled(t *testing.T) {
	f := newFixture(t)
	f.svc.cfg.PutGrace, f.svc.cfg.PutMinRate = 300*time.Millisecond, 1<<30
	put, _ := f.slot(t, "a.txt", 10, "text/plain")
	u, _ := url.Parse(put)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n01234", u.RequestURI(), u.Host)
	start := time.Now()
	conn.SetReadDeadline(start.Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled PUT after %v: %v", time.Since(start), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || time.Since(start) > 3*time.Second {
		t.Fatalf("a stalled PUT: %d after %v", resp.StatusCode, time.Since(start))
	}
	if resp := do(t, "PUT", put, "text/plain", "0123456789"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("the PUT after: %d", resp.StatusCode)
	}
}

// A PUT begun in its window may end after it: the sweeper leaves its
// slot alone meanwhile.
func TestSweepSparesUploadInProgress(t *testing.T) {
	f := newFixture(t)
	put, get := f.slot(t, "a.txt", 10, "text/plain")
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", put, pr)
	req.ContentLength = 10
	req.Header.Set("Content-Type", "text/plain")
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	pw.Write([]byte("01234"))
	// The handler has the first half: the PUT is in progress.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		f.svc.mu.Lock()
		n := f.svc.putting[SlotID(strings.TrimPrefix(put, f.http.URL+"/upload/")[:32])]
		f.svc.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the PUT did not begin")
		}
	}
	f.clock.Add(10 * time.Minute)
	if n, err := f.svc.Sweep(f.clock.Now()); err != nil || n != 0 {
		t.Fatalf("swept %d during the PUT: %v", n, err)
	}
	pw.Write([]byte("56789"))
	pw.Close()
	if resp := <-done; resp == nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("the PUT: %v", resp)
	}
	if resp := do(t, "GET", get, "", ""); body(resp) != "0123456789" {
		t.Fatalf("GET %d", resp.StatusCode)
	}
	if n, err := f.svc.Sweep(f.clock.Now()); err != nil || n != 0 {
		t.Fatalf("swept %d an uploaded file before its expiry: %v", n, err)
	}
}

type uploadedBytes struct {
	mu    sync.Mutex
	bytes int64
}

func (u *uploadedBytes) Uploaded(n int64) { u.mu.Lock(); u.bytes += n; u.mu.Unlock() }

func (u *uploadedBytes) get() int64 { u.mu.Lock(); defer u.mu.Unlock(); return u.bytes }

// Metrics hear of the bytes of each file stored, and of nothing refused.
func TestUploadedBytes(t *testing.T) {
	f := newFixture(t)
	m := &uploadedBytes{}
	f.svc.cfg.Metrics = m
	put, _ := f.slot(t, "a.txt", 10, "text/plain")
	if resp := do(t, "PUT", put, "text/plain", "0123456789"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %d %s", resp.StatusCode, body(resp))
	}
	if resp := do(t, "PUT", put, "text/plain", "0123456789"); resp.StatusCode != http.StatusConflict {
		t.Fatalf("second PUT %d", resp.StatusCode)
	}
	short, _ := f.slot(t, "b.txt", 10, "text/plain")
	if resp := do(t, "PUT", short, "text/plain", "01234"); resp.StatusCode == http.StatusCreated {
		t.Fatal("a PUT shorter than its slot was stored")
	}
	if got := m.get(); got != 10 {
		t.Fatalf("bytes counted: %d, want 10", got)
	}
}
