package s2s

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"annals.im/annals/adapters/stanza"
)

// Pool keeps one outbound stream per domain pair (our domain, theirs),
// opened on the first stanza and reused, so that federation costs one
// dialback per pair, not per stanza. Stanzas sent while the stream is
// being set up wait, in order, bounded in count and bytes; those that
// cannot be sent are bounced to the caller with the condition to answer
// their sender with (RFC 6120 §8.3.3: remote-server-not-found when the
// peer cannot be reached or refuses us, remote-server-timeout when it
// does not answer in time, resource-constraint when too much waits).
type Pool struct {
	cfg PoolConfig

	mu     sync.Mutex
	links  map[pair]*link
	closed bool
}

// PoolConfig is what a Pool needs.
type PoolConfig struct {
	Config
	// Resolve returns where the server of domain listens, best first
	// (Resolver.Resolve: --s2s-route, then SRV, then the domain on 5269).
	Resolve func(ctx context.Context, domain string) (addrs []string, err error)
	// Bounce takes a stanza that could not be sent, and the stanza error
	// condition its sender is to get.
	Bounce func(stanza, cond string)
	// MaxQueue and MaxQueueBytes bound what waits for one pair's stream
	// (defaults 1,000 stanzas and 4 MiB); IdleTimeout closes a stream no
	// stanza used for that long (default 5 minutes).
	MaxQueue, MaxQueueBytes int
	IdleTimeout             time.Duration
}

type pair struct{ from, to string }

// link is one pair's stream, or its setting up.
type link struct {
	out   *Outbound // nil while connecting
	queue []string
	bytes int
	last  time.Time // of the last stanza sent
}

// NewPool returns a pool; Close ends its streams.
func NewPool(cfg PoolConfig) (*Pool, error) {
	if cfg.Resolve == nil || cfg.Bounce == nil || len(cfg.Secret) < 16 || cfg.ClientTLS == nil {
		return nil, errors.New("s2s: a pool needs Resolve, Bounce, a dialback secret and ClientTLS")
	}
	cfg.defaults()
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 1000
	}
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = 4 << 20
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	return &Pool{cfg: cfg, links: make(map[pair]*link)}, nil
}

// Send sends a serialized stanza from our domain to theirs, over the
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
	switch {
	case ok && l.out != nil:
		p.mu.Unlock()
		if err := l.out.Send(stanza); err != nil {
			// The stream broke: forget it; the next stanza opens another.
			p.drop(k, l)
			p.cfg.Bounce(stanza, "remote-server-not-found")
			return
		}
		p.mu.Lock()
		l.last = time.Now()
		p.mu.Unlock()
		return
	case ok:
		defer p.mu.Unlock()
		if len(l.queue) >= p.cfg.MaxQueue || l.bytes+len(stanza) > p.cfg.MaxQueueBytes {
			p.cfg.Bounce(stanza, "resource-constraint")
			return
		}
		l.queue = append(l.queue, stanza)
		l.bytes += len(stanza)
		return
	}
	l = &link{queue: []string{stanza}, bytes: len(stanza)}
	p.links[k] = l
	p.mu.Unlock()
	go p.connect(k, l)
}

// connect opens the pair's stream, then sends what waited, in order:
// the stream is handed to Send only once the queue is empty, so no
// stanza overtakes one that waited. On failure everything that waited is
// bounced.
func (p *Pool) connect(k pair, l *link) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
	defer cancel()
	out, err := p.dial(ctx, k)
	if err != nil {
		cond := "remote-server-not-found"
		if errors.Is(err, context.DeadlineExceeded) {
			cond = "remote-server-timeout"
		}
		p.mu.Lock()
		queued := l.queue
		l.queue, l.bytes = nil, 0
		if p.links[k] == l {
			delete(p.links, k)
		}
		p.mu.Unlock()
		p.cfg.Log.Info("s2s: no stream", "from", k.from, "to", k.to, "bounced", len(queued), "err", err)
		for _, s := range queued {
			p.cfg.Bounce(s, cond)
		}
		return
	}
	for {
		p.mu.Lock()
		queued := l.queue
		l.queue, l.bytes = nil, 0
		if len(queued) == 0 {
			if p.links[k] != l { // closed or dropped meanwhile
				p.mu.Unlock()
				out.Close()
				return
			}
			l.out, l.last = out, time.Now()
			p.mu.Unlock()
			break
		}
		p.mu.Unlock()
		for i, s := range queued {
			if err := out.Send(s); err != nil {
				p.mu.Lock()
				rest := append(queued[i:], l.queue...)
				l.queue, l.bytes = nil, 0
				if p.links[k] == l {
					delete(p.links, k)
				}
				p.mu.Unlock()
				out.Close()
				for _, s := range rest {
					p.cfg.Bounce(s, "remote-server-not-found")
				}
				return
			}
		}
	}
	go p.idle(k, l)
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

// idle closes the pair's stream once no stanza used it for IdleTimeout.
func (p *Pool) idle(k pair, l *link) {
	for {
		p.mu.Lock()
		wait := time.Until(l.last.Add(p.cfg.IdleTimeout))
		current := p.links[k] == l
		p.mu.Unlock()
		if !current {
			return
		}
		if wait <= 0 {
			p.drop(k, l)
			return
		}
		time.Sleep(wait)
	}
}

// drop forgets the pair's link l and closes its stream.
func (p *Pool) drop(k pair, l *link) {
	p.mu.Lock()
	if p.links[k] == l {
		delete(p.links, k)
	}
	out := l.out
	p.mu.Unlock()
	if out != nil {
		out.Close()
	}
}

// Close ends every stream; what is sent afterwards is bounced.
func (p *Pool) Close() {
	p.mu.Lock()
	var outs []*Outbound
	for _, l := range p.links {
		if l.out != nil {
			outs = append(outs, l.out)
		}
	}
	p.links, p.closed = make(map[pair]*link), true
	p.mu.Unlock()
	for _, o := range outs {
		o.Close()
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
