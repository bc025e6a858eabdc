package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// limitedServer is annals serve started under `prlimit --nofile=N:N`, so
// that it runs out of descriptors where a flood can reach.
type limitedServer struct {
	*server
	exited chan struct{} // closed when the process ends
	logs   *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func serveLimited(t *testing.T, data string, nofile int, flags ...string) *limitedServer {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatalf("prlimit (util-linux) is needed: %v", err)
	}
	args := append([]string{fmt.Sprintf("--nofile=%d:%d", nofile, nofile), "--", bin,
		"serve", "--data", data, "--c2s", "127.0.0.1:0", "--log-level", "debug"}, flags...)
	cmd := exec.Command(prlimit, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("server log (last 8 KiB):\n%s", tail(logs.String(), 8<<10))
		}
	})
	port, ok := listeningPort(stdout)
	if !ok {
		t.Fatalf("server did not say where it listens:\n%s", logs.String())
	}
	return &limitedServer{server: &server{port: port, data: data}, exited: exited, logs: logs}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// alive fails the test if the server process has ended.
func (s *limitedServer) alive(t *testing.T, when string) {
	t.Helper()
	select {
	case <-s.exited:
		t.Fatalf("%s: the server exited", when)
	default:
	}
}

// flooder holds idle connections to the server from one source address.
type flooder struct {
	mu      sync.Mutex
	conns   []net.Conn
	refused map[string]int // stream error condition -> connections refused with it
}

var streamCond = regexp.MustCompile(`<stream:error><([a-z-]+)`)

// flood opens n connections from each of srcs that send nothing, all
// before reading any. Connections the server refuses are read to their
// end (a stream error, then the close); the rest are held open.
func (f *flooder) flood(t *testing.T, addr string, srcs []string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for _, src := range srcs {
		for range n {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
			nc, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("dial from %s: %v", src, err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A held connection sends nothing and gets nothing; a
				// refused one gets its stream error and the end at once.
				nc.SetReadDeadline(time.Now().Add(2 * time.Second))
				b, _ := io.ReadAll(nc)
				f.mu.Lock()
				defer f.mu.Unlock()
				if m := streamCond.FindSubmatch(b); m != nil && bytes.HasSuffix(b, []byte("</stream:stream>")) {
					f.refused[string(m[1])]++
					nc.Close()
					return
				}
				nc.SetReadDeadline(time.Time{})
				f.conns = append(f.conns, nc)
			}()
		}
	}
	wg.Wait()
}

// addrs returns 127.0.0.from .. 127.0.0.to.
func addrs(from, to int) []string {
	var a []string
	for i := from; i <= to; i++ {
		a = append(a, fmt.Sprintf("127.0.0.%d", i))
	}
	return a
}

func (f *flooder) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, nc := range f.conns {
		nc.Close()
	}
	f.conns = nil
}

// chat sends a message from a to b and waits for b to receive it.
func chat(t *testing.T, a, b *loadClient, body string) {
	t.Helper()
	if err := a.send("<message type='chat' to='" + b.jid + "'><body>" + body + "</body></message>"); err != nil {
		t.Fatalf("%s sends: %v", a.jid, err)
	}
	b.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer b.nc.SetReadDeadline(time.Time{})
	for {
		st, inner, err := b.next()
		if err != nil {
			t.Fatalf("%s waiting for %q: %v", b.jid, body, err)
		}
		if st.Name.Local == "message" && strings.Contains(inner, body) {
			return
		}
	}
}

// ping sends c an XMPP ping (XEP-0199) and waits for the answer.
func ping(t *testing.T, c *loadClient) {
	t.Helper()
	if err := c.send("<iq type='get' id='still-there' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
		t.Fatalf("%s pings: %v", c.jid, err)
	}
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.nc.SetReadDeadline(time.Time{})
	for {
		st, _, err := c.next()
		if err != nil {
			t.Fatalf("%s waiting for the ping's answer: %v", c.jid, err)
		}
		if st.Name.Local == "iq" && attr(st, "id") == "still-there" {
			return
		}
	}
}

// Item 6: a flood of idle connections, more than the process has
// descriptors, from several loopback addresses. The per-address cap
// refuses the excess of each address with policy-violation, the global cap
// (the descriptor limit less a reserve) the excess of all with
// resource-constraint; connections that do not log in are closed at the
// login deadline however many bytes they trickle. Throughout, the server
// stays up, logged-in sessions chat (through the store), and a new login
// from an address with room succeeds; after the flood, too.
func TestHostileConnectionFlood(t *testing.T) {
	t.Parallel()
	const (
		nofile       = 512
		perIP        = 60
		loginTimeout = 10 * time.Second
	)
	data := t.TempDir()
	addUsers(t, data, map[string]string{"alice@localhost": "wonderland", "bob@localhost": "builder", "carol@localhost": "christmas"})
	s := serveLimited(t, data, nofile, "--max-connections-per-ip", strconv.Itoa(perIP), "--login-timeout", loginTimeout.String())
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	alice, err := dialLogin(addr, "localhost", "alice", "wonderland", "desk")
	if err != nil {
		t.Fatal(err)
	}
	defer alice.close()
	bob, err := dialLogin(addr, "localhost", "bob", "builder", "desk")
	if err != nil {
		t.Fatal(err)
	}
	defer bob.close()

	// Five connections trickle bytes from the start: a stream header, then
	// a space every half second. The login deadline closes them anyway.
	trickled := make(chan string, 5)
	for range 5 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.20")}, Timeout: 5 * time.Second}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		dialed := time.Now()
		go func() {
			io.WriteString(nc, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
			go func() {
				for range 3 * loginTimeout / (500 * time.Millisecond) {
					time.Sleep(500 * time.Millisecond)
					if _, err := io.WriteString(nc, " "); err != nil {
						return
					}
				}
			}()
			nc.SetReadDeadline(time.Now().Add(3 * loginTimeout))
			b, _ := io.ReadAll(nc)
			trickled <- fmt.Sprintf("%v %s", time.Since(dialed).Round(100*time.Millisecond), b[max(0, len(b)-200):])
		}()
	}

	// Phase 1: four addresses, 100 connections each: each gets perIP.
	f := &flooder{refused: map[string]int{}}
	defer f.closeAll()
	f.flood(t, addr, addrs(2, 5), 100)
	if got := f.refused["policy-violation"]; got != 4*(100-perIP) || len(f.conns) != 4*perIP {
		t.Fatalf("per-address cap: %d held, refused %v; want %d held and %d refused with policy-violation",
			len(f.conns), f.refused, 4*perIP, 4*(100-perIP))
	}
	s.alive(t, "per-address flood")
	// During the flood: logged-in sessions chat, and a new login from an
	// address with room succeeds (a real client: slixmpp, from 127.0.0.1).
	chat(t, alice, bob, "during the first flood")
	if login := find(t, slix(t, s.server, "login", "carol@localhost/phone", "christmas", "SCRAM-SHA-256"), "login"); login["ok"] != true {
		t.Fatalf("a new login during the per-address flood failed: %v", login)
	}

	// Phase 2: ten more addresses, 60 each: past the global cap
	// (nofile less the reserve), and past nofile altogether.
	// (Phase 1's connections may have reached their login deadline by now,
	// freeing their slots: only those of this phase are sure to be open.)
	before := len(f.conns)
	f.flood(t, addr, addrs(6, 15), perIP)
	held := len(f.conns) - before
	if f.refused["resource-constraint"] == 0 || held >= nofile-2 {
		t.Fatalf("global cap: %d more held, refused %v; want some refused with resource-constraint and fewer than %d held",
			held, f.refused, nofile-2)
	}
	t.Logf("flood: %d then %d connections held, refused %v (%d attempted)", before, held, f.refused, 4*100+10*perIP)
	s.alive(t, "global flood")
	chat(t, bob, alice, "during the second flood")

	// The trickling connections were closed at the login deadline, with
	// connection-timeout, not kept alive by their bytes.
	for range 5 {
		select {
		case got := <-trickled:
			if !strings.Contains(got, "<connection-timeout") {
				t.Fatalf("a trickling connection ended with %q, want connection-timeout", got)
			}
			if el, _ := time.ParseDuration(strings.Fields(got)[0]); el > loginTimeout+3*time.Second {
				t.Fatalf("a trickling connection was closed after %v, login timeout %v", el, loginTimeout)
			}
		case <-time.After(3 * loginTimeout):
			t.Fatal("a trickling connection was not closed at the login deadline")
		}
	}

	// After the flood: the idle connections are gone (closed by the
	// deadline, or by us), and a new login succeeds.
	f.closeAll()
	s.alive(t, "after the flood")
	var again *loadClient
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if again, err = dialLogin(addr, "localhost", "carol", "christmas", "again"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no login after the flood: %v", err)
		}
	}
	defer again.close()
	chat(t, again, alice, "after the flood")
	if login := find(t, slix(t, s.server, "login", "carol@localhost/tablet", "christmas", "SCRAM-SHA-256"), "login"); login["ok"] != true {
		t.Fatalf("slixmpp login after the flood failed: %v", login)
	}
	if logs := s.logs.String(); strings.Contains(logs, "too many open files") {
		t.Errorf("the server ran out of descriptors:\n%s", tail(logs, 4<<10))
	}
}

// Item 10: with --allow-plaintext, STARTTLS is offered without
// <required/> and a client that skips it logs in and chats (a raw client
// with PLAIN, slixmpp with SCRAM); without the flag, STARTTLS stays
// required and SASL on the plain stream ends it with policy-violation.
func TestAllowPlaintext(t *testing.T) {
	t.Parallel()
	users := map[string]string{"alice@localhost": "wonderland", "bob@localhost": "builder"}
	for _, allow := range []bool{true, false} {
		t.Run(fmt.Sprintf("allow=%v", allow), func(t *testing.T) {
			data := t.TempDir()
			addUsers(t, data, users)
			var flags []string
			if allow {
				flags = append(flags, "--allow-plaintext")
			}
			s, _ := serveOn(t, data, flags...)
			addr := "127.0.0.1:" + strconv.Itoa(s.port)
			bob, err := dialLogin(addr, "localhost", "bob", "builder", "desk")
			if err != nil {
				t.Fatal(err)
			}
			defer bob.close()

			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(20 * time.Second))
			c := &loadClient{nc: nc}
			if err := c.open("localhost"); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(c.features, "urn:ietf:params:xml:ns:xmpp-tls") {
				t.Fatalf("STARTTLS not offered: %s", c.features)
			}
			// <required/> appears only in <starttls/>.
			if required := strings.Contains(c.features, "<required/>"); required == allow {
				t.Fatalf("allow-plaintext %v: features %s", allow, c.features)
			}
			c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
				base64.StdEncoding.EncodeToString([]byte("\x00alice\x00wonderland")) + "</auth>")
			st, inner, err := c.next()
			if !allow {
				if err != nil || st.Name.Local != "error" || !strings.Contains(inner, "policy-violation") {
					t.Fatalf("SASL without TLS, not allowed: got <%s>%s %v; want a policy-violation stream error", st.Name.Local, inner, err)
				}
				ping(t, bob)
				return
			}
			if err != nil || st.Name.Local != "success" {
				t.Fatalf("PLAIN without TLS: <%s>%s %v", st.Name.Local, inner, err)
			}
			if err := c.open("localhost"); err != nil {
				t.Fatal(err)
			}
			c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>plain</resource></bind></iq>")
			if st, inner, err := c.next(); err != nil || st.Name.Local != "iq" || !strings.Contains(inner, "alice@localhost/plain") {
				t.Fatalf("bind: <%s>%s %v", st.Name.Local, inner, err)
			}
			c.jid = "alice@localhost/plain"
			nc.SetDeadline(time.Time{})
			chat(t, c, bob, "over plaintext")
			chat(t, bob, c, "back over TLS")

			rs := slix(t, s, "plaintext", "alice@localhost/slix", "wonderland", bob.jid)
			if login := find(t, rs, "login"); login["ok"] != true || login["tls"] != false {
				t.Fatalf("slixmpp without STARTTLS: %v", login)
			}
			find(t, rs, "sent")
			bob.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				st, inner, err := bob.next()
				if err != nil {
					t.Fatalf("bob waiting for slixmpp's message: %v", err)
				}
				if st.Name.Local == "message" && strings.Contains(inner, "in the clear") {
					break
				}
			}
		})
	}
}
