package extdisco

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
)

// The TURN REST credentials against a vector computed outside Go, by
// both of:
//
//	python3 -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b'north-wind', b'1796040000:juliet@example.com', hashlib.sha1).digest()).decode())"
//	printf '%s' '1796040000:juliet@example.com' | openssl dgst -sha1 -hmac north-wind -binary | base64
//
// 1796040000 is 2026-11-30T12:00:00Z.
func TestCredentials(t *testing.T) {
	t.Parallel()
	user, pass := Credentials([]byte("north-wind"), "juliet@example.com", time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	if user != "1796040000:juliet@example.com" || pass != "TTb8bP6Qs7TP6B6An0jT/vLjQOk=" {
		t.Errorf("credentials %q %q; want 1796040000:juliet@example.com TTb8bP6Qs7TP6B6An0jT/vLjQOk=", user, pass)
	}
}

func TestParseService(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]External{
		"turn:turn.example.org:3478?transport=udp":  {"turn", "turn.example.org", 3478, "udp"},
		"turns:Turn.Example.org:5349?transport=tcp": {"turns", "turn.example.org", 5349, "tcp"},
		"stun:192.0.2.1:3478?transport=udp":         {"stun", "192.0.2.1", 3478, "udp"},
		"stun:[2001:db8::1]:3478?transport=udp":     {"stun", "2001:db8::1", 3478, "udp"},
	} {
		got, err := ParseService(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", in, got, err, want)
		}
		if again, err := ParseService(got.String()); err != nil || again != got {
			t.Errorf("%s: its String %q reads back as %+v, %v", in, got.String(), again, err)
		}
	}
	for _, in := range []string{
		"", "turn.example.org:3478", "http:example.org:80?transport=tcp",
		"turn:turn.example.org?transport=udp",       // no port
		"turn:turn.example.org:3478",                // no transport
		"turn:turn.example.org:3478?transport=sctp", // not udp or tcp
		"turn:turn.example.org:3478?transport=udp&x=1",
		"turn:turn.example.org:0?transport=udp",
		"turn:turn.example.org:65536?transport=udp",
		"turn:turn.example.org:+3478?transport=udp",
		"turn:2001:db8::1:3478?transport=udp", // IPv6 without brackets
		"turn:turn_example.org:3478?transport=udp",
		"turn:-turn.example.org:3478?transport=udp",
		"turn::3478?transport=udp",
		"turn:user@turn.example.org:3478?transport=udp",
		"TURN:turn.example.org:3478?transport=udp",
	} {
		if got, err := ParseService(in); err == nil {
			t.Errorf("%q read as %+v; want an error", in, got)
		}
	}
}

// The configuration's bounds: the number of services, duplicates, the
// TTL, a secret with no relay to use it.
func TestConfigBounds(t *testing.T) {
	t.Parallel()
	many := func(n int) []External {
		var out []External
		for i := range n {
			out = append(out, External{"stun", fmt.Sprintf("stun%d.example.org", i), 3478, "udp"})
		}
		return out
	}
	turn := External{"turn", "turn.example.org", 3478, "udp"}
	if _, err := New(Config{Services: many(MaxServices)}); err != nil {
		t.Errorf("%d services: %v", MaxServices, err)
	}
	for name, cfg := range map[string]Config{
		"too many":            {Services: many(MaxServices + 1)},
		"twice":               {Services: []External{turn, turn}},
		"ttl too short":       {Services: []External{turn}, TTL: MinTTL - time.Second},
		"ttl too long":        {Services: []External{turn}, TTL: MaxTTL + time.Second},
		"secret without turn": {Services: many(1), Secret: []byte("s")},
		"empty secret":        {Services: []External{turn}, Secret: []byte{}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s, err := New(Config{Services: []External{turn}})
	if err != nil || s.cfg.TTL != DefaultTTL {
		t.Errorf("default TTL %v, %v; want %v", s.cfg.TTL, err, DefaultTTL)
	}
}

// The answers: every service with credentials for the relays, one type,
// credentials at a named relay (and by port), an unknown service
// item-not-found, a STUN service has none, a user of another server or
// asking another domain forbidden.
func TestAnswers(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 30, 11, 0, 0, 0, time.UTC)
	s, err := New(Config{Domains: []string{"example.com", "example.net"}, Secret: []byte("north-wind"), TTL: time.Hour, Services: []External{
		{"stun", "stun.example.org", 3478, "udp"},
		{"turn", "turn.example.org", 3478, "udp"},
		{"turns", "turn.example.org", 5349, "tcp"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return t0 }
	m := mux.New()
	s.Register(m)
	if got := m.Features(mux.Server); len(got) != 1 || got[0] != NS {
		t.Errorf("features %v; want %s", got, NS)
	}
	juliet := &muxtest.Session{Full: jid.MustParse("juliet@example.com/balcony")}
	stranger := &muxtest.Session{Full: jid.MustParse("iago@elsewhere.example/cyprus")}
	const creds = "restricted='1' username='1796040000:juliet@example.com' password='TTb8bP6Qs7TP6B6An0jT/vLjQOk=' expires='2026-11-30T12:00:00Z'/>"
	for _, c := range []struct {
		name      string
		s         *muxtest.Session
		from, iq  string
		want, not []string
	}{
		{"all", juliet, "", "<services xmlns='urn:xmpp:extdisco:2'/>", []string{
			"<service type='stun' host='stun.example.org' port='3478' transport='udp'/>",
			"<service type='turn' host='turn.example.org' port='3478' transport='udp' " + creds,
			"<service type='turns' host='turn.example.org' port='5349' transport='tcp' " + creds,
		}, nil},
		{"turn only", juliet, "example.com", "<services xmlns='urn:xmpp:extdisco:2' type='turn'/>", []string{"<services xmlns='urn:xmpp:extdisco:2' type='turn'>", "type='turn' host"}, []string{"stun", "turns"}},
		{"credentials", juliet, "", "<credentials xmlns='urn:xmpp:extdisco:2'><service type='turns' host='TURN.example.org'/></credentials>",
			[]string{"<credentials xmlns='urn:xmpp:extdisco:2'><service type='turns' host='turn.example.org' port='5349' transport='tcp' " + creds + "</credentials>"}, nil},
		{"by port", juliet, "", "<credentials xmlns='urn:xmpp:extdisco:2'><service type='turns' host='turn.example.org' port='5349'/></credentials>", []string{"port='5349'"}, nil},
		{"wrong port", juliet, "", "<credentials xmlns='urn:xmpp:extdisco:2'><service type='turns' host='turn.example.org' port='3478'/></credentials>", []string{"item-not-found"}, nil},
		{"unknown host", juliet, "", "<credentials xmlns='urn:xmpp:extdisco:2'><service type='turn' host='relay.example.org'/></credentials>", []string{"item-not-found"}, nil},
		{"stun has none", juliet, "", "<credentials xmlns='urn:xmpp:extdisco:2'><service type='stun' host='stun.example.org'/></credentials>", []string{"item-not-found"}, nil},
		{"no host", juliet, "", "<credentials xmlns='urn:xmpp:extdisco:2'><service type='turn'/></credentials>", []string{"bad-request"}, nil},
		{"nothing named", juliet, "", "<credentials xmlns='urn:xmpp:extdisco:2'/>", []string{"bad-request"}, nil},
		{"another element", juliet, "", "<service xmlns='urn:xmpp:extdisco:2' type='turn' host='turn.example.org'/>", []string{"bad-request"}, nil},
		{"a child of another namespace", juliet, "", "<credentials xmlns='urn:xmpp:extdisco:2'><service xmlns='urn:x' type='turn' host='turn.example.org'/></credentials>", []string{"bad-request"}, nil},
		{"another server's user", stranger, "example.com", "<services xmlns='urn:xmpp:extdisco:2'/>", []string{"forbidden"}, []string{"password"}},
		{"another domain here", juliet, "example.net", "<services xmlns='urn:xmpp:extdisco:2'/>", []string{"forbidden"}, []string{"password"}},
		{"set", juliet, "", "<iq type='set' id='x'><services xmlns='urn:xmpp:extdisco:2'/></iq>", []string{"bad-request"}, nil},
	} {
		iq := c.iq
		if !strings.HasPrefix(iq, "<iq ") {
			iq = "<iq type='get' id='x'>" + iq + "</iq>"
		}
		got, handled, err := muxtest.Ask(m, mux.Server, c.s, c.from, iq)
		if !handled || err != nil {
			t.Errorf("%s: handled %v, %v", c.name, handled, err)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %s\nwant %s", c.name, got, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(got, n) {
				t.Errorf("%s: %s\nhas %s", c.name, got, n)
			}
		}
	}
}

// Without services the server neither answers nor claims the feature.
func TestNoServices(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Domains: []string{"example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	m := mux.New()
	s.Register(m)
	if got := m.Features(mux.Server); len(got) != 0 {
		t.Errorf("features %v; want none", got)
	}
}
