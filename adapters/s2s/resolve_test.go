package s2s

import (
	"context"
	"net"
	"reflect"
	"testing"
)

func TestParseRoute(t *testing.T) {
	for in, want := range map[string][2]string{
		"Montague.example=127.0.0.2:5269": {"montague.example", "127.0.0.2:5269"},
		"m.example=[::1]:5270":            {"m.example", "[::1]:5270"},
	} {
		d, a, err := ParseRoute(in)
		if err != nil || d != want[0] || a != want[1] {
			t.Errorf("%s: %s %s %v", in, d, a, err)
		}
	}
	for _, bad := range []string{"", "m.example", "=1.2.3.4:5", "m.example=1.2.3.4", "m.example=:5269", "a@b=1.2.3.4:5", "m.example=h:0", "m.example=h:70000"} {
		if _, _, err := ParseRoute(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Routes win; SRV records come next, in the order the resolver sorts
// them; a domain without records is tried on 5269; "." says no service.
func TestResolve(t *testing.T) {
	srv := map[string][]*net.SRV{
		"srv.example":  {{Target: "a.srv.example.", Port: 5270}, {Target: "b.srv.example.", Port: 5269}},
		"none.example": {{Target: ".", Port: 0}},
	}
	r := Resolver{
		Routes: map[string]string{"routed.example": "127.0.0.2:5269"},
		LookupSRV: func(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
			if service != "xmpp-server" || proto != "tcp" {
				t.Errorf("looked up _%s._%s", service, proto)
			}
			if s, ok := srv[name]; ok {
				return "", s, nil
			}
			return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		},
	}
	for domain, want := range map[string][]string{
		"routed.example": {"127.0.0.2:5269"},
		"srv.example":    {"a.srv.example:5270", "b.srv.example:5269"},
		"plain.example":  {"plain.example:5269"},
	} {
		got, err := r.Resolve(context.Background(), domain)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v %v, want %v", domain, got, err, want)
		}
	}
	if got, err := r.Resolve(context.Background(), "none.example"); err == nil {
		t.Errorf("none.example: %v, want no service", got)
	}
}
