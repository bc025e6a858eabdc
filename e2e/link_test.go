package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// targetConns listens on loopback and hands over what it accepts, for the
// proxy's own tests.
func targetConns(t *testing.T) (addr string, conns <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan net.Conn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(ch)
		for c := range ch {
			c.Close()
		}
	})
	return ln.Addr().String(), ch
}

func nextConn(t *testing.T, conns <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the target saw no connection")
		return nil
	}
}

func noConn(t *testing.T, conns <-chan net.Conn) {
	t.Helper()
	select {
	case c := <-conns:
		c.Close()
		t.Fatal("the target got a connection through a cut link")
	case <-time.After(200 * time.Millisecond):
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// readErr is the error reading c ends with, within a second.
func readErr(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, err := io.ReadAll(c)
	if err == nil {
		return io.EOF
	}
	return err
}

func send(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// The proxy alone, between a Go client and a Go target: it forwards both
// ways and passes a FIN on as a FIN; Cut resets both ends and refuses
// (or black-holes) new connections until Heal; Throttle bounds the rate
// of a direction over all its connections together and adds its
// latency; it counts what it delivered; Close leaves no goroutine.
func TestLinkProxy(t *testing.T) {
	t.Parallel()
	target, conns := targetConns(t)
	p := newLinkProxy(t, "127.0.0.3:0", target)

	t.Run("forward", func(t *testing.T) {
		mark := p.Count()
		c := dial(t, p.Addr())
		s := nextConn(t, conns)
		send(t, c, []byte("wherefore"))
		if got := readN(t, s, 9); string(got) != "wherefore" {
			t.Fatalf("the target read %q", got)
		}
		send(t, s, []byte("deny thy father"))
		if got := readN(t, c, 15); string(got) != "deny thy father" {
			t.Fatalf("the client read %q", got)
		}
		// A half-close passes through, and the other way still works.
		c.(*net.TCPConn).CloseWrite()
		if err := readErr(s); err != io.EOF {
			t.Fatalf("after the client's FIN the target read %v; want EOF", err)
		}
		send(t, s, []byte("!"))
		readN(t, c, 1)
		s.Close()
		if err := readErr(c); err != io.EOF {
			t.Fatalf("after the target closed the client read %v; want EOF", err)
		}
		if d := p.Count().Sub(mark); d != (linkCount{AB: 9, BA: 16, Conns: 1}) {
			t.Fatalf("counted %+v; want 9 bytes up, 16 down, 1 connection", d)
		}
	})

	t.Run("cut", func(t *testing.T) {
		c := dial(t, p.Addr())
		s := nextConn(t, conns)
		send(t, c, []byte("x"))
		readN(t, s, 1)
		mark := p.Count()
		p.Cut()
		for who, conn := range map[string]net.Conn{"client": c, "target": s} {
			if err := readErr(conn); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("after Cut the %s read %v; want a reset", who, err)
			}
		}
		// Refused: the connect succeeds, then a reset (which may come
		// before the dialer sees its connect done).
		if c2, err := net.Dial("tcp", p.Addr()); err == nil {
			err = readErr(c2)
			c2.Close()
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("a connection to the cut link read %v; want a reset", err)
			}
		} else if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("a connection to the cut link: %v; want a reset", err)
		}
		noConn(t, conns)
		if d := p.Count().Sub(mark); d != (linkCount{Refused: 1}) {
			t.Errorf("counted %+v while cut; want one refused, nothing forwarded", d)
		}
		p.Heal()
		c3 := dial(t, p.Addr())
		s3 := nextConn(t, conns)
		send(t, c3, []byte("again"))
		readN(t, s3, 5)
	})

	t.Run("black-hole", func(t *testing.T) {
		p.CutBlackHole()
		c := dial(t, p.Addr())
		send(t, c, []byte("anyone?"))
		if err := readErr(c); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a connection to the black hole read %v; want nothing until the deadline", err)
		}
		noConn(t, conns)
		p.Heal()
		if err := readErr(c); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("a connection held in the black hole read %v after Heal; want a reset", err)
		}
		c2 := dial(t, p.Addr())
		s2 := nextConn(t, conns)
		send(t, c2, []byte("again"))
		readN(t, s2, 5)
	})

	t.Run("throttle", func(t *testing.T) {
		// Latency alone: a round trip takes it twice.
		p.Throttle(0, 100*time.Millisecond)
		c := dial(t, p.Addr())
		s := nextConn(t, conns)
		start := time.Now()
		send(t, c, []byte("ping"))
		readN(t, s, 4)
		send(t, s, []byte("pong"))
		readN(t, c, 4)
		if rtt := time.Since(start); rtt < 200*time.Millisecond || rtt > 5*time.Second {
			t.Errorf("a round trip at 100 ms each way took %v", rtt)
		}
		// The FIN crosses it too.
		c4 := dial(t, p.Addr())
		s4 := nextConn(t, conns)
		start = time.Now()
		c4.(*net.TCPConn).CloseWrite()
		if err := readErr(s4); err != io.EOF || time.Since(start) < 100*time.Millisecond {
			t.Errorf("the client's FIN reached the target as %v after %v; want EOF after 100 ms", err, time.Since(start))
		}
		// Rate: two connections the same way share 2,000 B/s, so 500
		// bytes on each take half a second at least, plus the latency.
		p.Throttle(2000, 100*time.Millisecond)
		c2 := dial(t, p.Addr())
		s2 := nextConn(t, conns)
		mark := p.Count()
		start = time.Now()
		payload := bytes.Repeat([]byte("x"), 500)
		send(t, c, payload)
		send(t, c2, payload)
		readN(t, s, 500)
		readN(t, s2, 500)
		took := time.Since(start)
		t.Logf("1,000 bytes over 2,000 B/s and 100 ms: %v", took)
		if took < 590*time.Millisecond || took > 10*time.Second {
			t.Errorf("1,000 bytes over 2,000 B/s and 100 ms took %v; want 600 ms or a little more", took)
		}
		if d := p.Count().Sub(mark); d.AB != 1000 || d.BA != 0 {
			t.Errorf("counted %+v; want the 1,000 bytes up", d)
		}
		// Back to unlimited: 1 MiB passes at once.
		p.Throttle(0, 0)
		start = time.Now()
		big := bytes.Repeat([]byte("y"), 1<<20)
		go c.Write(big)
		readN(t, s, len(big))
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("1 MiB unthrottled took %v", took)
		}
	})

	t.Run("close", func(t *testing.T) {
		p.Heal()
		c := dial(t, p.Addr())
		s := nextConn(t, conns)
		send(t, c, []byte("?"))
		readN(t, s, 1)
		// Close waits for every goroutine of the proxy, or says that some
		// are left.
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		for who, conn := range map[string]net.Conn{"client": c, "target": s} {
			if err := readErr(conn); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("after Close the %s read %v; want a reset", who, err)
			}
		}
		if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
			t.Error("the closed proxy still accepts")
		}
		// What a black hole holds is reset too.
		q := newLinkProxy(t, "127.0.0.3:0", target)
		q.CutBlackHole()
		held := dial(t, q.Addr())
		send(t, held, []byte("?"))
		for q.Count().Refused == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		if err := readErr(held); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("after Close the connection held in the black hole read %v; want a reset", err)
		}
	})
}

// said reads the say scenario's facts by sender ("a", "b").
func said(t *testing.T, rs []result) map[string]result {
	t.Helper()
	got := map[string]result{}
	for _, r := range rs {
		if r["event"] == "said" {
			got[fmt.Sprint(r["who"])] = r
		}
	}
	if len(got) != 2 {
		t.Fatalf("facts %v; want what each side said", rs)
	}
	return got
}

// Two Annals federate through a link the test controls: chat crosses it
// both ways and is counted; cut, each side's message comes back to its
// sender as remote-server-not-found and nothing crosses; healed, chat
// works again on a fresh connection, with neither server restarted;
// throttled, a message still arrives, later by the latency at least.
func TestLinkedFederation(t *testing.T) {
	t.Parallel()
	a, b, l := startLinked(t, dialback)
	say := func(t *testing.T, timeout string) map[string]result {
		t.Helper()
		rs := fedDriver(t, "say", a, b, "juliet", "romeo", timeout)
		t.Logf("slixmpp saw: %v", rs)
		return said(t, rs)
	}
	arrived := func(t *testing.T, got map[string]result) {
		t.Helper()
		for _, who := range []string{"a", "b"} {
			if r := got[who]; r["arrived"] != true || r["error"] != nil {
				t.Errorf("%s's message: %v; want it delivered", who, r)
			}
		}
	}

	mark := l.Count()
	arrived(t, say(t, "15"))
	d := l.Count().Sub(mark)
	t.Logf("open link: %v", d)
	if d.AB == 0 || d.BA == 0 || d.Conns == 0 {
		t.Errorf("the link counted %v; want bytes both ways on a connection at least", d)
	}

	l.Cut()
	mark = l.Count()
	got := say(t, "5")
	for _, who := range []string{"a", "b"} {
		if r := got[who]; r["arrived"] != false || r["error"] != "remote-server-not-found" {
			t.Errorf("with the link cut %s's message: %v; want it bounced remote-server-not-found, not delivered", who, r)
		}
	}
	if d := l.Count().Sub(mark); d.AB != 0 || d.BA != 0 || d.Conns != 0 || d.Refused == 0 {
		t.Errorf("while cut the link counted %v; want refused connections and nothing forwarded", d)
	}

	l.Heal()
	mark = l.Count()
	arrived(t, say(t, "15"))
	if d := l.Count().Sub(mark); d.Conns == 0 || d.AB == 0 || d.BA == 0 {
		t.Errorf("after Heal the link counted %v; want a fresh connection and bytes both ways", d)
	}

	// The stream is up: what crosses now is the messages themselves.
	l.Throttle(2000, 100*time.Millisecond)
	mark = l.Count()
	got = say(t, "15")
	arrived(t, got)
	for _, who := range []string{"a", "b"} {
		if ms, _ := got[who]["ms"].(float64); ms < 100 {
			t.Errorf("%s's message crossed a 100 ms link in %v ms", who, got[who]["ms"])
		}
	}
	d = l.Count().Sub(mark)
	t.Logf("one message each way over 2,000 B/s and 100 ms: %v", d)
	if d.AB == 0 || d.BA == 0 {
		t.Errorf("the throttled link counted %v; want each message's bytes", d)
	}
}
