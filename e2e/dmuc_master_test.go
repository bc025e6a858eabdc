package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/s2s"
	"annals.im/annals/adapters/stanza"
)

// fakeMirror stands for the other server's side of DMUC3 (issue 13)
// until Annals has its own mirror service: montague.test and its mirror
// service mirror.montague.test, built on this project's s2s package,
// recording every stanza the master sends either.
type fakeMirror struct {
	cfg  s2s.Config
	addr string
	mu   sync.Mutex
	got  []string // "to kind type: inner"
}

func startFakeMirror(t *testing.T, ca *testCA) *fakeMirror {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, "montague.test", "mirror.montague.test")
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	f := &fakeMirror{}
	f.cfg = s2s.Config{
		Domains: []string{"montague.test", "mirror.montague.test"},
		Secret:  []byte("the fake mirror's dialback secret"),
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Roots:   roots,
		Verify:  func(context.Context, string, string, string, string) (bool, error) { return false, nil },
		Deliver: func(_, to jid.JID, e *stanza.Element) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.got = append(f.got, fmt.Sprintf("%s %s %s: %s", to, e.XMLName.Local, e.Attr("type"), e.Inner))
		},
		Timeout: 10 * time.Second,
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	srv, err := s2s.NewServer(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.3:0")
	if err != nil {
		t.Skipf("no loopback address 127.0.0.3: %v", err)
	}
	f.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func (f *fakeMirror) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

// A DMUC3 master (--mirror-trust) tells a mirror each room event once,
// with its sequence, however many of the mirror's users are in the room,
// and none of them on their own.
func TestDMUCMasterFansOutOncePerMirror(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, dir, "DMUC test CA")
	mirror := startFakeMirror(t, ca)
	cert, key := ca.issue(t, "capulet.test", "conference.capulet.test")
	certFile, keyFile := filepath.Join(dir, "capulet.crt"), filepath.Join(dir, "capulet.key")
	writeFile(t, certFile, cert, 0o600)
	writeFile(t, keyFile, key, 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s2sAddr := ln.Addr().String()
	ln.Close()
	data := t.TempDir()
	addUsers(t, data, map[string]string{"juliet@capulet.test": "pw"})
	master, _ := serveOn(t, data, "--domain", "capulet.test", "--s2s", s2sAddr, "--tls-cert", certFile, "--tls-key", keyFile,
		"--s2s-ca", ca.file, "--mirror-trust", "montague.test",
		"--s2s-route", "montague.test="+mirror.addr, "--s2s-route", "mirror.montague.test="+mirror.addr)
	room := "hall@conference.capulet.test"

	// Juliet makes the room here and waits for three users of the other
	// server, who join through its mirror; then she says something.
	results := make(chan []result, 1)
	go func() {
		results <- runDriverFor(t, "/usr/bin/python3", "clients/slix_fed.py", "host", "127.0.0.1:"+strconv.Itoa(master.port), "juliet@capulet.test", "pw",
			"-", "-", "-", room, "3", "to everyone, near and far")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := mirror.cfg.Dial(ctx, s2sAddr, "montague.test", "conference.capulet.test")
	if err != nil {
		t.Fatalf("the mirror's server could not reach the master: %v", err)
	}
	defer out.Close()
	for i := range 3 {
		user := fmt.Sprintf("u%d@montague.test/annals-rooms", i)
		for joined := false; !joined; {
			out.Send(fmt.Sprintf("<presence xmlns='jabber:server' from='%s' to='%s/U%d'><x xmlns='http://jabber.org/protocol/muc'/>"+
				"<dmuc xmlns='http://tridsys.com/protocol/dmuc' from='mirror.montague.test'/></presence>", user, room, i))
			deadline := time.Now().Add(2 * time.Second)
			for !joined && time.Now().Before(deadline) {
				for _, r := range mirror.received() {
					joined = joined || strings.HasPrefix(r, user+" presence : ") && strings.Contains(r, "code='110'")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if ctx.Err() != nil {
				t.Fatalf("%s never got into the room; the mirror received:\n%s", user, strings.Join(mirror.received(), "\n"))
			}
		}
	}
	rs := <-results
	t.Logf("slixmpp saw: %v", rs)
	if r := find(t, rs, "said"); r["seen"] != float64(3) {
		t.Fatalf("juliet saw %v of the mirror's users join; want 3", r["seen"])
	}
	time.Sleep(500 * time.Millisecond)
	var toMirror, toUsers []string
	for _, r := range mirror.received() {
		if !strings.Contains(r, "to everyone, near and far") {
			continue
		}
		if strings.HasPrefix(r, "mirror.montague.test ") {
			toMirror = append(toMirror, r)
		} else {
			toUsers = append(toUsers, r)
		}
	}
	if len(toMirror) != 1 || !strings.Contains(toMirror[0], "urn:xmpp:dmuc:0") || !strings.Contains(toMirror[0], "seq='") {
		t.Errorf("the mirror got the message %d times: %v; want once, with its sequence", len(toMirror), toMirror)
	}
	if len(toUsers) != 0 {
		t.Errorf("the mirror's users got the message on their own: %v", toUsers)
	}
	// The mirror was introduced once: the configuration, and the roster
	// at the room's sequence, when its first user joined.
	configs, rosters := 0, 0
	for _, r := range mirror.received() {
		if strings.HasPrefix(r, "mirror.montague.test iq set: <config xmlns='urn:xmpp:dmuc:0'>") && strings.Contains(r, "muc#roomconfig") {
			configs++
		}
		if strings.HasPrefix(r, "mirror.montague.test iq set: <roster xmlns='urn:xmpp:dmuc:0' seq='") && strings.Contains(r, "name='Host'") {
			rosters++
		}
	}
	if configs != 1 || rosters != 1 {
		t.Errorf("the mirror got %d configurations and %d rosters; want one of each", configs, rosters)
	}

	// A resend: every event of the room after the one asked, with its
	// sequence, then where it ended and that it was all; a sequence the
	// room has not reached: bad-request.
	ms, err := mirror.cfg.Dial(ctx, s2sAddr, "mirror.montague.test", "conference.capulet.test")
	if err != nil {
		t.Fatalf("the mirror service could not reach the master: %v", err)
	}
	defer ms.Close()
	ask := func(from, id, after string) string {
		mark := len(mirror.received())
		ms.Send(fmt.Sprintf("<iq xmlns='jabber:server' type='get' id='%s' from='%s' to='%s'><room xmlns='urn:xmpp:dmuc:0' after='%s'/></iq>", id, from, room, after))
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			for _, r := range mirror.received()[mark:] {
				if strings.HasPrefix(r, from+" iq result: ") || strings.HasPrefix(r, from+" iq error: ") {
					return r
				}
			}
		}
		t.Fatalf("no answer to resend %s", id)
		return ""
	}
	mark := len(mirror.received())
	answer := ask("mirror.montague.test", "resend-1", "0")
	if !strings.Contains(answer, " iq result: ") || !strings.Contains(answer, "complete='true'") {
		t.Errorf("the resend's answer: %s", answer)
	}
	resent := 0
	for _, r := range mirror.received()[mark:] {
		if strings.HasPrefix(r, "mirror.montague.test ") && strings.Contains(r, "urn:xmpp:dmuc:0") && strings.Contains(r, "seq='") {
			resent++
		}
	}
	if last := between(answer, "last='", "'"); resent == 0 || last == "" || last == "0" {
		t.Errorf("resent %d stanzas, last %q; want the room's events", resent, last)
	}
	if !strings.Contains(between(strings.Join(mirror.received()[mark:], "\n"), "", " iq result: "), "to everyone, near and far") {
		t.Error("the resend does not hold the message")
	}
	if r := ask("mirror.montague.test", "resend-2", "100000"); !strings.Contains(r, "bad-request") {
		t.Errorf("a resend after a sequence the room has not reached: %s", r)
	}
}

// runDriverFor is runDriver for a goroutine: it returns what it can and
// reports failures with t.Error.
func runDriverFor(t *testing.T, prog string, args ...string) []result {
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("driver: %v", r)
		}
	}()
	var rs []result
	ok := t.Run("driver", func(t *testing.T) { rs = runDriver(t, prog, args...) })
	if !ok {
		t.Error("the driver failed")
	}
	return rs
}

// Two Annals, capulet.test the master and montague.test mirroring its
// rooms (--mirror-of, --mirror-trust): an account of montague joins a
// room at capulet from two clients through montague's mirror; the room's
// traffic reaches both clients, each message once, and montague's
// replica of the room holds it (annals mirror list).
func TestDMUCMirrorJoin(t *testing.T) {
	t.Parallel()
	a, b := startFederated(t, func(self, peer *fedServer) []string {
		flags := dialback(self, peer)
		if self.domain == "capulet.test" {
			return append(flags, "--mirror-trust", "montague.test", "--s2s-insecure-domain", "mirror.montague.test",
				"--s2s-route", "mirror.montague.test="+peer.s2s())
		}
		return append(flags, "--mirror-of", "conference.capulet.test")
	})
	room := "hall@conference.capulet.test"
	rs := fedDriver(t, "attach", b, a, "romeo", "juliet", room)
	t.Logf("slixmpp saw: %v", rs)
	got := map[string]result{}
	groupchats := 0
	for _, r := range rs {
		if r["event"] == "groupchat" {
			groupchats++
		}
		got[fmt.Sprint(r["event"], "/", r["who"])] = r
	}
	if r := got["occupant/b"]; r == nil || r["jid"] != "romeo@montague.test/annals-rooms" {
		t.Errorf("the room saw %v; want the account's one occupant", r)
	}
	if groupchats != 4 {
		t.Errorf("%d groupchat messages seen, want 4 (juliet's at both clients, the second client's at juliet and the first)", groupchats)
	}
	if !strings.Contains(b.logs.String(), "dmuc") && !strings.Contains(a.logs.String(), "mirror.montague.test") {
		t.Log("no trace of the mirror in the logs")
	}
	b.cmd.Process.Signal(os.Interrupt)
	b.cmd.Wait()
	out, err := exec.Command(bin, "mirror", "list", "--data", b.data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), room+"\tseq ") || strings.Contains(string(out), "seq 0\t") {
		t.Fatalf("montague's replica: %v\n%s", err, out)
	}
	t.Logf("annals mirror list: %s", out)
}

// between is the text of s between the first before and the after that
// follows it ("" before: from the start).
func between(s, before, after string) string {
	_, rest, _ := strings.Cut(s, before)
	out, _, _ := strings.Cut(rest, after)
	return out
}
