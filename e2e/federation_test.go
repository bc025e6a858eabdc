package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fedServer is an Annals serving one domain at its own loopback address,
// federating through --s2s on a port picked before it starts (each needs
// the other's in its --s2s-route).
type fedServer struct {
	*server
	cmd          *exec.Cmd
	domain, host string
	s2sPort      int
	flags        []string // serve's, to start it again
}

// restart starts the server again on its data once it has stopped.
func (f *fedServer) restart(t *testing.T) {
	t.Helper()
	f.cmd.Wait()
	f.server, f.cmd = serveOn(t, f.data, f.flags...)
}

func (f *fedServer) c2s() string { return net.JoinHostPort(f.host, strconv.Itoa(f.port)) }
func (f *fedServer) s2s() string { return net.JoinHostPort(f.host, strconv.Itoa(f.s2sPort)) }

// startFederated starts two Annals, capulet.test on 127.0.0.1 and
// montague.test on 127.0.0.2, each its own data directory, routed to each
// other; extra flags go to both (e.g. how certificates are checked).
func startFederated(t *testing.T, extra func(self, peer *fedServer) []string) (a, b *fedServer) {
	t.Helper()
	return startFederatedVia(t, extra, nil)
}

// startFederatedVia is startFederated with each server routed to where
// route(self, peer) says peer's s2s port is reached (a proxy, say), once
// both ports are picked: for a, then for b. A nil route is peer.s2s().
func startFederatedVia(t *testing.T, extra func(self, peer *fedServer) []string, route func(self, peer *fedServer) string, more ...string) (a, b *fedServer) {
	t.Helper()
	a = &fedServer{domain: "capulet.test", host: "127.0.0.1"}
	b = &fedServer{domain: "montague.test", host: "127.0.0.2"}
	for _, f := range []*fedServer{a, b} {
		ln, err := net.Listen("tcp", net.JoinHostPort(f.host, "0"))
		if err != nil {
			t.Skipf("no loopback address %s: %v", f.host, err)
		}
		f.s2sPort = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	for _, p := range [][2]*fedServer{{a, b}, {b, a}} {
		self, peer := p[0], p[1]
		data := t.TempDir()
		users := map[string]string{}
		for _, u := range append([]string{"juliet", "romeo"}, more...) {
			users[u+"@"+self.domain] = "pw-" + self.domain
		}
		addUsers(t, data, users)
		to := peer.s2s()
		if route != nil {
			to = route(self, peer)
		}
		flags := []string{"--domain", self.domain, "--c2s", net.JoinHostPort(self.host, "0"), "--s2s", self.s2s(),
			"--s2s-route", peer.domain + "=" + to, "--s2s-route", "conference." + peer.domain + "=" + to, "--s2s-route", "mirror." + peer.domain + "=" + to}
		flags = append(flags, extra(self, peer)...)
		self.flags = flags
		self.server, self.cmd = serveOn(t, data, flags...)
	}
	return a, b
}

// external: a test CA made each server's certificate (its domain and
// its room service's), and each trusts that CA: they authenticate with
// SASL EXTERNAL (XEP-0178).
func external(t *testing.T) func(self, peer *fedServer) []string {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "Annals federation test CA")
	return func(self, peer *fedServer) []string {
		cert, key := ca.issue(t, self.domain, "conference."+self.domain)
		certFile, keyFile := filepath.Join(dir, self.domain+".crt"), filepath.Join(dir, self.domain+".key")
		writeFile(t, certFile, cert, 0o600)
		writeFile(t, keyFile, key, 0o600)
		return []string{"--tls-cert", certFile, "--tls-key", keyFile, "--s2s-ca", ca.file}
	}
}

// dialback: neither server can check the other's certificate (each made
// its own), so each proves its name by dialback.
func dialback(self, peer *fedServer) []string {
	return []string{"--s2s-insecure-domain", peer.domain, "--s2s-insecure-domain", "conference." + peer.domain}
}

func fedDriver(t *testing.T, scenario string, a, b *fedServer, aUser, bUser string, extra ...string) []result {
	t.Helper()
	return runDriver(t, "/usr/bin/python3", append([]string{"clients/slix_fed.py", scenario,
		a.c2s(), aUser + "@" + a.domain, "pw-" + a.domain, b.c2s(), bUser + "@" + b.domain, "pw-" + b.domain}, extra...)...)
}

// Two Annals federate over dialback: 1:1 chat both ways, archived once per
// local party and forked to every client; a subscription both ways; IQs to
// clients and the server at the other side.
func TestFederationDialback(t *testing.T) {
	t.Parallel()
	a, b := startFederated(t, dialback)
	t.Run("chat", func(t *testing.T) {
		rs := fedDriver(t, "chat", a, b, "juliet", "romeo")
		t.Logf("slixmpp saw: %v", rs)
		checkFederatedChat(t, rs, "juliet@"+a.domain, "romeo@"+b.domain)
	})
	t.Run("subscribe", func(t *testing.T) {
		rs := fedDriver(t, "subscribe", b, a, "romeo", "romeo")
		t.Logf("slixmpp saw: %v", rs)
		checkSubscribed(t, rs)
	})
	t.Run("room", func(t *testing.T) {
		// A user at the other server is an occupant of a room here (one
		// per session; its server, Annals, joins once for the account),
		// and the room's traffic crosses both ways.
		rs := fedDriver(t, "room", a, b, "juliet", "romeo", "hall@conference."+a.domain)
		t.Logf("slixmpp saw: %v", rs)
		checkFederatedRoom(t, rs, "hall@conference."+a.domain, "romeo@"+b.domain+"/annals-rooms")
	})
	t.Run("invite", func(t *testing.T) {
		// A room's mediated invitation reaches a user at the other server.
		rs := fedDriver(t, "invite", a, b, "juliet", "romeo", "ball@conference."+a.domain)
		t.Logf("slixmpp saw: %v", rs)
		if r := find(t, rs, "invited"); r["from"] != "ball@conference."+a.domain || r["by"] != "juliet@"+a.domain+"/one" || r["reason"] != "come to the hall" {
			t.Errorf("the invitation arrived as %v", r)
		}
	})
	t.Run("iq", func(t *testing.T) {
		rs := fedDriver(t, "iq", a, b, "romeo", "juliet")
		t.Logf("slixmpp saw: %v", rs)
		checkFederatedIQ(t, rs, b.domain)
	})
	for _, f := range []*fedServer{a, b} {
		logs := f.logs.String()
		if !strings.Contains(logs, "method=dialback") || strings.Contains(logs, "method=EXTERNAL") {
			t.Errorf("%s authenticated its peers otherwise than by dialback alone:\n%s", f.domain, grepLines(logs, "method="))
		}
	}
}

// Two Annals whose certificates each other trusts federate with SASL
// EXTERNAL, no dialback, and everything of the dialback test works alike.
func TestFederationExternal(t *testing.T) {
	t.Parallel()
	a, b := startFederated(t, external(t))
	t.Run("chat", func(t *testing.T) {
		checkFederatedChat(t, fedDriver(t, "chat", a, b, "juliet", "romeo"), "juliet@"+a.domain, "romeo@"+b.domain)
	})
	t.Run("subscribe", func(t *testing.T) { checkSubscribed(t, fedDriver(t, "subscribe", b, a, "romeo", "romeo")) })
	t.Run("room", func(t *testing.T) {
		rs := fedDriver(t, "room", a, b, "juliet", "romeo", "hall@conference."+a.domain)
		checkFederatedRoom(t, rs, "hall@conference."+a.domain, "romeo@"+b.domain+"/annals-rooms")
	})
	for _, f := range []*fedServer{a, b} {
		logs := f.logs.String()
		if !strings.Contains(logs, "method=EXTERNAL") || strings.Contains(logs, "method=dialback") {
			t.Errorf("%s authenticated its peers otherwise than by EXTERNAL alone:\n%s", f.domain, grepLines(logs, "method="))
		}
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// checkFederatedChat reads the chat scenario's facts: aJID's two clients
// and bJID's one at the other server.
func checkFederatedChat(t *testing.T, rs []result, aJID, bJID string) {
	t.Helper()
	idsBy := func(r result) []string {
		var by []string
		for _, s := range r["stanza_ids"].([]any) {
			by = append(by, fmt.Sprint(s.(map[string]any)["by"]))
		}
		return by
	}
	got := map[string]result{}
	for _, r := range rs {
		who := r["who"]
		if who == nil {
			who = r["sender"]
		}
		got[fmt.Sprint(r["event"], "/", who)] = r
	}
	if r := got["received/b"]; r == nil || r["from"] != aJID+"/one" || fmt.Sprint(idsBy(r)) != "["+bJID+"]" {
		t.Errorf("b's server delivered %v; want it from %s/one with one stanza-id by %s", r, aJID, bJID)
	}
	if r := got["carbon-sent/a2"]; r == nil || r["to"] != bJID || fmt.Sprint(idsBy(r)) != "["+aJID+"]" {
		t.Errorf("a's other client got %v as a sent carbon; want the message to %s with a's stanza-id", r, bJID)
	}
	for _, who := range []string{"a1", "a2"} {
		if r := got["received/"+who]; r == nil || r["from"] != bJID+"/desk" || fmt.Sprint(idsBy(r)) != "["+aJID+"]" {
			t.Errorf("%s got %v; want b's reply with one stanza-id by %s", who, r, aJID)
		}
	}
	for _, who := range []string{"a1", "b"} {
		if r := got["archive/"+who]; r == nil || fmt.Sprint(r["bodies"]) != "[wherefore art thou deny thy father]" {
			t.Errorf("%s's archive: %v; want both messages, once each, in order", who, r)
		}
	}
	stranger := "nobody@" + bJID[len("romeo@"):]
	for sender, cond := range map[string]string{stranger: "service-unavailable", "someone@unreachable.invalid": "remote-server-not-found"} {
		if r := got["error/"+sender]; r == nil || r["condition"] != cond {
			t.Errorf("a message to %s came back as %v; want %s", sender, r, cond)
		}
	}
}

func checkSubscribed(t *testing.T, rs []result) {
	t.Helper()
	n := 0
	for _, r := range rs {
		switch r["event"] {
		case "presence-seen":
			n++
			if r["sender"] == "" {
				t.Errorf("%s never saw the other's presence", r["who"])
			}
		case "roster":
			n++
			if r["subscription"] != "both" || r["pending_out"] != false {
				t.Errorf("%s's roster item: %v; want subscription both", r["who"], r)
			}
		}
	}
	if n != 4 {
		t.Errorf("%d facts of 4", n)
	}
}

func checkFederatedIQ(t *testing.T, rs []result, bDomain string) {
	t.Helper()
	pings := 0
	for _, r := range rs {
		switch r["event"] {
		case "ping":
			pings++
			if r["ok"] != true {
				t.Errorf("ping %v failed: %v", r["to"], r["error"])
			}
		case "disco":
			if r["error"] != nil {
				t.Errorf("disco#info of %s: %v", bDomain, r["error"])
			}
		case "ping-gone":
			if r["condition"] != "service-unavailable" {
				t.Errorf("a ping to a resource that is not there: %v; want service-unavailable", r)
			}
		}
	}
	if pings != 3 {
		t.Errorf("%d pings of 3 answered or failed", pings)
	}
}

// checkFederatedRoom reads the room scenario's facts: a at the room's
// server, b (bJID, a full JID) at the other.
func checkFederatedRoom(t *testing.T, rs []result, room, bJID string) {
	t.Helper()
	got := map[string]result{}
	for _, r := range rs {
		got[fmt.Sprint(r["event"], "/", r["who"])] = r
	}
	if r := got["joined/a"]; r == nil || r["error"] != nil || r["affiliation"] != "owner" {
		t.Errorf("a's join: %v; want it in as the owner", r)
	}
	if r := got["joined/b"]; r == nil || r["error"] != nil || r["role"] != "participant" || r["jid"] != bJID {
		t.Errorf("b's join from the other server: %v; want a participant, as its account's occupant JID %s", r, bJID)
	}
	if r := got["occupant/a"]; r == nil || r["from"] != room+"/Beta" {
		t.Errorf("a saw %v of b's join", r)
	}
	if r := got["groupchat/b"]; r == nil || r["from"] != room+"/Alpha" || fmt.Sprint(r["stanza_ids"]) != "[map[by:"+room+" id:"+fmt.Sprint(firstID(r))+"]]" {
		t.Errorf("b got %v of a's message; want it with the room's stanza-id alone", r)
	}
	if r := got["groupchat/a"]; r == nil || r["from"] != room+"/Beta" {
		t.Errorf("a got %v of b's message", r)
	}
	if r := got["left/a"]; r == nil || r["type"] != "unavailable" {
		t.Errorf("a saw %v of b leaving", r)
	}
}

func firstID(r result) any {
	ids, _ := r["stanza_ids"].([]any)
	if len(ids) == 0 {
		return nil
	}
	return ids[0].(map[string]any)["id"]
}

// A room removes an occupant whose server is gone (status 333) once what
// the room sends it bounces, and the others see it leave.
func TestFederationGhostOccupant(t *testing.T) {
	t.Parallel()
	a, b := startFederated(t, dialback)
	rs := fedDriver(t, "ghost", a, b, "juliet", "romeo", "hall@conference."+a.domain, strconv.Itoa(b.cmd.Process.Pid))
	t.Logf("slixmpp saw: %v", rs)
	r := find(t, rs, "left")
	if fmt.Sprint(r["codes"]) != "[333]" || r["type"] != "unavailable" {
		t.Fatalf("the ghost's exit: %v; want unavailable with status 333", r)
	}
}

// A server that stops tells its users' contacts at other servers that
// they are gone: the last presences go out before the streams end.
func TestFederationShutdown(t *testing.T) {
	t.Parallel()
	a, b := startFederated(t, dialback)
	checkSubscribed(t, fedDriver(t, "subscribe", a, b, "romeo", "romeo"))
	rs := fedDriver(t, "stop", a, b, "romeo", "romeo", strconv.Itoa(a.cmd.Process.Pid))
	t.Logf("slixmpp saw: %v", rs)
	if r := find(t, rs, "unavailable"); r["sender"] == "" {
		t.Fatalf("romeo@%s never saw his contact at the stopping server go unavailable", b.domain)
	}
}

// An account joins a room at another server once, whatever its clients
// do: the room sees one occupant (the account's rooms resource), a second
// client attaches without a second join and gets the room as last heard,
// both clients see everything said, one client leaving does not take the
// account out, and an explicit exit does.
func TestFederationRemoteRoomAttach(t *testing.T) {
	t.Parallel()
	a, b := startFederated(t, dialback)
	room := "hall@conference." + b.domain
	rs := fedDriver(t, "attach", a, b, "juliet", "romeo", room)
	t.Logf("slixmpp saw: %v", rs)
	got := map[string]result{}
	var groupchats []result
	for _, r := range rs {
		if r["event"] == "groupchat" {
			groupchats = append(groupchats, r)
		}
		got[fmt.Sprint(r["event"], "/", r["who"])] = r
	}
	if r := got["occupant/b"]; r == nil || r["jid"] != "juliet@"+a.domain+"/annals-rooms" {
		t.Errorf("the room saw %v; want the account's one occupant, juliet@%s/annals-rooms", r, a.domain)
	}
	if r := got["joined/a2"]; r == nil || r["error"] != nil || fmt.Sprint(r["codes"]) != "[110 170]" || fmt.Sprint(r["others"]) != "["+room+"/Beta]" {
		t.Errorf("the second client's join: %v; want its own presence (110) and the other occupant, as last heard", r)
	}
	if len(groupchats) != 4 {
		t.Errorf("%d groupchat messages seen, want 4 (b's at both clients, a2's at b and a1)", len(groupchats))
	}
	for _, r := range groupchats {
		// The room's stanza-id, and for the local account its own; none
		// by an account of the other server.
		if ids := fmt.Sprint(r["stanza_ids"]); strings.Contains(ids, "juliet@") && r["who"] != "b" || strings.Contains(ids, "annals-rooms") {
			t.Errorf("%s got stanza-ids %s", r["who"], ids)
		}
	}
	if r := got["after-a2-left/b"]; r == nil || fmt.Sprint(r["presences"]) != "[]" {
		t.Errorf("when one client left the room saw %v; want nothing (the account stays)", r)
	}
	if r := got["left/b"]; r == nil || r["type"] != "unavailable" {
		t.Errorf("after an explicit exit the room saw %v", r)
	}
}

// Deleting an account tells its contacts at other servers: their rosters
// end the subscription both ways, as a local contact's would.
func TestFederationAccountDeleted(t *testing.T) {
	t.Parallel()
	a, b := startFederated(t, dialback)
	checkSubscribed(t, fedDriver(t, "subscribe", a, b, "juliet", "romeo"))
	if out, err := exec.Command(bin, "user", "del", "juliet@"+a.domain, "--data", a.data).CombinedOutput(); err != nil {
		t.Fatalf("user del: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := find(t, fedDriver(t, "roster", b, a, "romeo", "juliet"), "roster")
		if r["subscription"] == "none" && r["pending_out"] == false {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("romeo's roster item for the deleted juliet: %v; want subscription none", r)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// A server that stops tells the occupants from other servers that they
// are out (332), and after the restart they are not in its rooms: their
// sessions lived in the process that stopped.
func TestFederationRemoteOccupantsRestart(t *testing.T) {
	t.Parallel()
	a, b := startFederated(t, dialback)
	room := "hall@conference." + a.domain
	rs := fedDriver(t, "stop-room", a, b, "juliet", "romeo", room, strconv.Itoa(a.cmd.Process.Pid))
	t.Logf("slixmpp saw: %v", rs)
	if r := find(t, rs, "out"); !strings.Contains(fmt.Sprint(r["codes"]), "332") {
		t.Errorf("the occupant from the other server was told %v when the room's server stopped; want 332", r)
	}
	a.restart(t)
	rs = fedDriver(t, "others", a, b, "juliet", "romeo", room)
	t.Logf("slixmpp saw: %v", rs)
	if r := find(t, rs, "joined"); fmt.Sprint(r["others"]) != "[]" {
		t.Errorf("after the restart the room still has %v; want nobody from the other server", r["others"])
	}
	// The other way: an account of a stopping server leaves the rooms it
	// is in elsewhere (its occupancy lived in the process that stopped).
	elsewhere := "court@conference." + b.domain
	rs = fedDriver(t, "stop-joiner", a, b, "juliet", "romeo", elsewhere, strconv.Itoa(a.cmd.Process.Pid))
	t.Logf("slixmpp saw: %v", rs)
	if r := find(t, rs, "left"); r["type"] != "unavailable" || fmt.Sprint(r["codes"]) != "[]" {
		t.Errorf("when its server stopped, the account's occupancy of a room elsewhere %v; want it left (not removed as a ghost, 333)", r)
	}
	a.restart(t)
	// Its nick is free again: another user takes it, and finds the room's
	// creator alone there.
	rs = fedDriver(t, "others", b, a, "juliet", "romeo", elsewhere)
	t.Logf("slixmpp saw: %v", rs)
	if r := find(t, rs, "joined"); r["type"] != "available" || fmt.Sprint(r["others"]) != "["+elsewhere+"/Beta]" {
		t.Errorf("after its server's restart the room elsewhere: %v; want its nick free and only the creator in", r)
	}
}
