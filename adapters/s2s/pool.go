package s2s

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"annals.im/annals/adapters/stanza"
)

// Pool keeps one outbound stream per domain pair (our domain, theirs),
// opened on the first stanza and reused, so that federation costs one
// authentication per pair, not per stanza. Each pair's stream has a
// writer of its own: Send only queues, so that a peer that reads slowly
// (or not at all) holds up nobody but its own queue, never a client's
// session or a room sending under its locks; and what waits is written
// in one flush. The queues are bounded, per pair and in all, in count and
// bytes; what cannot be sent is bounced to the caller with the condition
// to answer its sender with (RFC 6120 §8.3.3: remote-server-not-found
// when the peer cannot be reached or refuses us, remote-server-timeout
// when it does not answer in time, resource-constraint when too much
// waits).
type Pool struct {
	cfg PoolConfig

	mu      sync.Mutex
	links   map[pair]*link
	queued  int // bytes waiting in every link's queue
	closed  bool
	writers sync.WaitGroup
}

// PoolConfig is what a Pool needs.
type PoolConfig struct {
	Config
	// Resolve returns where the server of domain listens, best first
	// (Resolver.Resolve: --s2s-route, then SRV, then the domain on 5269);
	// an address with the DirectTLS prefix speaks direct TLS.
	Resolve func(ctx context.Context, domain string) (addrs []string, err error)
	// Bounce takes a stanza that could not be sent, and the stanza error
	// condition its sender is to get. It may be called from inside Send.
	Bounce func(stanza, cond string)
	// MaxQueue and MaxQueueBytes bound what waits for one pair's stream
	// (defaults 1,000 stanzas and 4 MiB), MaxQueuedBytes what waits for
	// all (64 MiB), MaxPeers the pairs with a stream or a queue (1,024);
	// IdleTimeout closes a stream no stanza used for that long (default 5
	// minutes).
	MaxQueue, MaxQueueBytes int
	MaxQueuedBytes          int
	MaxPeers                int
	IdleTimeout             time.Duration
}

// Defaults of PoolConfig's bounds.
const (
	DefaultMaxQueue       = 1000
	DefaultMaxQueueBytes  = 4 << 20
	DefaultMaxQueuedBytes = 64 << 20
	DefaultMaxPeers       = 1024
)

type pair struct{ from, to string }

// link is one pair's stream, or its setting up, and what waits for it.
type link struct {
	out   *Outbound // nil while connecting; set once, before the writer reads it
	queue []string
	bytes int
	wake  chan struct{} // stanzas were queued: the writer looks
}

// NewPool returns a pool; Close ends its streams.
func NewPool(cfg PoolConfig) (*Pool, error) {
	if cfg.Resolve == nil || cfg.Bounce == nil || len(cfg.Secret) < 16 {
		return nil, errors.New("s2s: a pool needs Resolve, Bounce and a dialback secret")
	}
	cfg.defaults()
	cfg.MaxQueue = cmp.Or(max(cfg.MaxQueue, 0), DefaultMaxQueue)
	cfg.MaxQueueBytes = cmp.Or(max(cfg.MaxQueueBytes, 0), DefaultMaxQueueBytes)
	cfg.MaxQueuedBytes = cmp.Or(max(cfg.MaxQueuedBytes, 0), DefaultMaxQueuedBytes)
	cfg.MaxPeers = cmp.Or(max(cfg.MaxPeers, 0), DefaultMaxPeers)
	cfg.IdleTimeout = cmp.Or(max(cfg.IdleTimeout, 0), 5*time.Minute)
	return &Pool{cfg: cfg, links: make(map[pair]*link)}, nil
}

// Send queues a serialized stanza from our domain to theirs for the
// pair's stream, opening it if there is none. The stanza may be written
// as for a client (xmlns='jabber:client'): it goes out in the server
// namespace (RFC 6120 §4.8.3).
func (p *Pool) Send(from, to, stanza string) {
	stanza = ServerNamespace(stanza)
	k := pair{from, to}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.cfg.Bounce(stanza, "remote-server-not-found")
		return
	}
	l, ok := p.links[k]
	if !ok && len(p.links) >= p.cfg.MaxPeers {
		p.mu.Unlock()
		p.cfg.Log.Warn("s2s: too many peers at once; stanza bounced", "from", from, "to", to, "max_peers", p.cfg.MaxPeers)
		p.cfg.Bounce(stanza, "resource-constraint")
		return
	}
	if ok && (len(l.queue) >= p.cfg.MaxQueue || l.bytes+len(stanza) > p.cfg.MaxQueueBytes) || p.queued+len(stanza) > p.cfg.MaxQueuedBytes {
		p.mu.Unlock()
		p.cfg.Bounce(stanza, "resource-constraint")
		return
	}
	if !ok {
		l = &link{wake: make(chan struct{}, 1)}
		p.links[k] = l
		p.writers.Add(1)
		go p.run(k, l)
	}
	l.queue = append(l.queue, stanza)
	l.bytes += len(stanza)
	p.queued += len(stanza)
	p.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default: // the writer has been told already
	}
}

// run is a pair's writer: it opens the stream (unless one was adopted),
// then writes what is queued, in order, until the stream breaks, idles
// for IdleTimeout, or the pool closes.
func (p *Pool) run(k pair, l *link) {
	defer p.writers.Done()
	if l.out == nil {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
		out, err := p.dial(ctx, k)
		cancel()
		if err != nil {
			// A peer that does not answer in time, whether the connect or
			// the stream's negotiation timed out, is remote-server-timeout
			// (RFC 6120 §8.3.3.16); anything else, not found.
			cond := "remote-server-not-found"
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
				cond = "remote-server-timeout"
			}
			p.end(k, l, cond, err, nil)
			return
		}
		p.mu.Lock()
		l.out = out
		p.mu.Unlock()
	}
	idle := time.NewTimer(p.cfg.IdleTimeout)
	defer idle.Stop()
	for {
		p.mu.Lock()
		batch := l.queue
		p.queued -= l.bytes
		l.queue, l.bytes = nil, 0
		closing := p.closed
		p.mu.Unlock()
		if closing && len(batch) == 0 { // what waited is out: the stream ends
			p.end(k, l, "remote-server-not-found", nil, nil)
			return
		}
		if len(batch) > 0 {
			if err := l.out.SendAll(batch); err != nil {
				// Some may have gone out before the error: those are
				// bounced too, which tells their senders less than the
				// truth rather than nothing.
				p.end(k, l, "remote-server-not-found", err, batch)
				return
			}
			idle.Reset(p.cfg.IdleTimeout)
			continue
		}
		select {
		case <-l.wake:
		case <-l.out.Done():
			p.end(k, l, "remote-server-not-found", errors.New("s2s: the stream ended"), nil)
			return
		case <-idle.C:
			p.mu.Lock()
			quiet := len(l.queue) == 0
			if quiet && p.links[k] == l {
				delete(p.links, k)
			}
			p.mu.Unlock()
			if quiet {
				l.out.Close()
				return
			}
		}
	}
}

// end forgets the pair's link l, closes its stream, and bounces batch
// and whatever still waits with cond.
func (p *Pool) end(k pair, l *link, cond string, err error, batch []string) {
	p.mu.Lock()
	if p.links[k] == l {
		delete(p.links, k)
	}
	rest := append(batch, l.queue...)
	p.queued -= l.bytes
	l.queue, l.bytes = nil, 0
	out := l.out
	p.mu.Unlock()
	if out != nil {
		out.Close()
	}
	if len(rest) > 0 {
		p.cfg.Log.Info("s2s: stream gone", "from", k.from, "to", k.to, "bounced", len(rest), "err", err)
	}
	for _, s := range rest {
		p.cfg.Bounce(s, cond)
	}
}

// dial tries the peer's addresses in order until one gives a stream.
func (p *Pool) dial(ctx context.Context, k pair) (*Outbound, error) {
	addrs, err := p.cfg.Resolve(ctx, k.to)
	if err != nil {
		return nil, err
	}
	err = fmt.Errorf("s2s: no address for %s", k.to)
	for _, a := range addrs {
		var out *Outbound
		if out, err = p.cfg.Dial(ctx, a, k.from, k.to); err == nil {
			return out, nil
		}
	}
	return nil, err
}

// Adopt makes o, a stream a peer opened to us with bidi (Config.Bidi),
// the stream of its pair, unless the pair has one or is opening one:
// stanzas from o.From to o.To then go over it, on no connection of our
// own. It reports whether o was taken.
func (p *Pool) Adopt(o *Outbound) bool {
	k := pair{o.From, o.To}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.links[k]; ok || p.closed || len(p.links) >= p.cfg.MaxPeers {
		return false
	}
	l := &link{out: o, wake: make(chan struct{}, 1)}
	p.links[k] = l
	p.writers.Add(1)
	go p.run(k, l)
	return true
}

// drainTimeout bounds how long Close waits for what was queued to go
// out: a server that stops does not wait for peers that do not read.
const drainTimeout = 5 * time.Second

// Close ends every stream once what waits for it is written (the
// unavailable presences of the clients a stopping server ends, say), for
// at most drainTimeout; what is sent afterwards is bounced.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	links := make([]*link, 0, len(p.links))
	for _, l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		select {
		case l.wake <- struct{}{}: // its writer finds the pool closing
		default:
		}
	}
	done := make(chan struct{})
	go func() { p.writers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		p.mu.Lock()
		for _, l := range links {
			if l.out != nil {
				l.out.Abort() // its writer's write fails and it bounces the rest
			}
		}
		p.mu.Unlock()
	}
}

// Verify asks the authoritative server of originating whether key is one
// it made for its stream to receiving with id streamID (XEP-0220 §2.1.2):
// Config.Verify for a Server beside this pool, trying the addresses the
// pool's resolver gives in order.
func (p *Pool) Verify(ctx context.Context, receiving, originating, streamID, key string) (bool, error) {
	addrs, err := p.cfg.Resolve(ctx, originating)
	if err != nil {
		return false, err
	}
	err = fmt.Errorf("s2s: no address for %s", originating)
	for _, a := range addrs {
		var ok bool
		if ok, err = p.cfg.VerifyKey(ctx, a, receiving, originating, streamID, key); err == nil {
			return ok, nil
		}
	}
	return false, err
}

// ServerNamespace rewrites a stanza serialized for a client, whose start
// tag declares xmlns='jabber:client', into the server namespace. Its
// children declare their own namespaces where they differ from the
// stanza's (stanza.Restamp), so they follow it. A stanza without the
// declaration is already in the stream's default namespace.
func ServerNamespace(s string) string {
	end := strings.IndexByte(s, '>') // '>' is escaped in attribute values
	if end < 0 {
		return s
	}
	const client, server = " xmlns='" + stanza.NSClient + "'", " xmlns='" + nsServer + "'"
	if i := strings.Index(s[:end], client); i >= 0 {
		return s[:i] + server + s[i+len(client):]
	}
	return s
}
