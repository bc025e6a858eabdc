package s2s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Resolver finds where the server of a domain listens (RFC 6120 §3.2.2):
// a static route first (--s2s-route DOMAIN=HOST:PORT: tests, closed
// networks), then the domain's SRV records for _xmpp-server._tcp in the
// order of their priority and weight, then the domain itself on 5269.
// Direct TLS (_xmpps-server, XEP-0368) is not used yet: the streams here
// begin in the clear and require STARTTLS.
type Resolver struct {
	Routes map[string]string // domain -> host:port
	// LookupSRV is net.DefaultResolver.LookupSRV unless a test sets it.
	LookupSRV func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// ParseRoute reads one --s2s-route value, DOMAIN=HOST:PORT.
func ParseRoute(s string) (domain, addr string, err error) {
	domain, addr, ok := strings.Cut(s, "=")
	domain = strings.ToLower(strings.TrimSpace(domain))
	if !ok || domain == "" || strings.ContainsAny(domain, "@/ ") {
		return "", "", fmt.Errorf("s2s: route %q: want DOMAIN=HOST:PORT", s)
	}
	host, port, err := net.SplitHostPort(strings.TrimSpace(addr))
	if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
		return "", "", fmt.Errorf("s2s: route %q: want DOMAIN=HOST:PORT", s)
	}
	return domain, net.JoinHostPort(host, port), nil
}

// Resolve returns the addresses to try for domain, best first.
func (r Resolver) Resolve(ctx context.Context, domain string) ([]string, error) {
	if a, ok := r.Routes[domain]; ok {
		return []string{a}, nil
	}
	lookup := r.LookupSRV
	if lookup == nil {
		lookup = net.DefaultResolver.LookupSRV
	}
	_, srvs, err := lookup(ctx, "xmpp-server", "tcp", domain)
	var dnsErr *net.DNSError
	switch {
	case err == nil && len(srvs) == 1 && srvs[0].Target == ".":
		// RFC 2782 / RFC 6120 §3.2.1: the service is decidedly not
		// available at this domain.
		return nil, fmt.Errorf("s2s: %s offers no server-to-server service", domain)
	case err == nil && len(srvs) > 0:
		out := make([]string, 0, len(srvs))
		for _, s := range srvs { // net sorts them by priority and weight
			out = append(out, net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))))
		}
		return out, nil
	case err == nil, errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return []string{net.JoinHostPort(domain, "5269")}, nil
	}
	return nil, fmt.Errorf("s2s: resolving %s: %w", domain, err)
}
