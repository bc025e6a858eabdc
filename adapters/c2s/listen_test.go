package c2s

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"annals.im/annals/adapters/credentials"
)

func TestAcceptBackoff(t *testing.T) {
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000}
	for i, w := range want {
		if got := acceptBackoff(i + 1); got != w*time.Millisecond {
			t.Errorf("acceptBackoff(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
}

// failingListener fails Accept with its errors, one per call, then hands
// out real connections from inner.
type failingListener struct {
	net.Listener
	mu    sync.Mutex
	errs  []error
	calls []time.Time
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls = append(l.calls, time.Now())
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// Accept errors that are not the listener closing (out of descriptors, of
// buffers) are retried with growing pauses and do not end Serve; a client
// connecting after them is served.
func TestServeRetriesAcceptErrors(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: &osSyscallError{syscall.EMFILE}}
	ln := &failingListener{Listener: inner, errs: []error{emfile, emfile, emfile, emfile, errors.New("accept: something odd")}}
	creds, err := credentials.Derive("balcony")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{Domains: []string{"localhost"}, Plaintext: true, Secret: []byte("0123456789abcdef"),
		Credentials: func(context.Context, string) (credentials.Credentials, error) { return creds, nil },
		Log:         slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	c := dial(t, inner.Addr().String())
	c.login("after-errors")
	c.send(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`)
	c.until("id='p'")
	ln.mu.Lock()
	calls := append([]time.Time(nil), ln.calls...)
	ln.mu.Unlock()
	if len(calls) < 6 {
		t.Fatalf("%d Accept calls, want 5 failures and a success", len(calls))
	}
	// Pauses of 5, 10, 20, 40 and 80 ms between the six calls: 155 ms.
	if took := calls[5].Sub(calls[0]); took < 150*time.Millisecond {
		t.Errorf("five failures retried within %v: no backoff", took)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v after Accept errors", err)
	default:
	}
	// Closing the listener with ctx done ends Serve cleanly.
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve returned %v after ctx ended", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
}

// osSyscallError stands in for *os.SyscallError around an errno, as the
// net package reports a failed accept4.
type osSyscallError struct{ errno syscall.Errno }

func (e *osSyscallError) Error() string { return "accept4: " + e.errno.Error() }
func (e *osSyscallError) Unwrap() error { return e.errno }

// Connections over the caps get a stream error and are closed at once;
// a closed connection frees its slot; other addresses are still served.
func TestConnectionCaps(t *testing.T) {
	addr := serverWith(t, func(cfg *Config) { cfg.MaxConnections = 3; cfg.MaxConnectionsPerIP = 2 })
	dialFrom := func(src string) *rawClient {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		return &rawClient{t: t, nc: nc, r: bufio.NewReader(nc)}
	}
	a1 := dialFrom("127.0.0.1")
	a1.login("a1")
	a2 := dialFrom("127.0.0.1")
	a2.send(header)
	a2.until("</stream:features>")
	over := dialFrom("127.0.0.1")
	if got := over.untilEOF(); !strings.Contains(got, "<policy-violation") {
		t.Fatalf("third connection from one address got %q, want policy-violation and the end", got)
	}
	b := dialFrom("127.0.0.2")
	b.login("b")
	full := dialFrom("127.0.0.3")
	if got := full.untilEOF(); !strings.Contains(got, "<resource-constraint") {
		t.Fatalf("connection over the global cap got %q, want resource-constraint and the end", got)
	}
	// a2 leaves: its slot is free for a new connection from any address.
	a2.nc.Close()
	var c *rawClient
	for deadline := time.Now().Add(5 * time.Second); ; {
		c = dialFrom("127.0.0.3")
		c.send(header)
		got := c.until("</stream:")
		if !strings.Contains(got, "stream:error") {
			if !strings.Contains(got, "</stream:features>") {
				c.until("</stream:features>")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot of a closed connection was not freed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABiYWxjb255</auth>`)
	c.until("<success")
	// The logged-in sessions are still served.
	for _, s := range []*rawClient{a1, b} {
		s.send(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`)
		s.until("id='p'")
	}
}

// A connection that does not log in within LoginTimeout is closed with
// connection-timeout, however many bytes it trickles in; a bound session
// is not subject to it.
func TestLoginTimeout(t *testing.T) {
	addr := serverWith(t, func(cfg *Config) { cfg.LoginTimeout = 600 * time.Millisecond })
	bound := dial(t, addr)
	bound.login("bound")
	slow := dial(t, addr)
	slow.send(header)
	slow.until("</stream:features>")
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a keepalive every 100 ms: never idle
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				io.WriteString(slow.nc, " ")
			}
		}
	}()
	got := slow.untilEOF()
	if !strings.Contains(got, "<connection-timeout") || !strings.Contains(got, "not logged in within") {
		t.Fatalf("a trickling, unauthenticated connection got %q", got)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("closed after %v, want about 600 ms", took)
	}
	time.Sleep(700 * time.Millisecond) // past the bound session's login deadline
	bound.send(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`)
	bound.until("id='p'")
}

// untilEOF reads until the server closes the connection and returns it all.
func (c *rawClient) untilEOF() string {
	c.t.Helper()
	b, err := io.ReadAll(c.r)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		c.t.Fatalf("reading to the end: %v; got %q", err, b)
	}
	return string(b)
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
