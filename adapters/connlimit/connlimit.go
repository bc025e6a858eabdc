// Package connlimit caps the connections a listener keeps open, in all and
// per address (an IPv4 address, or an IPv6 /64). Every accepted connection
// is one file descriptor until it is closed: counting them is what keeps a
// flood of idle connections from taking the descriptors the store needs.
// The client listener (adapters/c2s) and the server-to-server one
// (adapters/s2s) each keep their own Limits.
package connlimit

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// Limits counts the open connections, in all and per address.
// Every accepted connection is one file descriptor until it is closed:
// counting them is what keeps a flood of idle connections from taking the
// descriptors the store needs to open its files.
type Limits struct {
	max, perAddr int

	mu     sync.Mutex
	total  int
	byAddr map[string]int // addrKey -> open connections; no zero entries
}

// New returns limits of max connections in all and perAddr from one
// address (Key).
func New(max, perAddr int) *Limits {
	return &Limits{max: max, perAddr: perAddr, byAddr: make(map[string]int)}
}

// Admit takes a slot for a connection from key. When none is free it
// returns the stream error condition (RFC 6120 §4.9.3) and text to refuse
// the connection with, and no release.
func (l *Limits) Admit(key string) (release func(), cond, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.total >= l.max:
		// RFC 6120 §4.9.3.17: the server lacks the resources to serve
		// the stream; which is what a full table of descriptors is.
		return nil, "resource-constraint", "too many connections to this server; try again later"
	case l.byAddr[key] >= l.perAddr:
		// RFC 6120 §4.9.3.14: a local policy, not a lack of resources:
		// others are still served.
		return nil, "policy-violation", fmt.Sprintf("too many connections from your address (at most %d)", l.perAddr)
	}
	l.total++
	l.byAddr[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if l.byAddr[key]--; l.byAddr[key] <= 0 {
				delete(l.byAddr, key)
			}
		})
	}, "", ""
}

// Open reports the connections counted now, in all and from key.
func (l *Limits) Open(key string) (total, fromKey int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.byAddr[key]
}

// Key is what the per-address cap counts by: an IPv4 address, or the
// /64 an IPv6 address is in, since one subscriber usually gets a whole /64
// and can pick any address in it.
func Key(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String() // not an IP address (a pipe in tests): one key each
	}
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return ip.String()
	}
	return p.String()
}
