package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// TestIQBetweenClients (issue 11, IQ routing): two slixmpp clients of two
// accounts ask each other, full JID to full JID, for disco#info, software
// version and ping, and each answers itself; an IQ to a resource that is
// not connected gets service-unavailable.
func TestIQBetweenClients(t *testing.T) {
	s := startServer(t, map[string]string{"romeo@localhost": "r-pw", "juliet@localhost": "j-pw"})
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_iq.py", strconv.Itoa(s.port), "between",
		"romeo@localhost", "r-pw", "juliet@localhost", "j-pw")
	peer := map[string]string{"a": "juliet@localhost/phone", "b": "romeo@localhost/desk"}
	name := map[string]string{"a": "client-b", "b": "client-a"}
	for _, kind := range []string{"disco", "version", "ping"} {
		got := all(rs, kind)
		if len(got) != 2 {
			t.Fatalf("%s: %d answers, want 2: %v", kind, len(got), rs)
		}
		for _, r := range got {
			who := str(r["who"])
			if r["ok"] != true {
				t.Errorf("%s from %s to %s: %v", kind, who, r["to"], r["error"])
				continue
			}
			switch kind {
			case "disco":
				if str(r["sender"]) != peer[who] || !slices.Contains(strs(r["features"]), "urn:xmpp:ping") {
					t.Errorf("disco#info answered by %v with %v", r["sender"], r["features"])
				}
			case "version":
				if str(r["name"]) != name[who] {
					t.Errorf("version from %s: %q, want the other client's %q", who, r["name"], name[who])
				}
			}
		}
	}
	if r := find(t, rs, "offline"); r["ok"] != false || str(r["error"]) != "service-unavailable" {
		t.Errorf("IQ to a resource that is not connected: %v", r)
	}
}

// TestIQBetweenClientsXmppjs: the same with two xmpp.js clients answering
// software version and ping themselves.
func TestIQBetweenClientsXmppjs(t *testing.T) {
	if _, err := os.Stat("clients/xmppjs/node_modules/@xmpp/client"); err != nil {
		t.Fatal("xmpp.js is not installed: make test runs npm ci in e2e/clients/xmppjs")
	}
	s := startServer(t, map[string]string{"romeo@localhost": "r-pw", "juliet@localhost": "j-pw"})
	dir, _ := filepath.Abs("clients/xmppjs")
	rs := runDriver(t, "node", filepath.Join(dir, "iq.mjs"), strconv.Itoa(s.port), "between",
		"romeo@localhost", "r-pw", "juliet@localhost", "j-pw")
	peer := map[string]string{"a": "juliet@localhost/phone", "b": "romeo@localhost/desk"}
	name := map[string]string{"a": "xmppjs-b", "b": "xmppjs-a"}
	for _, kind := range []string{"version", "ping"} {
		got := all(rs, kind)
		if len(got) != 2 {
			t.Fatalf("%s: %d answers, want 2: %v", kind, len(got), rs)
		}
		for _, r := range got {
			who := str(r["who"])
			if r["ok"] != true || str(r["sender"]) != peer[who] {
				t.Errorf("%s from %s: %v", kind, who, r)
			}
			if kind == "version" && str(r["name"]) != name[who] {
				t.Errorf("version from %s: %q, want %q", who, r["name"], name[who])
			}
		}
	}
	if r := find(t, rs, "offline"); r["ok"] != false || str(r["error"]) != "service-unavailable" {
		t.Errorf("IQ to a resource that is not connected: %v", r)
	}
}
