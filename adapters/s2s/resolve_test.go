package s2s

import (
	"context"
	"net"
	"reflect"
	"strings"
	"testing"
)

func TestParseRoute(t *testing.T) {
	for in, want := range map[string][2]string{
		"Montague.example=127.0.0.2:5269":   {"montague.example", "127.0.0.2:5269"},
		"m.example=[::1]:5270":              {"m.example", "[::1]:5270"},
		"m.example=tls:127.0.0.2:5270":      {"m.example", "tls:127.0.0.2:5270"},
		"m.example = tls:[::1]:443":         {"m.example", "tls:[::1]:443"},
		"m.example=tls:xmpp.m.example:5223": {"m.example", "tls:xmpp.m.example:5223"},
	} {
		d, a, err := ParseRoute(in)
		if err != nil || d != want[0] || a != want[1] {
			t.Errorf("%s: %s %s %v", in, d, a, err)
		}
	}
	for _, bad := range []string{"", "m.example", "=1.2.3.4:5", "m.example=1.2.3.4", "m.example=:5269", "a@b=1.2.3.4:5", "m.example=h:0", "m.example=h:70000",
		"m.example=tls:", "m.example=tls:5269", "m.example=tls:h", "m.example=tls::5269", "m.example=tls:tls:h:5269"} {
		if _, _, err := ParseRoute(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// srvTable is a fake DNS: records by "service name"; a name it does not
// hold has none (NXDOMAIN); a name in fail does not answer (SERVFAIL).
type srvTable struct {
	records map[string][]*net.SRV
	fail    map[string]bool
}

func (d srvTable) lookup(t *testing.T) func(context.Context, string, string, string) (string, []*net.SRV, error) {
	return func(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
		if (service != "xmpp-server" && service != "xmpps-server") || proto != "tcp" {
			t.Errorf("looked up _%s._%s", service, proto)
		}
		key := service + " " + name
		if d.fail[key] {
			return "", nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
		}
		if s, ok := d.records[key]; ok {
			return "", s, nil
		}
		return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
}

// Routes win; then _xmpps-server (direct TLS, "tls:") and _xmpp-server
// records make one list by priority (XEP-0368 §3), a target of "." takes
// its service away, and only a domain with no records of either is tried
// on 5269.
func TestResolve(t *testing.T) {
	dot := []*net.SRV{{Target: ".", Port: 0}}
	dns := srvTable{
		records: map[string][]*net.SRV{
			// Given out of order: the two services' priorities interleave.
			"xmpps-server both.example":    {{Target: "c.both.example.", Port: 443, Priority: 30}, {Target: "a.both.example.", Port: 5223, Priority: 10}},
			"xmpp-server both.example":     {{Target: "b.both.example.", Port: 5269, Priority: 20}, {Target: "d.both.example.", Port: 5270, Priority: 5}},
			"xmpps-server tied.example":    {{Target: "t.tied.example.", Port: 5223}},
			"xmpp-server tied.example":     {{Target: "s.tied.example.", Port: 5269}},
			"xmpps-server tls.example":     {{Target: "xmpp.tls.example.", Port: 5223}},
			"xmpp-server srv.example":      {{Target: "a.srv.example.", Port: 5270}, {Target: "b.srv.example.", Port: 5269, Priority: 1}},
			"xmpps-server notls.example":   dot,
			"xmpp-server notls.example":    {{Target: "xmpp.notls.example.", Port: 5269}},
			"xmpp-server onlytls.example":  dot,
			"xmpps-server onlytls.example": {{Target: "xmpp.onlytls.example.", Port: 5223}},
			"xmpps-server dotnone.example": dot,
			"xmpp-server none.example":     dot,
			"xmpps-server dots.example":    dot,
			"xmpp-server dots.example":     dot,
			"xmpp-server flaky.example":    {{Target: "xmpp.flaky.example.", Port: 5269}},
		},
		fail: map[string]bool{"xmpps-server flaky.example": true, "xmpps-server down.example": true, "xmpp-server down2.example": true,
			"xmpps-server dotdown.example": true},
	}
	dns.records["xmpp-server dotdown.example"] = dot
	r := Resolver{
		Routes:    map[string]string{"routed.example": "127.0.0.2:5269", "tlsrouted.example": "tls:127.0.0.2:5270"},
		LookupSRV: dns.lookup(t),
	}
	for domain, want := range map[string][]string{
		"routed.example":    {"127.0.0.2:5269"},
		"tlsrouted.example": {"tls:127.0.0.2:5270"},
		"both.example":      {"d.both.example:5270", "tls:a.both.example:5223", "b.both.example:5269", "tls:c.both.example:443"},
		// Equal priority, weights 0: direct TLS first.
		"tied.example":    {"tls:t.tied.example:5223", "s.tied.example:5269"},
		"tls.example":     {"tls:xmpp.tls.example:5223"},
		"srv.example":     {"a.srv.example:5270", "b.srv.example:5269"},
		"notls.example":   {"xmpp.notls.example:5269"},
		"onlytls.example": {"tls:xmpp.onlytls.example:5223"},
		"plain.example":   {"plain.example:5269"},
		// A service whose lookup failed is skipped if the other answers.
		"flaky.example": {"xmpp.flaky.example:5269"},
	} {
		got, err := r.Resolve(context.Background(), domain)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v %v, want %v", domain, got, err, want)
		}
	}
	for domain, why := range map[string]string{
		// XEP-0368 §3: "." for direct TLS, then no _xmpp-server: no
		// A/AAAA fallback.
		"dotnone.example": "offers no server-to-server service",
		"none.example":    "offers no server-to-server service",
		"dots.example":    "offers no server-to-server service",
		// DNS did not answer for one and the other has none: a guess at
		// 5269 would hide the failure.
		"down.example":    "server misbehaving",
		"down2.example":   "server misbehaving",
		"dotdown.example": "server misbehaving",
	} {
		if got, err := r.Resolve(context.Background(), domain); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: %v %v, want an error saying %q", domain, got, err, why)
		}
	}
}

// Within a priority both services' weights make one draw (XEP-0368 §3:
// "all priorities and weights are mixed"; RFC 2782's selection).
func TestResolveMixesWeights(t *testing.T) {
	dns := srvTable{records: map[string][]*net.SRV{
		"xmpps-server w.example": {{Target: "t.w.example.", Port: 5223, Weight: 1}, {Target: "z.w.example.", Port: 5224}},
		"xmpp-server w.example":  {{Target: "s.w.example.", Port: 5269, Weight: 3}, {Target: "later.w.example.", Port: 5269, Priority: 1, Weight: 9}},
	}}
	for draw, want := range map[int][]string{
		0: {"tls:t.w.example:5223", "s.w.example:5269", "tls:z.w.example:5224", "later.w.example:5269"},
		1: {"s.w.example:5269", "tls:t.w.example:5223", "tls:z.w.example:5224", "later.w.example:5269"},
		3: {"s.w.example:5269", "tls:t.w.example:5223", "tls:z.w.example:5224", "later.w.example:5269"},
	} {
		var sums []int
		r := Resolver{LookupSRV: dns.lookup(t), intn: func(n int) int { sums = append(sums, n); return min(draw, n-1) }}
		got, err := r.Resolve(context.Background(), "w.example")
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("draw %d: %v %v, want %v", draw, got, err, want)
		}
		// The first draw is over both services' weights (1+3+0), the
		// next over what is left of them; priority 1 is alone.
		if len(sums) != 2 || sums[0] != 4 {
			t.Errorf("draw %d: drew from %v, want [4 then 1 or 3]", draw, sums)
		}
	}
	// With the real draw, the record of weight 3 comes first about three
	// times in four.
	r := Resolver{LookupSRV: dns.lookup(t)}
	first := 0
	const runs = 2000
	for range runs {
		got, _ := r.Resolve(context.Background(), "w.example")
		if got[0] == "s.w.example:5269" {
			first++
		}
	}
	if first < runs*65/100 || first > runs*85/100 {
		t.Errorf("weight 3 of 4 first in %d of %d", first, runs)
	}
}
