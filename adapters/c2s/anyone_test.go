package c2s

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
)

// echoFrom answers with the address asked, so a test sees which
// destination's handler ran and for whom.
func echoFrom(tag string) mux.Handler {
	return func(_ context.Context, iq *mux.IQ) error {
		iq.Result("<" + tag + " xmlns='urn:test' asked='" + stanza.Escape(iq.From) + "'/>")
		return nil
	}
}

// An IQ to another local account's bare JID is answered at mux.Anyone
// for anyone, and at mux.Contact first for those the account shares its
// presence with; what only contacts get stays service-unavailable to
// others.
func TestIQToAnyone(t *testing.T) {
	register := func(srv *Server) {
		m := srv.cfg.Mux
		m.Handle(mux.Anyone, "urn:test:anyone", echoFrom("anyone"))
		m.Handle(mux.Contact, "urn:test:contact", echoFrom("contact"))
		m.Handle(mux.Contact, "urn:test:both", echoFrom("contact"))
		m.Handle(mux.Anyone, "urn:test:both", echoFrom("anyone"))
	}
	for _, tc := range []struct {
		name     string
		accounts Accounts
		want     map[string]string // namespace -> what answers
	}{
		{"a stranger", noContacts{}, map[string]string{"urn:test:anyone": "<anyone ", "urn:test:contact": "service-unavailable", "urn:test:both": "<anyone "}},
		{"a contact", lovers{}, map[string]string{"urn:test:anyone": "<anyone ", "urn:test:contact": "<contact ", "urn:test:both": "<contact "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serverMounting(t, func(cfg *Config) { cfg.Accounts = tc.accounts }, register)
			romeo := dial(t, addr)
			romeo.loginAs("romeo", "orchard")
			for ns, want := range tc.want {
				romeo.send("<iq type='get' id='q' to='juliet@localhost'><q xmlns='" + ns + "'/></iq>")
				got := romeo.until("id='q'")
				if !strings.Contains(got, want) || !strings.Contains(got, "from='juliet@localhost'") {
					t.Errorf("%s: %q, want %q", ns, got, want)
				}
				if want != "service-unavailable" && !strings.Contains(got, "asked='juliet@localhost'") {
					t.Errorf("%s: the handler was not told whom it was asked: %q", ns, got)
				}
			}
		})
	}
}

// What features add to an account's available presence
// (mux.PresenceChild) goes with its broadcast, to its contacts and to
// itself; RefreshPresence broadcasts it again as the features now dress
// it, and sends nothing for a session that went unavailable.
func TestPresenceDressed(t *testing.T) {
	var avatar atomic.Int32
	avatar.Store(1)
	var srv *Server
	addr := serverMounting(t, func(cfg *Config) { cfg.Accounts = lovers{} }, func(s *Server) {
		srv = s
		s.cfg.Mux.AddPresenceChild(func(_ context.Context, acct string, p *stanza.Element) string {
			if _, said := p.Named("urn:test:avatar", "x"); said || acct != "romeo@localhost" {
				return ""
			}
			return "<x xmlns='urn:test:avatar'>" + string(rune('0'+avatar.Load())) + "</x>"
		})
	})
	romeo, juliet := dial(t, addr), dial(t, addr)
	juliet.login("balcony")
	juliet.send("<presence/>")
	juliet.until("from='juliet@localhost/balcony'")
	romeo.loginAs("romeo", "orchard")
	romeo.send("<presence><status>here</status></presence>")
	if got := juliet.until("<status>here</status>"); !strings.Contains(got, "<x xmlns='urn:test:avatar'>1</x>") {
		t.Fatalf("juliet got %q", got)
	}
	romeo.send("<presence><status>said</status><x xmlns='urn:test:avatar'>9</x></presence>")
	if got := juliet.until("<status>said</status>"); strings.Count(got, "urn:test:avatar") != 1 || !strings.Contains(got, ">9</x>") {
		t.Fatalf("what the client said itself: %q", got)
	}
	romeo.send("<presence><status>again</status></presence>")
	juliet.until("<status>again</status>")
	romeo.until("<status>again</status>")
	avatar.Store(2)
	srv.RefreshPresence(context.Background(), "romeo@localhost")
	if got := juliet.until("urn:test:avatar'>2</x>"); !strings.Contains(got, "<status>again</status>") || !strings.Contains(got, "from='romeo@localhost/orchard'") {
		t.Fatalf("the refreshed presence: %q", got)
	}
	if got := romeo.until("urn:test:avatar'>2</x>"); !strings.Contains(got, "<status>again</status>") {
		t.Fatalf("romeo's own copy: %q", got)
	}
	romeo.send("<presence type='unavailable'/>")
	juliet.until("type='unavailable'")
	avatar.Store(3)
	srv.RefreshPresence(context.Background(), "romeo@localhost")
	juliet.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := juliet.until("id='p'"); strings.Contains(got, "<presence") {
		t.Fatalf("a presence for a session that went unavailable: %q", got)
	}
}
