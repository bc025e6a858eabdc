package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"annals.im/annals/adapters/websocket"
)

// startServerWS starts a server that also serves XMPP over WebSocket
// (RFC 7395) on a loopback plain-text HTTP listener, and returns it with
// the endpoint's URL.
func startServerWS(t *testing.T, users map[string]string) (*server, string) {
	t.Helper()
	if _, err := os.Stat("clients/xmppjs/node_modules/@xmpp/client"); err != nil {
		t.Fatal("xmpp.js is not installed: make test runs npm ci in e2e/clients/xmppjs")
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	addUsers(t, data, users)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s, _ := serveOn(t, data, "--http-plaintext", addr)
	if err := waitListen(addr, 10e9); err != nil {
		t.Fatal(err)
	}
	return s, "ws://" + addr + websocket.Path
}

// xmppjsWS runs an xmpp.js driver whose clients connect over WebSocket
// (Node 20 has WebSocket behind a flag).
func xmppjsWS(t *testing.T, script, url string, args ...string) []result {
	t.Helper()
	dir, _ := filepath.Abs("clients/xmppjs")
	return runDriver(t, "node", append([]string{"--experimental-websocket", filepath.Join(dir, script), url}, args...)...)
}

// Over WebSocket, 1:1 chat state is the same as over TCP: xmpp.js's
// message reaches the other client once with its stanza-id, and lands in
// each archive once, the sender's under the ID its client computed from
// the stream's id (now <open/>'s).
func TestChatForkWebSocket(t *testing.T) {
	t.Parallel()
	_, url := startServerWS(t, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	rs := xmppjsWS(t, "chat.mjs", url, "fork", "romeo@localhost", "montague", "juliet@localhost", "capulet")
	checkXmppjsFork(t, rs)
}

// A WebSocket that drops (closed as a transport, the XMPP stream left
// open) detaches the session; the client reconnects over a new WebSocket
// and resumes it (XEP-0198), getting once what was sent meanwhile; each
// archive holds each message once. The same scenario over TCP shows the
// transports behave alike.
func TestChatResumeWebSocket(t *testing.T) {
	t.Parallel()
	users := map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"}
	s, url := startServerWS(t, users)
	ws := xmppjsWS(t, "chat.mjs", url, "resume", "romeo@localhost", "montague", "juliet@localhost", "capulet")
	dir, _ := filepath.Abs("clients/xmppjs")
	tcp := runDriver(t, "node", filepath.Join(dir, "chat.mjs"), strconv.Itoa(startServer(t, users).port), "resume",
		"romeo@localhost", "montague", "juliet@localhost", "capulet")
	for name, rs := range map[string][]result{"websocket": ws, "tcp": tcp} {
		cut, res := find(t, rs, "cut"), find(t, rs, "resume")
		if res["result"] != "resumed" || res["resume_id"] != cut["resume_id"] || cut["resume_id"] == nil {
			t.Errorf("%s: resumption %v after the cut %v", name, res, cut)
		}
		if r := find(t, rs, "retransmitted"); r["count"] != 1.0 {
			t.Errorf("%s: the message sent while away reached the resumed session %v times", name, r["count"])
		}
		check := find(t, rs, "archive-check")
		for _, who := range []string{"romeo_counts", "juliet_counts"} {
			for id, n := range check[who].(map[string]any) {
				if n != 1.0 {
					t.Errorf("%s: %s has %s %v times", name, who, id, n)
				}
			}
		}
	}
	if !strings.Contains(s.logs.String(), "session detached, waiting to be resumed") {
		t.Error("the WebSocket server never saw the session detach: the drop was not a drop")
	}
}

// XEP-0156: host-meta and host-meta.json name the endpoint as the client
// reached it, with CORS open so that a web page may ask.
func TestWebSocketDiscovery(t *testing.T) {
	t.Parallel()
	_, url := startServerWS(t, map[string]string{"romeo@localhost": "montague"})
	base := "http://" + strings.TrimPrefix(strings.TrimSuffix(url, websocket.Path), "ws://")
	get := func(path string) (string, http.Header) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		return string(b), resp.Header
	}
	xrd, h := get("/.well-known/host-meta")
	if !strings.Contains(xrd, "rel='urn:xmpp:alt-connections:websocket' href='"+url+"'") || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("host-meta: %s %v", xrd, h)
	}
	js, _ := get("/.well-known/host-meta.json")
	var doc struct{ Links []struct{ Rel, Href string } }
	if err := json.Unmarshal([]byte(js), &doc); err != nil || len(doc.Links) != 1 || doc.Links[0].Href != url {
		t.Errorf("host-meta.json: %s (%v)", js, err)
	}
	// A request for the endpoint without the xmpp subprotocol, or as
	// plain HTTP, is refused.
	resp, err := http.Get(base + websocket.Path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 || resp.StatusCode == 101 {
		t.Errorf("a plain GET of the endpoint: %s", resp.Status)
	}
}

// Hostile WebSocket clients: one without the xmpp subprotocol is closed
// with a policy violation; a message past --max-stanza (plus the
// framing's 1 KiB) or a binary one ends that connection; an <open/> to a
// domain not served gets host-unknown; clients that behave are served
// as before.
func TestHostileWebSocket(t *testing.T) {
	t.Parallel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	addUsers(t, data, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	serveOn(t, data, "--http-plaintext", addr, "--max-stanza", "8192")
	if err := waitListen(addr, 10e9); err != nil {
		t.Fatal(err)
	}
	url := "ws://" + addr + websocket.Path
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	dial := func(protos ...string) *ws.Conn {
		t.Helper()
		c, _, err := ws.Dial(ctx, url, &ws.DialOptions{Subprotocols: protos})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// closedWith reads until the server ends the connection, which must
	// be soon.
	closedWith := func(c *ws.Conn) (ws.StatusCode, string) {
		t.Helper()
		soon, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var last string
		for {
			_, m, err := c.Read(soon)
			if soon.Err() != nil {
				t.Fatalf("the server kept the connection open; last message %q", last)
			}
			if err != nil {
				return ws.CloseStatus(err), last
			}
			last = string(m)
		}
	}
	if code, _ := closedWith(dial()); code != ws.StatusPolicyViolation {
		t.Errorf("no xmpp subprotocol: closed with %v", code)
	}
	open := "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
	big := dial("xmpp")
	big.Write(ctx, ws.MessageText, []byte(open))
	big.Write(ctx, ws.MessageText, []byte("<message xmlns='jabber:client'><body>"+strings.Repeat("x", 8192+2048)+"</body></message>"))
	if code, _ := closedWith(big); code != ws.StatusMessageTooBig {
		t.Errorf("a message past the bound: closed with %v", code)
	}
	bin := dial("xmpp")
	bin.Write(ctx, ws.MessageText, []byte(open))
	bin.Write(ctx, ws.MessageBinary, []byte("<presence/>"))
	closedWith(bin) // RFC 7395 §3.2: text only; the connection ends
	elsewhere := dial("xmpp")
	elsewhere.Write(ctx, ws.MessageText, []byte("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='elsewhere.example' version='1.0'/>"))
	if _, last := closedWith(elsewhere); !strings.Contains(last, "host-unknown") && !strings.Contains(last, "<close") {
		t.Errorf("an unknown domain: the last message was %q", last)
	}

	// Clients that behave are served as before.
	checkXmppjsFork(t, xmppjsWS(t, "chat.mjs", url, "fork", "romeo@localhost", "montague", "juliet@localhost", "capulet"))
}
