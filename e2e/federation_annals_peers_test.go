package e2e

import (
	"strings"
	"testing"
)

// TestFederationAnnalsPeers: Annals (annals.test) federates with Debian's
// Prosody (prosody.test) and ejabberd (ejabberd.test), all three in one
// network namespace (federation_peers_test.go). Annals reaches the peers
// by --s2s-route, they reach Annals through the namespace's hosts file.
// A slixmpp client on each side, for each peer: a 1:1 message both ways,
// a subscription asked from each side, an Annals account in a room of the
// peer's MUC, and the peer's user in an Annals room. Twice: with
// certificates every server trusts (SASL EXTERNAL, XEP-0178), and with
// none that the other side can check (dialback, XEP-0220).
func TestFederationAnnalsPeers(t *testing.T) {
	t.Parallel()
	t.Run("EXTERNAL", func(t *testing.T) {
		t.Parallel()
		annalsWithPeers(t, false)
	})
	t.Run("dialback", func(t *testing.T) {
		t.Parallel()
		annalsWithPeers(t, true)
	})
}

func annalsWithPeers(t *testing.T, dialback bool) {
	f := newFederation(t, fedHosts)
	peerUsers := map[string]string{"alice": "alice-pw", "bob": "bob-pw"}
	pr := f.startProsody(t, peerConfig{domain: "prosody.test", muc: "rooms.prosody.test", addr: prosodyAddr, users: peerUsers, dialback: dialback})
	ej := f.startEjabberd(t, peerConfig{domain: "ejabberd.test", muc: "rooms.ejabberd.test", addr: ejabberdAddr, users: peerUsers, dialback: dialback})
	// Two Annals accounts for each peer, so that the peers' subtests
	// share no account.
	data := t.TempDir()
	ours := map[string][2]string{pr.kind: {"carol", "dave"}, ej.kind: {"erin", "frank"}}
	users := map[string]string{}
	for _, pair := range ours {
		for _, u := range pair {
			users[u+"@annals.test"] = u + "-pw"
		}
	}
	addUsers(t, data, users)
	var flags []string
	want := "EXTERNAL"
	if dialback {
		// Annals checks no certificate of theirs (nor they its): each
		// side proves its name by dialback.
		for _, p := range []*peer{pr, ej} {
			flags = append(flags, "--s2s-insecure-domain", p.domain, "--s2s-insecure-domain", p.muc)
		}
		want = "dialback"
	}
	s := f.serveAnnals(t, data, []*peer{pr, ej}, flags...)
	t.Run("peers", func(t *testing.T) {
		for _, p := range []*peer{pr, ej} {
			t.Run(p.kind, func(t *testing.T) {
				t.Parallel()
				alice, bob := p.account("alice", "alice-pw"), p.account("bob", "bob-pw")
				u1, u2 := ours[p.kind][0], ours[p.kind][1]
				a1, a2 := annalsAccount(s, u1+"@annals.test", u1+"-pw"), annalsAccount(s, u2+"@annals.test", u2+"-pw")
				t.Run("chat", func(t *testing.T) { f.chat(t, a1, alice) })
				t.Run("subscribe from annals", func(t *testing.T) { f.subscribe(t, a1, alice) })
				t.Run("subscribe from "+p.kind, func(t *testing.T) { f.subscribe(t, bob, a2) })
				t.Run("annals account in "+p.kind+" room", func(t *testing.T) { f.room(t, "lobby@"+p.muc, bob, a2) })
				t.Run(p.kind+" user in annals room", func(t *testing.T) { f.room(t, "hall-"+p.kind+"@rooms.annals.test", a1, bob) })
			})
		}
	})
	if in, out := ej.ejabberdAuth("annals.test"); in != want || out != want {
		t.Errorf("ejabberd authenticated annals.test's stream by %q, its own by %q; want %s both ways", in, out, want)
	}
}

// Annals reaches Prosody over direct TLS (XEP-0368: --s2s-route
// DOMAIN=tls:HOST:PORT, Prosody's s2s_direct_tls_ports): a message both
// ways, Prosody answering over its own STARTTLS stream.
func TestFederationProsodyDirectTLS(t *testing.T) {
	t.Parallel()
	f := newFederation(t, fedHosts)
	pr := f.startProsody(t, peerConfig{domain: "prosody.test", addr: prosodyAddr, users: map[string]string{"alice": "alice-pw"}, directTLS: true})
	data := t.TempDir()
	addUsers(t, data, map[string]string{"carol@annals.test": "carol-pw"})
	s := f.serveAnnals(t, data, []*peer{pr}, "--s2s-route", "prosody.test=tls:"+prosodyAddr+":5270")
	f.chat(t, annalsAccount(s, "carol@annals.test", "carol-pw"), pr.account("alice", "alice-pw"))
	if got := grepLines(s.logs.String(), "s2s stream authenticated"); !strings.Contains(got, "addr=tls:"+prosodyAddr+":5270") {
		t.Errorf("Annals' stream to Prosody was not direct TLS:\n%s", got)
	}
}
