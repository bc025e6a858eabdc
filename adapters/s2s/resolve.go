package s2s

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
)

// DirectTLS prefixes an address (Resolver.Resolve, --s2s-route) at which
// the peer speaks TLS from the first byte (XEP-0368): Config.Dial and
// Config.VerifyKey do the TLS handshake first, and no STARTTLS.
const DirectTLS = "tls:"

// alpnServer is the ALPN protocol of a direct TLS stream between servers
// (XEP-0368 §3 and its ALPN registration).
const alpnServer = "xmpp-server"

// Resolver finds where the server of a domain listens (RFC 6120 §3.2,
// XEP-0368 §3): a static route first (--s2s-route DOMAIN=HOST:PORT or
// DOMAIN=tls:HOST:PORT: tests, closed networks), then the domain's SRV
// records for _xmpps-server._tcp (direct TLS, returned with the DirectTLS
// prefix) and _xmpp-server._tcp (STARTTLS) taken as one set, ordered by
// priority and, within a priority, by weight; then, when the domain has
// neither, the domain itself on 5269 with STARTTLS.
type Resolver struct {
	Routes map[string]string // domain -> host:port, or tls:host:port
	// LookupSRV is net.DefaultResolver.LookupSRV unless a test sets it.
	LookupSRV func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)

	intn func(n int) int // rand.IntN unless a test sets it
}

// ParseRoute reads one --s2s-route value, DOMAIN=HOST:PORT, or
// DOMAIN=tls:HOST:PORT for a server that speaks direct TLS there.
func ParseRoute(s string) (domain, addr string, err error) {
	domain, addr, ok := strings.Cut(s, "=")
	domain = strings.ToLower(strings.TrimSpace(domain))
	if !ok || domain == "" || strings.ContainsAny(domain, "@/ ") {
		return "", "", fmt.Errorf("s2s: route %q: want DOMAIN=HOST:PORT or DOMAIN=tls:HOST:PORT", s)
	}
	addr, direct := strings.CutPrefix(strings.TrimSpace(addr), DirectTLS)
	host, port, err := net.SplitHostPort(addr)
	if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
		return "", "", fmt.Errorf("s2s: route %q: want DOMAIN=HOST:PORT or DOMAIN=tls:HOST:PORT", s)
	}
	addr = net.JoinHostPort(host, port)
	if direct {
		addr = DirectTLS + addr
	}
	return domain, addr, nil
}

// srvLookup is one service's answer.
type srvLookup struct {
	srvs []*net.SRV
	err  error
}

// Resolve returns the addresses to try for domain, best first; those
// speaking direct TLS carry the DirectTLS prefix.
func (r Resolver) Resolve(ctx context.Context, domain string) ([]string, error) {
	if a, ok := r.Routes[domain]; ok {
		return []string{a}, nil
	}
	lookup := r.LookupSRV
	if lookup == nil {
		lookup = net.DefaultResolver.LookupSRV
	}
	// Both at once: a peer's first stanza waits for the slower, not the
	// sum.
	tlsc := make(chan srvLookup, 1)
	go func() {
		_, srvs, err := lookup(ctx, "xmpps-server", "tcp", domain)
		tlsc <- srvLookup{srvs, err}
	}()
	var plain srvLookup
	_, plain.srvs, plain.err = lookup(ctx, "xmpp-server", "tcp", domain)
	direct := <-tlsc

	var recs []record
	offered := false // some record of either service, "." included
	for _, l := range []struct {
		srvLookup
		prefix string
	}{{direct, DirectTLS}, {plain, ""}} {
		for _, s := range l.srvs {
			offered = true
			// RFC 2782, RFC 6120 §3.2.1, XEP-0368 §3: a target of "."
			// says this service is decidedly not offered; the other
			// may be, and no A/AAAA fallback follows.
			if s.Target == "." || s.Target == "" {
				continue
			}
			recs = append(recs, record{addr: l.prefix + net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))),
				priority: s.Priority, weight: s.Weight})
		}
	}
	if len(recs) > 0 {
		// A service whose lookup failed outright (not "no records") is
		// left out: the other's records are enough to connect.
		intn := r.intn
		if intn == nil {
			intn = rand.IntN
		}
		return orderSRV(recs, intn), nil
	}
	for _, err := range []error{plain.err, direct.err} {
		var dnsErr *net.DNSError
		if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
			// A service DNS did not answer for may be offered: the
			// domain's A/AAAA records would be a guess.
			return nil, fmt.Errorf("s2s: resolving %s: %w", domain, err)
		}
	}
	if offered {
		return nil, fmt.Errorf("s2s: %s offers no server-to-server service", domain)
	}
	// RFC 6120 §3.2.2: no SRV records at all; the domain itself, on the
	// registered port, with STARTTLS (XEP-0368 defines no fallback for
	// direct TLS).
	return []string{net.JoinHostPort(domain, "5269")}, nil
}

// record is one SRV record of either service, its address as Resolve
// returns it.
type record struct {
	addr             string
	priority, weight uint16
}

// orderSRV orders recs as RFC 2782 says, over both services together:
// XEP-0368 §3 says xmpp- and xmpps- records SHOULD be treated as one
// record set, "all priorities and weights are mixed", so the operator
// chooses which peers try first. Lowest priority first; within a
// priority, each next record is drawn with a chance proportional to its
// weight (intn(n) draws from [0, n)), and records of weight 0 come after
// the others in the order given (as net.LookupSRV's shuffle does). recs
// are given direct TLS first: at equal priority and weights of 0, the
// direct TLS record is tried first (XEP-0368 §3 lets us prefer one kind;
// direct TLS saves a round trip).
func orderSRV(recs []record, intn func(int) int) []string {
	slices.SortStableFunc(recs, func(a, b record) int { return cmp.Compare(a.priority, b.priority) })
	for i := 0; i < len(recs); {
		j := i
		for j < len(recs) && recs[j].priority == recs[i].priority {
			j++
		}
		shuffleByWeight(recs[i:j], intn)
		i = j
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.addr
	}
	return out
}

// shuffleByWeight is RFC 2782's weighted selection over one priority.
func shuffleByWeight(recs []record, intn func(int) int) {
	sum := 0
	for _, r := range recs {
		sum += int(r.weight)
	}
	for sum > 0 && len(recs) > 1 {
		n, s := intn(sum), 0
		for i := range recs {
			if s += int(recs[i].weight); s > n {
				// Moved to the front, the others keep their order.
				picked := recs[i]
				copy(recs[1:i+1], recs[:i])
				recs[0] = picked
				break
			}
		}
		sum -= int(recs[0].weight)
		recs = recs[1:]
	}
}
