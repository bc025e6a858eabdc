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
}

func (f *s2sFlags) flags(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "s2s", envOr("ANNALS_S2S", ":5269"), "server-to-server listen address: federation with other XMPP servers (\"\": off; $ANNALS_S2S)")
	fs.Var(&f.routes, "s2s-route", "DOMAIN=HOST:PORT: reach DOMAIN's server there instead of by DNS (repeatable; tests and closed networks)")
	fs.StringVar(&f.ca, "s2s-ca", envOr("ANNALS_S2S_CA", ""), "PEM file of the certificate authorities other servers' certificates are checked against (default: the system's)")
	fs.Var(&f.insecure, "s2s-insecure-domain", "accept any certificate from this domain's server, which then proves its name by dialback (repeatable; labs and tests only, logged on every stream)")
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
	if f.addr != "" {
		if _, _, err := net.SplitHostPort(f.addr); err != nil {
			return fmt.Errorf("%w: --s2s %q: %v", errUsage, f.addr, err)
		}
	}
	return nil
}

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
		ClientTLS: func(domain string) *tls.Config {
			if slices.Contains(insecure, domain) {
				log.Warn("s2s: the certificate of this domain's server is not checked (--s2s-insecure-domain)", "domain", domain)
				return &tls.Config{ServerName: domain, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
			}
			return &tls.Config{ServerName: domain, RootCAs: roots, MinVersion: tls.VersionTLS12}
		},
		Deliver: func(from, to jid.JID, e *stanza.Element) { (*srv).FromRemote(ctx, from, to, e) },
		Log:     log,
	}
	pool, err := s2s.NewPool(s2s.PoolConfig{Config: cfg, Resolve: resolver.Resolve,
		Bounce: func(wire, cond string) { (*srv).Bounce(wire, cond) }})
	if err != nil {
		return nil, err
	}
	cfg.Verify = pool.Verify
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

// serve accepts other servers' streams until ctx ends, then closes the
// outbound ones.
func (f *federation) serve(ctx context.Context) error {
	defer f.pool.Close()
	return f.server.Serve(ctx, f.ln)
}
