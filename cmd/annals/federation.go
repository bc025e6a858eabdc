package main

// Federation: the s2s listener and the outbound pool, wired to the client
// server (issue 12; docs/s2s.md).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/adapters/keys"
	"annals.im/annals/adapters/s2s"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/account"
)

type s2sFlags struct {
	addr     string // "" federation off
	routes   stringList
	ca       string
	insecure stringList
	// Bounds on what other servers make this one hold (s2s.Config and
	// s2s.PoolConfig; docs/security.md).
	maxStanza               int
	stanzaRate              float64
	stanzaBurst             int
	maxConns, maxConnsPerIP int
	maxPeers                int
	queueBytes, queuedBytes int
	idle                    time.Duration
	inbound, inboundBytes   int // stanzas from peers waiting to be handled
}

func (f *s2sFlags) flags(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "s2s", envOr("ANNALS_S2S", ":5269"), "server-to-server listen address: federation with other XMPP servers (\"\": off; $ANNALS_S2S)")
	fs.Var(&f.routes, "s2s-route", "DOMAIN=HOST:PORT, or DOMAIN=tls:HOST:PORT for direct TLS: reach DOMAIN's server there instead of by DNS (repeatable; tests and closed networks)")
	fs.StringVar(&f.ca, "s2s-ca", envOr("ANNALS_S2S_CA", ""), "PEM file of the certificate authorities other servers' certificates are checked against (default: the system's)")
	fs.Var(&f.insecure, "s2s-insecure-domain", "accept any certificate from this domain's server, which then proves its name by dialback (repeatable; labs and tests only, logged on every stream)")
	fs.IntVar(&f.maxStanza, "s2s-max-stanza", 512<<10, "largest stanza another server may send, in bytes; a larger one ends its stream with policy-violation")
	fs.Float64Var(&f.stanzaRate, "s2s-max-stanza-rate", s2s.DefaultMaxStanzaRate, "stanzas per second one stream of another server may send, sustained; past it and the burst its stream ends with policy-violation")
	fs.IntVar(&f.stanzaBurst, "s2s-stanza-burst", s2s.DefaultStanzaBurst, "stanzas one stream of another server may send at once above --s2s-max-stanza-rate")
	fs.IntVar(&f.maxConns, "s2s-max-connections", 256, "streams other servers may have open to this one at once")
	fs.IntVar(&f.maxConnsPerIP, "s2s-max-connections-per-ip", 8, "streams other servers may have open at once from one IPv4 address or IPv6 /64 (one per domain pair, plus dialback checks)")
	fs.IntVar(&f.maxPeers, "s2s-max-peers", s2s.DefaultMaxPeers, "domain pairs this server keeps an outbound stream or queue for at once; stanzas to more are bounced resource-constraint")
	fs.IntVar(&f.queueBytes, "s2s-queue-bytes", s2s.DefaultMaxQueueBytes, "bytes waiting for one other server's stream; past it stanzas are bounced resource-constraint")
	fs.IntVar(&f.queuedBytes, "s2s-queued-bytes", s2s.DefaultMaxQueuedBytes, "bytes waiting for all other servers' streams together")
	fs.IntVar(&f.inbound, "s2s-inbound-queue", inboundWorkers*64, "stanzas from other servers waiting to be handled, in all; past it their streams wait")
	fs.IntVar(&f.inboundBytes, "s2s-inbound-queue-bytes", 32<<20, "bytes of stanzas from other servers waiting to be handled, in all")
	fs.DurationVar(&f.idle, "s2s-idle-timeout", 10*time.Minute, "a stream to or from another server that carried no stanza for this long is closed (the next stanza opens another)")
}

func (f s2sFlags) validate() error {
	for _, r := range f.routes {
		if _, _, err := s2s.ParseRoute(r); err != nil {
			return fmt.Errorf("%w: --s2s-route: %v", errUsage, err)
		}
	}
	for _, d := range f.insecure {
		if _, err := account.ParseJID("a@" + d); err != nil {
			return fmt.Errorf("%w: --s2s-insecure-domain %q is not a domain", errUsage, d)
		}
	}
	switch {
	case f.maxStanza < 4096 || f.maxStanza > 64<<20:
		return fmt.Errorf("%w: --s2s-max-stanza %d: give bytes between 4096 and 67108864", errUsage, f.maxStanza)
	case f.stanzaRate <= 0 || f.stanzaBurst < 1:
		return fmt.Errorf("%w: --s2s-max-stanza-rate and --s2s-stanza-burst must be more than 0", errUsage)
	case f.maxConns < 1 || f.maxConnsPerIP < 1 || f.maxPeers < 1:
		return fmt.Errorf("%w: --s2s-max-connections, --s2s-max-connections-per-ip and --s2s-max-peers must be 1 or more", errUsage)
	case f.queueBytes < f.maxStanza || f.queuedBytes < f.queueBytes:
		return fmt.Errorf("%w: --s2s-queue-bytes must hold a stanza of --s2s-max-stanza, and --s2s-queued-bytes one queue", errUsage)
	case f.idle <= 0:
		return fmt.Errorf("%w: --s2s-idle-timeout must be more than 0", errUsage)
	case f.inbound < inboundWorkers || f.inboundBytes < f.maxStanza:
		return fmt.Errorf("%w: --s2s-inbound-queue must be at least %d (one per worker), --s2s-inbound-queue-bytes hold a stanza of --s2s-max-stanza", errUsage, inboundWorkers)
	}
	if f.addr != "" {
		if _, _, err := net.SplitHostPort(f.addr); err != nil {
			return fmt.Errorf("%w: --s2s %q: %v", errUsage, f.addr, err)
		}
	}
	return nil
}

// inboundWorkers handle other servers' stanzas side by side (a sender's
// in order): enough to fill the store's group commits. What waits for
// them is bounded by --s2s-inbound-queue and --s2s-inbound-queue-bytes.
const inboundWorkers = 32

// federation is the route to other servers (c2s.Remote) and the listener
// they reach us on.
type federation struct {
	pool   *s2s.Pool
	server *s2s.Server
	ln     net.Listener
	log    *slog.Logger
}

// Send implements c2s.Remote.
func (f *federation) Send(from, to jid.JID, wire string) {
	f.pool.Send(from.Domainpart(), to.Domainpart(), wire)
}

// newFederation opens the s2s listener and makes the pool. Stanzas from
// other servers go to the client server's FromRemote, bounces to its
// Bounce; that server is made after the pool (the pool is its Remote), so
// they are called through *srv, set before any stanza flows.
func (f s2sFlags) newFederation(ctx context.Context, domains []string, cert tls.Certificate, secret []byte, srv **c2s.Server, log *slog.Logger) (*federation, error) {
	dbSecret, err := keys.Derive(secret, keys.Dialback)
	if err != nil {
		return nil, err
	}
	roots, err := f.roots()
	if err != nil {
		return nil, err
	}
	routes := map[string]string{}
	for _, r := range f.routes {
		d, a, _ := s2s.ParseRoute(r)
		routes[d] = a
	}
	resolver := s2s.Resolver{Routes: routes}
	insecure := f.insecure
	cfg := s2s.Config{
		Domains: domains,
		Secret:  dbSecret,
		TLS:     c2s.ServerTLS(cert),
		Roots:   roots,
		// Said in the log on every stream to such a domain.
		Insecure: func(domain string) bool { return slices.Contains(insecure, domain) },
		// Senders side by side, each in order (s2s.Ordered).
		Deliver: s2s.Ordered(ctx, inboundWorkers, f.inbound/inboundWorkers, f.inboundBytes, func(from, to jid.JID, e *stanza.Element) { (*srv).FromRemote(ctx, from, to, e) }),
		Log:     log,

		MaxStanza:           f.maxStanza,
		MaxStanzaRate:       f.stanzaRate,
		StanzaBurst:         f.stanzaBurst,
		MaxConnections:      f.maxConns,
		MaxConnectionsPerIP: f.maxConnsPerIP,
		IdleTimeout:         f.idle,
	}
	pool, err := s2s.NewPool(s2s.PoolConfig{Config: cfg, Resolve: resolver.Resolve,
		Bounce:        func(wire, cond string) { (*srv).Bounce(wire, cond) },
		MaxQueueBytes: f.queueBytes, MaxQueuedBytes: f.queuedBytes, MaxPeers: f.maxPeers, IdleTimeout: f.idle})
	if err != nil {
		return nil, err
	}
	cfg.Verify = pool.Verify
	// A peer that offers bidi (XEP-0288) gets one connection per pair
	// both ways: what it opened to us carries our stanzas back too.
	cfg.Bidi = func(o *s2s.Outbound) { pool.Adopt(o) }
	server, err := s2s.NewServer(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("s2s: %w", err)
	}
	return &federation{pool: pool, server: server, ln: ln, log: log}, nil
}

// roots are the authorities other servers' certificates are checked
// against: --s2s-ca's, or the system's (nil).
func (f s2sFlags) roots() (*x509.CertPool, error) {
	if f.ca == "" {
		return nil, nil
	}
	b, err := os.ReadFile(f.ca)
	if err != nil {
		return nil, fmt.Errorf("--s2s-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--s2s-ca %s: no PEM certificate in it", f.ca)
	}
	return pool, nil
}
