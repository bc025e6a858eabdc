package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// PEP for contacts (issue 14), with slixmpp's own plugins (XEP-0084,
// 0172, 0060 with publish-options): alice's avatar and nickname (access
// model presence) are bob's to read, her contact, and not carol's, a
// stranger (not-authorized, presence-subscription-required), and bob's
// are hers; her OMEMO
// device list and bundle (open) are anyone's; a node she has not made is
// item-not-found to all.
func TestPEPForContacts(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice@localhost": "pw", "bob@localhost": "pw", "carol@localhost": "pw"})
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_pep.py", "127.0.0.1:"+strconv.Itoa(s.port), "pw", "alice@localhost", "bob@localhost", "carol@localhost")
	got := map[string]result{}
	for _, r := range rs {
		if r["event"] == "read" {
			got[fmt.Sprint(r["who"], " ", r["what"])] = r
		}
	}
	readable := func(who, what string) {
		t.Helper()
		r := got[who+" "+what]
		if r == nil || r["error"] != nil || len(r["ids"].([]any)) == 0 {
			t.Errorf("%s reading alice's %s: %v; want her items", who, what, r)
		}
	}
	refused := func(who, what, cond, pubsub string) {
		t.Helper()
		r := got[who+" "+what]
		e, _ := r["error"].(map[string]any)
		if e == nil || e["condition"] != cond || pubsub != "" && e["pubsub"] != pubsub {
			t.Errorf("%s reading alice's %s: %v; want %s %s", who, what, r, cond, pubsub)
		}
	}
	for _, who := range []string{"alice", "bob"} {
		for _, what := range []string{"avatar-data", "avatar-metadata", "nick", "devicelist", "bundle"} {
			readable(who, what)
		}
		if r := got[who+" avatar-data"]; r["avatar_intact"] != true {
			t.Errorf("%s got alice's avatar: %v; want its bytes under its SHA-1", who, r)
		}
	}
	// And the other way: alice reads bob's, her contact's.
	for _, what := range []string{"avatar-data", "avatar-metadata", "nick", "devicelist", "bundle"} {
		readable("alice", "bob's "+what)
	}
	if r := got["alice bob's avatar-data"]; r["avatar_intact"] != true {
		t.Errorf("alice got bob's avatar: %v; want its bytes under its SHA-1", r)
	}
	readable("carol", "devicelist")
	readable("carol", "bundle")
	for _, what := range []string{"avatar-data", "avatar-metadata", "nick"} {
		refused("carol", what, "not-authorized", "presence-subscription-required")
	}
	// NOTSPEC(XEP-0060 §6.5.9.11): the owner reads a node it never made
	// as empty, as Annals always answered it (clients ask for their
	// bookmarks before they have any); anyone else gets item-not-found.
	if r := got["alice no-such-node"]; r == nil || r["error"] != nil {
		t.Errorf("alice reading a node she never made: %v; want it empty", r)
	}
	for _, who := range []string{"bob", "carol"} {
		refused(who, "no-such-node", "item-not-found", "")
	}
}

// A contact whose client asks for a node's events (+notify in its
// XEP-0115 caps) hears of alice's publications; a stranger asking the
// same hears of none; a client of the contact's that comes online later
// gets the last item of each such node.
func TestPEPNotifications(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice@localhost": "pw", "bob@localhost": "pw", "carol@localhost": "pw"})
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_pep.py", "127.0.0.1:"+strconv.Itoa(s.port), "pw", "alice@localhost", "bob@localhost", "carol@localhost")
	events := map[string][]string{}
	for _, r := range rs {
		if r["event"] == "events" {
			for _, ev := range r["events"].([]any) {
				pair := ev.([]any)
				events[fmt.Sprint(r["who"])] = append(events[fmt.Sprint(r["who"])], fmt.Sprint(pair[0], " ", pair[1]))
			}
		}
	}
	want := []string{"alice@localhost urn:xmpp:avatar:metadata", "alice@localhost http://jabber.org/protocol/nick",
		"alice@localhost eu.siacs.conversations.axolotl.devicelist"}
	for _, who := range []string{"bob", "bob-phone"} {
		for _, w := range want {
			if !slices.Contains(events[who], w) {
				t.Errorf("%s heard %v; want %q among them", who, events[who], w)
			}
		}
		for _, ev := range events[who] {
			if strings.Contains(ev, "avatar:data") || strings.Contains(ev, "bundles") {
				t.Errorf("%s heard %q, which it did not ask for", who, ev)
			}
		}
	}
	if len(events["carol"]) != 0 {
		t.Errorf("carol, a stranger, heard %v", events["carol"])
	}
}

// PEP events reach contacts at another server (XEP-0163 §4.3): alice's
// server learns the caps of bob's client from its presence (asking it
// once over federation) and sends alice's nickname and device list to
// it; bob's phone, online afterwards, gets the last items; carol, a
// stranger at bob's server asking for the same events, hears nothing.
func TestPEPNotificationsFederated(t *testing.T) {
	t.Parallel()
	a, b := startFederatedVia(t, dialback, nil, "carol")
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_pep_fed.py", a.c2s(), "juliet@"+a.domain, "pw-"+a.domain,
		b.c2s(), "romeo@"+b.domain, "carol@"+b.domain, "pw-"+b.domain)
	events := map[string][]string{}
	for _, r := range rs {
		if r["event"] == "events" {
			for _, ev := range r["events"].([]any) {
				pair := ev.([]any)
				events[fmt.Sprint(r["who"])] = append(events[fmt.Sprint(r["who"])], fmt.Sprint(pair[0], " ", pair[1]))
			}
		}
	}
	want := []string{"juliet@capulet.test http://jabber.org/protocol/nick", "juliet@capulet.test eu.siacs.conversations.axolotl.devicelist"}
	for _, who := range []string{"bob", "bob-phone"} {
		for _, w := range want {
			if !slices.Contains(events[who], w) {
				t.Errorf("%s heard %v; want %q among them", who, events[who], w)
			}
		}
	}
	if len(events["carol"]) != 0 {
		t.Errorf("carol, a stranger, heard %v", events["carol"])
	}
}
