package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// The two clients of the IQ tests: a is romeo's, b juliet's; b-gone is a
// client of juliet's that logged in and out before the others started.
var iqClients = map[string]string{
	"a":      "romeo@localhost/desk",
	"b":      "juliet@localhost/phone",
	"b-gone": "juliet@localhost/tablet",
}

var iqPeer = map[string]string{"a": "b", "b": "a"}

// TestIQBetweenClients (issue 11, IQ routing): two slixmpp clients of two
// accounts ask each other, full JID to full JID, in both directions, for
// disco#info, software version and ping, and send each other 20 KiB over
// an in-band bytestream (XEP-0047); each client answers itself. An IQ to
// a resource that is not connected gets service-unavailable from the
// address it was sent to.
//
// Entity capabilities (XEP-0115) as at login: clients that came earlier
// made the accounts contacts both ways; each client's caps plugin looks
// up the hash in the other's presence, which the server sends in answer
// to the asker's initial presence (probe) or broadcasts to contacts, and
// the other client answers.
func TestIQBetweenClients(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"romeo@localhost": "r-pw", "juliet@localhost": "j-pw"})
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_iq.py", strconv.Itoa(s.port), "between",
		"romeo@localhost", "r-pw", "juliet@localhost", "j-pw")
	checkIQsBetween(t, rs, map[string]string{"a": "client-a", "b": "client-b"})
	checkOffline(t, rs)
	checkContacts(t, all(rs, "subscription"))
	checkCaps(t, rs, map[string]string{"a": slixCapsNode, "b": slixCapsNode})
	checkCapsVerified(t, rs, 2)
}

// TestIQBetweenClientsXmppjs: the same with two xmpp.js clients, which
// answer every IQ with handlers of their own and announce their caps by
// hand; the test recomputes each hash from the other client's answer.
func TestIQBetweenClientsXmppjs(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("clients/xmppjs/node_modules/@xmpp/client"); err != nil {
		t.Fatal("xmpp.js is not installed: make test runs npm ci in e2e/clients/xmppjs")
	}
	s := startServer(t, map[string]string{"romeo@localhost": "r-pw", "juliet@localhost": "j-pw"})
	dir, _ := filepath.Abs("clients/xmppjs")
	rs := runDriver(t, "node", filepath.Join(dir, "iq.mjs"), strconv.Itoa(s.port), "between",
		"romeo@localhost", "r-pw", "juliet@localhost", "j-pw")
	checkIQsBetween(t, rs, map[string]string{"a": "xmppjs-a", "b": "xmppjs-b"})
	checkOffline(t, rs)
	checkContacts(t, all(rs, "subscription"))
	checkCaps(t, rs, map[string]string{"a": xmppjsCapsNode, "b": xmppjsCapsNode})
}

// checkIQsBetween checks the facts both drivers print for IQs between
// clients a and b, whose software names (XEP-0092) are names[a], names[b].
func checkIQsBetween(t *testing.T, rs []result, names map[string]string) {
	t.Helper()
	for _, kind := range []string{"disco", "version", "ping", "ibb"} {
		for _, who := range []string{"a", "b"} {
			r := findWho(t, rs, kind, who)
			peer := iqClients[iqPeer[who]]
			// The answer comes from the full JID asked, as the client
			// wrote it, not from the server on its behalf.
			if r["ok"] != true || str(r["to"]) != peer || str(r["sender"]) != peer {
				t.Errorf("%s from %s to %s: %v", kind, who, peer, r)
				continue
			}
			switch kind {
			case "disco":
				// The server advertises neither: only the client answers with them.
				for _, f := range []string{"urn:xmpp:ping", "http://jabber.org/protocol/ibb"} {
					if !slices.Contains(strs(r["features"]), f) {
						t.Errorf("disco#info from %s to %s lacks %s: %v", who, peer, f, r["features"])
					}
				}
			case "version":
				if want := names[iqPeer[who]]; str(r["name"]) != want {
					t.Errorf("version from %s: %q, want the other client's %q", who, r["name"], want)
				}
			case "ibb":
				checkIBB(t, rs, r)
			}
		}
	}
}

// checkOffline checks the answers to IQs to resources not connected, a
// to juliet's client that has left, b to a resource romeo never had.
func checkOffline(t *testing.T, rs []result) {
	t.Helper()
	// RFC 6121 §8.5.3.2.1: an IQ to a full JID with no connected resource
	// is answered service-unavailable; its from is the address the IQ was
	// sent to, which clients match the answer on (RFC 6120 §8.2.3).
	for who, to := range map[string]string{"a": iqClients["b-gone"], "b": "romeo@localhost/nowhere"} {
		r := findWho(t, rs, "offline", who)
		if str(r["to"]) != to || r["ok"] != false || str(r["error"]) != "service-unavailable" ||
			str(r["error_type"]) != "cancel" || str(r["sender"]) != to {
			t.Errorf("IQ from %s to %s, not connected: %v; want a service-unavailable error of type cancel from %s", who, to, r, to)
		}
	}
}

// checkIBB checks that the bytes sent in one in-band bytestream (fact
// sent) are those the other client received, in 4 KiB blocks, from the
// sender's full JID.
func checkIBB(t *testing.T, rs []result, sent result) {
	t.Helper()
	who := str(sent["who"])
	var got result
	for _, r := range all(rs, "ibb-received") {
		if r["sid"] == sent["sid"] {
			got = r
		}
	}
	switch {
	case got == nil:
		t.Errorf("IBB stream %v from %s: the receiver printed nothing", sent["sid"], who)
	case str(got["who"]) != iqPeer[who] || got["ok"] != true || str(got["sender"]) != iqClients[who]:
		t.Errorf("IBB from %s: received %v", who, got)
	case sent["size"] != float64(20*1024) || got["size"] != sent["size"] || str(got["sha256"]) != str(sent["sha256"]):
		t.Errorf("IBB from %s: sent %v bytes (sha256 %v), received %v (sha256 %v)", who, sent["size"], sent["sha256"], got["size"], got["sha256"])
	case got["chunks"] != float64(5):
		t.Errorf("IBB from %s: %v blocks received, want 5 of 4 KiB", who, got["chunks"])
	}
}

// findWho returns the one fact of event printed by client who.
func findWho(t *testing.T, rs []result, event, who string) result {
	t.Helper()
	var found []result
	for _, r := range all(rs, event) {
		if r["who"] == who {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %q facts from %s, want 1: %v", len(found), event, who, rs)
	}
	return found[0]
}
