package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A constrained link between two servers, for the tests of servers that
// must live with one (mirrors, issue 13): TCP proxies on loopback that the
// test can throttle, cut and heal, counting what crosses.

// linkDir is one direction of a link: its shape (bandwidth, latency) and
// the bytes that crossed it. Every connection a proxy forwards that way
// shares it, as the connections between two servers share the one link
// between them.
type linkDir struct {
	mu      sync.Mutex
	rate    int           // bytes per second; 0: unlimited
	latency time.Duration // every byte's crossing takes this long
	freeAt  time.Time     // when the link has sent what it was given (rate > 0)
	bytes   atomic.Int64  // delivered at the far end
}

func (d *linkDir) shape(bytesPerSecond int, latency time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rate, d.latency = max(bytesPerSecond, 0), max(latency, 0)
}

// schedule books n bytes read at now onto the link: deliver is when they
// reach the far end, next when the link can take more. The reader waits
// until next before reading again, so that what is in flight stays
// about rate × latency and a sender faster than the link meets TCP's own
// back-pressure, as over a slow line.
func (d *linkDir) schedule(n int, now time.Time) (deliver, next time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rate == 0 {
		return now.Add(d.latency), now
	}
	start := d.freeAt
	if now.After(start) {
		start = now
	}
	d.freeAt = start.Add(time.Duration(n) * time.Second / time.Duration(d.rate))
	return d.freeAt.Add(d.latency), d.freeAt
}

// maxChunk is the most the proxy reads at once on an unlimited link.
const maxChunk = 32 << 10

// chunk is how much to read at once: 50 ms of the link's rate when it
// has one, so that a slow link trickles rather than bursts.
func (d *linkDir) chunk() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rate == 0 {
		return maxChunk
	}
	return min(max(d.rate/20, 16), maxChunk)
}

// linkCount is what crossed a link, or a proxy, up to some moment; the
// difference of two (Sub) is what crossed between them.
type linkCount struct {
	// AB and BA: bytes delivered each way (a link's a to b and b to a;
	// a lone proxy's client to target and target to client), counted
	// as they are written to the far end, so that what it has read is
	// counted. TCP payload only: with TLS, that is the records.
	AB, BA int64
	// Conns: connections forwarded; Refused: those reset or held while
	// cut.
	Conns, Refused int64
}

func (c linkCount) Sub(mark linkCount) linkCount {
	return linkCount{c.AB - mark.AB, c.BA - mark.BA, c.Conns - mark.Conns, c.Refused - mark.Refused}
}

func (c linkCount) String() string {
	return fmt.Sprintf("%d B a→b, %d B b→a, %d connections (%d refused)", c.AB, c.BA, c.Conns, c.Refused)
}

type cutMode int

const (
	linkOpen     cutMode = iota
	cutRefuse            // new connections are accepted and reset at once
	cutBlackHole         // new connections are accepted and held, unanswered
)

// linkProxy forwards every TCP connection it accepts at a loopback
// address to a loopback target, both ways, shaped by its two linkDirs
// (up: client to target, down: target to client).
type linkProxy struct {
	ln       net.Listener
	target   string
	up, down *linkDir
	dial     dialFunc // how to reach target

	mu        sync.Mutex
	mode      cutMode
	closed    bool
	conns     map[*proxyConn]struct{}
	held      map[net.Conn]struct{} // black-holed while cut
	acceptErr error

	accepted, refused atomic.Int64
	wg                sync.WaitGroup // every goroutine of the proxy (a pump waits for its reader)
}

// proxyConn is one forwarded connection.
type proxyConn struct {
	client, server net.Conn // server: nil while dialing; set under the proxy's mu
	ctx            context.Context
	kill           context.CancelFunc // the pumps stop waiting
	finished       chan struct{}      // its goroutines are done and both ends closed
}

// closeWait bounds how long Close waits for the proxy's goroutines.
const closeWait = 5 * time.Second

// dialFunc connects to a proxy's target.
type dialFunc func(ctx context.Context, addr string) (net.Conn, error)

func dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	return d.DialContext(ctx, "tcp", addr)
}

// newLinkProxy listens at listen (a loopback HOST:PORT; port 0 picks
// one, see Addr) and forwards to target until the test ends.
func newLinkProxy(t testing.TB, listen, target string) *linkProxy {
	t.Helper()
	return newLinkProxyOn(t, listen, target, &linkDir{}, &linkDir{})
}

// newLinkProxyOn is newLinkProxy shaped by up (client to target) and
// down (target to client), which other proxies may share.
func newLinkProxyOn(t testing.TB, listen, target string, up, down *linkDir) *linkProxy {
	t.Helper()
	checkLoopback(t, listen, target)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Skipf("link proxy: cannot listen at %s: %v", listen, err)
	}
	return serveLinkProxy(t, ln, target, up, down, dialTCP)
}

func checkLoopback(t testing.TB, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			t.Fatalf("link proxy: %q is not a loopback HOST:PORT", a)
		}
	}
}

// serveLinkProxy forwards what ln accepts to target, reached with dial,
// until the test ends (a proxy inside a network namespace: ln made
// there, dial dialing from there).
func serveLinkProxy(t testing.TB, ln net.Listener, target string, up, down *linkDir, dial dialFunc) *linkProxy {
	t.Helper()
	p := &linkProxy{ln: ln, target: target, up: up, down: down, dial: dial,
		conns: map[*proxyConn]struct{}{}, held: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// Addr is where the proxy listens.
func (p *linkProxy) Addr() string { return p.ln.Addr().String() }

// Cut resets every connection (RST both ends: a link that fails is not
// an orderly close, and what was still in flight is lost, not delivered
// late) and refuses new ones until Heal: they are accepted and reset at
// once, so a dialer's connect succeeds and its first read or write fails
// with ECONNRESET (an Annals peer bounces at once, remote-server-not-found).
// It returns once the dropped connections are closed at both ends.
func (p *linkProxy) Cut() { p.cut(cutRefuse) }

// CutBlackHole resets every connection as Cut does, but holds new ones
// until Heal instead, reading and answering nothing, as a link that
// drops every packet would (a dialer waits for its own timeout: an
// Annals peer 60 s). Heal resets the held ones.
func (p *linkProxy) CutBlackHole() { p.cut(cutBlackHole) }

func (p *linkProxy) cut(m cutMode) {
	p.mu.Lock()
	p.mode = m
	var dropped []*proxyConn
	for pc := range p.conns {
		p.killLocked(pc)
		dropped = append(dropped, pc)
	}
	p.mu.Unlock()
	for _, pc := range dropped {
		<-pc.finished
	}
}

// Heal forwards new connections again (those held by CutBlackHole are
// reset: they were lost in the cut).
func (p *linkProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = linkOpen
	for c := range p.held {
		reset(c)
		delete(p.held, c)
	}
}

// Throttle shapes each direction on its own: at most bytesPerSecond
// (0: unlimited), every byte delayed by latency. It applies to the bytes
// read from then on.
func (p *linkProxy) Throttle(bytesPerSecond int, latency time.Duration) {
	p.up.shape(bytesPerSecond, latency)
	p.down.shape(bytesPerSecond, latency)
}

// Count is what crossed so far (with shared linkDirs, over all proxies
// that share them).
func (p *linkProxy) Count() linkCount {
	return linkCount{AB: p.up.bytes.Load(), BA: p.down.bytes.Load(), Conns: p.accepted.Load(), Refused: p.refused.Load()}
}

// Close stops listening, resets every connection and waits for the
// proxy's goroutines, at most closeWait: an error says some did not end
// (or that accepting failed before).
func (p *linkProxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.ln.Close()
	for pc := range p.conns {
		p.killLocked(pc)
	}
	for c := range p.held {
		reset(c)
		delete(p.held, c)
	}
	err := p.acceptErr
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return err
	case <-time.After(closeWait):
		return fmt.Errorf("link proxy %s: goroutines still running %v after Close", p.Addr(), closeWait)
	}
}

func (p *linkProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		p.mu.Lock()
		if err != nil {
			if !p.closed {
				p.acceptErr = fmt.Errorf("link proxy %s: accept: %w", p.Addr(), err)
			}
			p.mu.Unlock()
			return
		}
		switch {
		case p.closed || p.mode == cutRefuse:
			p.refused.Add(1)
			reset(c)
		case p.mode == cutBlackHole:
			p.refused.Add(1)
			p.held[c] = struct{}{}
		default:
			p.accepted.Add(1)
			pc := &proxyConn{client: c, finished: make(chan struct{})}
			pc.ctx, pc.kill = context.WithCancel(context.Background())
			p.conns[pc] = struct{}{}
			p.wg.Add(1)
			go p.forward(pc)
		}
		p.mu.Unlock()
	}
}

// killLocked resets both ends of pc; p.mu is held.
func (p *linkProxy) killLocked(pc *proxyConn) {
	pc.kill()
	reset(pc.client)
	if pc.server != nil {
		reset(pc.server)
	}
}

func (p *linkProxy) killConn(pc *proxyConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killLocked(pc)
}

// forward dials the target for pc and pumps both ways until both ends
// closed (each FIN passed on as a FIN) or either failed (a reset passed
// on as a reset).
func (p *linkProxy) forward(pc *proxyConn) {
	defer p.wg.Done()
	defer close(pc.finished)
	defer func() {
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
		pc.kill()
	}()
	server, err := p.dial(pc.ctx, p.target)
	if err != nil { // the client sees a reset, as it would have a refusal
		p.killConn(pc)
		return
	}
	p.mu.Lock()
	if pc.ctx.Err() != nil { // cut while dialing
		p.mu.Unlock()
		reset(server)
		return
	}
	pc.server = server
	p.mu.Unlock()
	var both sync.WaitGroup
	both.Add(2)
	go func() { defer both.Done(); p.pump(pc, pc.client, server, p.up) }()
	go func() { defer both.Done(); p.pump(pc, server, pc.client, p.down) }()
	both.Wait()
	pc.client.Close()
	server.Close()
}

type segment struct {
	b  []byte
	at time.Time // when it reaches the far end
}

// pump copies src to dst through d: a reader books what it reads onto
// the link and a writer delivers each piece when it is due, so that
// latency does not slow the rate (many pieces are in flight at once).
func (p *linkProxy) pump(pc *proxyConn, src, dst net.Conn, d *linkDir) {
	segs := make(chan segment, 64)
	var readErr error // set before segs closes
	go func() {
		defer close(segs)
		buf := make([]byte, maxChunk)
		for {
			n, err := src.Read(buf[:d.chunk()])
			if n > 0 {
				at, next := d.schedule(n, time.Now())
				select {
				case segs <- segment{append([]byte(nil), buf[:n]...), at}:
				case <-pc.ctx.Done():
					readErr = pc.ctx.Err()
					return
				}
				if !sleepUntil(pc.ctx, next) {
					readErr = pc.ctx.Err()
					return
				}
			}
			if err != nil {
				readErr = err
				if errors.Is(err, io.EOF) { // the FIN crosses the link too
					if at, _ := d.schedule(0, time.Now()); !sleepUntil(pc.ctx, at) {
						readErr = pc.ctx.Err()
					}
				}
				return
			}
		}
	}()
	for s := range segs {
		if !sleepUntil(pc.ctx, s.at) {
			break
		}
		// Counted before the write, so that whatever the far end has
		// read is counted already; what fails to go is taken back.
		d.bytes.Add(int64(len(s.b)))
		if n, err := dst.Write(s.b); err != nil {
			d.bytes.Add(int64(n - len(s.b)))
			p.killConn(pc)
			break
		}
	}
	for range segs { // after a break: the reader stops once killed
	}
	switch {
	case pc.ctx.Err() != nil:
	case errors.Is(readErr, io.EOF):
		dst.(*net.TCPConn).CloseWrite()
	default:
		p.killConn(pc)
	}
}

func sleepUntil(ctx context.Context, at time.Time) bool {
	wait := time.Until(at)
	if wait <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(wait)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// reset closes c with an RST rather than a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// link joins two federated servers a and b through two proxies, one per
// direction of dialing (a server dials the other, and a dialback check
// dials back): a reaches b's s2s port through proxies[0], b reaches a's
// through proxies[1]. Both proxies share the link's two directions, so
// that Throttle bounds all of a's bytes to b together, and Count counts
// them, whichever server opened the connection that carries them.
type link struct {
	ab, ba  *linkDir
	proxies []*linkProxy
}

// Cut, CutBlackHole, Heal and Throttle do to both proxies what
// linkProxy's do.
func (l *link) Cut() {
	for _, p := range l.proxies {
		p.Cut()
	}
}

func (l *link) CutBlackHole() {
	for _, p := range l.proxies {
		p.CutBlackHole()
	}
}

func (l *link) Heal() {
	for _, p := range l.proxies {
		p.Heal()
	}
}

func (l *link) Throttle(bytesPerSecond int, latency time.Duration) {
	l.ab.shape(bytesPerSecond, latency)
	l.ba.shape(bytesPerSecond, latency)
}

// Count: AB is what a sent b, BA what b sent a, over both proxies.
func (l *link) Count() linkCount {
	c := linkCount{AB: l.ab.bytes.Load(), BA: l.ba.bytes.Load()}
	for _, p := range l.proxies {
		c.Conns += p.accepted.Load()
		c.Refused += p.refused.Load()
	}
	return c
}

// startLinked is startFederated over a link: capulet.test (a, 127.0.0.1)
// and montague.test (b, 127.0.0.2) reach each other only through two
// proxies at 127.0.0.3.
func startLinked(t *testing.T, extra func(self, peer *fedServer) []string, users ...string) (a, b *fedServer, l *link) {
	t.Helper()
	l = &link{ab: &linkDir{}, ba: &linkDir{}}
	a, b = startFederatedVia(t, extra, func(self, peer *fedServer) string {
		up, down := l.ab, l.ba // self is a: what it sends goes a to b
		if len(l.proxies) == 1 {
			up, down = l.ba, l.ab
		}
		p := newLinkProxyOn(t, "127.0.0.3:0", peer.s2s(), up, down)
		l.proxies = append(l.proxies, p)
		return p.Addr()
	}, users...)
	return a, b, l
}
