package c2s

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"annals.im/annals/adapters/connlimit"
	"annals.im/annals/adapters/stanza"
)

// Defaults of the connection limits (Config.MaxConnections,
// MaxConnectionsPerIP, LoginTimeout). cmd/annals lowers the global cap to
// what the process's file descriptor limit allows.
const (
	DefaultMaxConnections      = 1000
	DefaultMaxConnectionsPerIP = 256
	DefaultLoginTimeout        = time.Minute
)

// connDefaults fills in the connection limits cfg leaves at zero.
func (cfg *Config) connDefaults() {
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MaxConnectionsPerIP <= 0 {
		cfg.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = DefaultLoginTimeout
	}
}

// countedConn gives its slot back when it is closed, by whoever closes it:
// a connection outlives the goroutine that accepted it when it resumes a
// session (XEP-0198), so the count follows the descriptor, not the
// goroutine.
type countedConn struct {
	net.Conn
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// admit counts nc against the limits, or refuses it: a stream error is
// written and the connection closed at once.
//
// NOTSPEC(RFC 6120 §4.9.1.2): the stream header and error go out before
// the client's stream header is read. Waiting for it would hold the
// descriptor, and a goroutine, for as long as the client likes to take,
// which is exactly what the cap is there to prevent; a client reading the
// stream sees a well-formed stream with the reason in it.
func (s *Server) admit(nc net.Conn) (net.Conn, bool) {
	key := connlimit.Key(nc.RemoteAddr())
	release, cond, text := s.limits.Admit(key)
	if release != nil {
		return &countedConn{Conn: nc, release: release}, true
	}
	refusal := &streamError{cond: cond, text: text}
	s.refused.Add(1)
	// A fresh socket's send buffer is empty: this write does not wait.
	nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	io.WriteString(nc, fmt.Sprintf(`<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' id='%s' from='%s' version='1.0'>`,
		nsClient, nsStream, stanza.NewID(), stanza.Escape(s.cfg.Domains[0]))+refusal.xml()+"</stream:stream>")
	nc.Close()
	return nil, false
}

// reportRefused logs how many connections the caps refused, at most once a
// second, so that a flood does not become a flood of log lines.
func (s *Server) reportRefused(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n := s.refused.Swap(0); n > 0 {
				total, _ := s.limits.Open("")
				s.cfg.Log.Warn("connections refused: over the connection caps", "refused", n, "open", total,
					"max", s.cfg.MaxConnections, "max_per_ip", s.cfg.MaxConnectionsPerIP)
			}
		}
	}
}

// acceptBackoff is how long Serve waits after the n-th consecutive failed
// Accept: 5 ms doubling up to 1 s, as net/http does. Accept fails when the
// process is out of descriptors (EMFILE) or the kernel out of memory
// (ENOBUFS); retrying at once would spin on the same error, and giving up
// would end the server over a passing shortage.
func acceptBackoff(n int) time.Duration {
	d := 5 * time.Millisecond
	for i := 1; i < n && d < time.Second; i++ {
		d *= 2
	}
	return min(d, time.Second)
}

// accept returns the next connection. It retries failures with backoff
// and returns an error only when ctx is done or ln is closed.
func (s *Server) accept(ctx context.Context, ln net.Listener) (net.Conn, error) {
	for n := 1; ; n++ {
		nc, err := ln.Accept()
		if err == nil {
			return nc, nil
		}
		if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		d := acceptBackoff(n)
		s.cfg.Log.Warn("accept failed; retrying", "err", err, "retry_in", d)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// errLoginTimeout: the connection did not log in (bind a resource or
// resume a session) within Config.LoginTimeout.
var errLoginTimeout = errors.New("c2s: not logged in in time")

// loginClock holds when a connection must be logged in by, in Unix
// nanoseconds; 0 once it is. The deadline is fixed at accept and bytes
// trickling in do not move it, unlike the idle timeout: a client sending a
// byte a minute would otherwise hold its descriptor forever without ever
// showing who it is. It is atomic because a resumed session's goroutine
// reads through the transport of the connection that resumed it.
type loginClock struct{ by atomic.Int64 }

func (l *loginClock) start(d time.Duration) { l.by.Store(time.Now().Add(d).UnixNano()) }
func (l *loginClock) done()                 { l.by.Store(0) }

// deadline returns the read deadline: idle from now, or the login
// deadline if that comes first, which login then reports.
func (l *loginClock) deadline(idle time.Duration) (d time.Time, login bool) {
	d = time.Now().Add(idle)
	if by := l.by.Load(); by != 0 && by < d.UnixNano() {
		return time.Unix(0, by), true
	}
	return d, false
}
