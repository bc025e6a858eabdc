package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The addresses of the domains in a federation test's namespace: each
// domain's s2s listens on ADDR:5269, where the others find it.
const (
	prosodyAddr  = "127.0.0.2"
	ejabberdAddr = "127.0.0.3"
	annalsAddr   = "127.0.0.4"
)

// fedHosts is the namespace's hosts file: every domain and MUC service
// of the federation tests at its server's address.
var fedHosts = map[string]string{
	"prosody.test": prosodyAddr, "rooms.prosody.test": prosodyAddr,
	"ejabberd.test": ejabberdAddr, "rooms.ejabberd.test": ejabberdAddr,
	"annals.test": annalsAddr, "rooms.annals.test": annalsAddr,
}

// TestFederationPeersHarness proves the harness the Annals federation
// tests run in: Prosody and ejabberd federate inside a network namespace,
// each finding the other through the namespace's hosts file, first with
// certificates from the test CA (SASL EXTERNAL both ways), then with each
// trusting only an unrelated CA (dialback both ways). A slixmpp client on
// each side: a 1:1 message both ways, a subscription both ways, the
// ejabberd user in a Prosody room and the Prosody user in an ejabberd
// room. And Annals runs in the namespace too, with the test CA's
// certificate, reached by slixmpp there.
func TestFederationPeersHarness(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name     string
		dialback bool
		method   string // how each s2s stream must authenticate
	}{
		{"EXTERNAL", false, "EXTERNAL"},
		{"dialback", true, "dialback"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			f := newFederation(t, fedHosts)
			pr := f.startProsody(t, peerConfig{domain: "prosody.test", muc: "rooms.prosody.test", addr: prosodyAddr,
				users: map[string]string{"alice": "alice-pw"}, dialback: mode.dialback})
			prosodyUp := time.Since(start)
			ej := f.startEjabberd(t, peerConfig{domain: "ejabberd.test", muc: "rooms.ejabberd.test", addr: ejabberdAddr,
				users: map[string]string{"bob": "bob-pw"}, dialback: mode.dialback})
			up := time.Since(start)
			alice, bob := pr.account("alice", "alice-pw"), ej.account("bob", "bob-pw")
			steps := []string{fmt.Sprintf("prosody up %v, ejabberd up %v", ms3(prosodyUp), ms3(up-prosodyUp))}
			step := func(name string, run func()) {
				if t.Failed() {
					return // the next would fail the same way, each after its wait
				}
				t0 := time.Now()
				run()
				steps = append(steps, fmt.Sprintf("%s %v", name, ms3(time.Since(t0))))
			}
			step("chat", func() { f.chat(t, alice, bob) })
			step("subscribe", func() { f.subscribe(t, alice, bob) })
			step("ejabberd user in prosody room", func() { f.room(t, "lobby@"+pr.muc, alice, bob) })
			step("prosody user in ejabberd room", func() { f.room(t, "hall@"+ej.muc, bob, alice) })
			t.Logf("%s: %s; in all %v", mode.name, strings.Join(steps, ", "), ms3(time.Since(start)))
			if in, out := ej.ejabberdAuth("prosody.test"); in != mode.method || out != mode.method {
				t.Errorf("ejabberd authenticated prosody.test's stream by %q, its own by %q; want %s both ways", in, out, mode.method)
			}
		})
	}
	t.Run("annals", func(t *testing.T) {
		t.Parallel()
		f := newFederation(t, fedHosts)
		data := t.TempDir()
		addUsers(t, data, map[string]string{"carol@annals.test": "carol-pw", "dave@annals.test": "dave-pw"})
		s := f.serveAnnals(t, data, nil)
		f.chat(t, annalsAccount(s, "carol@annals.test", "carol-pw"), annalsAccount(s, "dave@annals.test", "dave-pw"))
	})
}

// chat: a sends b a chat message, b answers; each must get the other's.
func (f *federation) chat(t *testing.T, a, b account) {
	t.Helper()
	rs := f.slixPeers(t, "chat", a, b)
	noErrors(t, rs)
	for who, want := range map[string][2]string{"b": {a.jid, "across the border"}, "a": {b.jid, "and back again"}} {
		r := findWho(t, rs, "received", who)
		if bareOf(str(r["sender"])) != want[0] || r["body"] != want[1] || r["type"] != "chat" {
			t.Errorf("%s received %v; want %q from %s", who, r, want[1], want[0])
		}
	}
}

// subscribe: a asks b for a subscription and both approve and ask back;
// each must then see the other's presence and have subscription both.
func (f *federation) subscribe(t *testing.T, a, b account) {
	t.Helper()
	rs := f.slixPeers(t, "subscribe", a, b)
	noErrors(t, rs)
	for who, other := range map[string]string{"a": b.jid, "b": a.jid} {
		if r := findWho(t, rs, "presence-seen", who); bareOf(str(r["sender"])) != other {
			t.Errorf("%s never saw %s's presence: %v", who, other, r)
		}
		if r := findWho(t, rs, "roster", who); r["contact"] != other || r["subscription"] != "both" || r["pending_out"] != false {
			t.Errorf("%s's roster item: %v; want %s with subscription both", who, r, other)
		}
	}
}

// room: a creates room (an instant room), b joins it; each must see the
// other's line, from the other's nick (a and b).
func (f *federation) room(t *testing.T, room string, a, b account) {
	t.Helper()
	rs := f.slixPeers(t, "room", a, b, room)
	noErrors(t, rs)
	for _, r := range all(rs, "joined") {
		if r["error"] != nil {
			t.Fatalf("%s could not join %s: %v", r["who"], room, r)
		}
	}
	if len(all(rs, "joined")) != 2 {
		t.Fatalf("joins: %v", rs)
	}
	for who, want := range map[string][2]string{"b": {room + "/a", "from the host"}, "a": {room + "/b", "from the guest"}} {
		if r := findWho(t, rs, "groupchat", who); r["sender"] != want[0] || r["body"] != want[1] {
			t.Errorf("%s in %s got %v; want %q from %s", who, room, r, want[1], want[0])
		}
	}
}

// ejabberdAuth says how ejabberd, by its log (Debian's 23.01, at info
// level), last authenticated an s2s stream with other: in (other's to
// it) and out (its own to other); "" for never.
func (p *peer) ejabberdAuth(other string) (in, out string) {
	q := regexp.QuoteMeta
	log := p.logText()
	last := func(re *regexp.Regexp) string {
		m := re.FindAllStringSubmatch(log, -1)
		if len(m) == 0 {
			return ""
		}
		return m[len(m)-1][1]
	}
	return last(regexp.MustCompile(`Accepted inbound s2s (\S+) authentication ` + q(other) + ` -> ` + q(p.domain) + ` `)),
		last(regexp.MustCompile(`Accepted outbound s2s (\S+) authentication ` + q(p.domain) + ` -> ` + q(other) + ` `))
}

func ms3(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func noErrors(t *testing.T, rs []result) {
	t.Helper()
	for _, r := range all(rs, "error") {
		t.Errorf("%s got an error from %s: %s", r["who"], r["sender"], r["condition"])
	}
}

func bareOf(j string) string { b, _, _ := strings.Cut(j, "/"); return b }

// annalsAccount is an account of an Annals started by serveAnnals.
func annalsAccount(s *server, jid, password string) account {
	return account{addr: "127.0.0.1:" + strconv.Itoa(s.port), jid: jid, password: password}
}

// serveAnnals starts annals serve on data inside the namespace for
// annals.test, with its MUC at rooms.annals.test: c2s on 127.0.0.1 there
// (a free port it prints), s2s on annalsAddr:5269 where the peers find
// it, a certificate for both names from the test CA (--tls-cert, which
// s2s shows too), the test CA to check the peers' (--s2s-ca), a route to
// each peer's domain and MUC (--s2s-route), and flags.
func (f *federation) serveAnnals(t *testing.T, data string, peers []*peer, flags ...string) *server {
	t.Helper()
	s, _ := f.serveAnnalsCmd(t, data, peers, flags...)
	return s
}

// serveAnnalsCmd is serveAnnals, with the process, for a test that
// stops it and starts another on the same data.
func (f *federation) serveAnnalsCmd(t *testing.T, data string, peers []*peer, flags ...string) (*server, *exec.Cmd) {
	t.Helper()
	cert, key := f.ca.issue(t, "annals.test", "rooms.annals.test")
	certFile, keyFile := filepath.Join(data, "annals-test.crt"), filepath.Join(data, "annals-test.key")
	writeFile(t, certFile, cert, 0o600)
	writeFile(t, keyFile, key, 0o600)
	args := []string{"serve", "--data", data, "--domain", "annals.test", "--muc", "rooms.annals.test",
		"--c2s", "127.0.0.1:0", "--s2s", annalsAddr + ":5269", "--log-level", "debug",
		"--tls-cert", certFile, "--tls-key", keyFile, "--s2s-ca", f.ca.file}
	for _, p := range peers {
		args = append(args, "--s2s-route", p.domain+"="+p.s2s)
		if p.muc != "" {
			args = append(args, "--s2s-route", p.muc+"="+p.s2s)
		}
	}
	cmd := f.ns.command(bin, append(args, flags...)...)
	return startServe(t, cmd, data), cmd
}
