package e2e

import (
	"fmt"
	"testing"
	"time"
)

// Push Notifications (XEP-0357) end to end. The app server is Prosody's
// pubsub component push.prosody.test (Debian's Prosody 0.12, mod_pubsub),
// reached over federation in the namespace of the federation tests
// (peers_test.go): Annals publishes there from the account's bare JID.
//
// What Prosody 0.12's pubsub lets a publisher that is not its admin do
// (TestPushAppServer shows each): nothing at all by default (its default
// affiliation is member, which may not publish), and autocreate_on_publish
// does not change that: it creates nodes for whoever may create them, the
// admins only. So the app server's admin provisions a node per device with
// publish_model open, as an app server does when a device registers, and
// then any JID may publish there, a remote one too. Its errors, each from
// a publish of a push-sending server:
//   - to a node whose publish_model is publishers: forbidden (auth);
//   - to a node that does not exist: forbidden (auth), for the same reason;
//   - with publish-options that name a node configuration field with
//     another value than the node's: conflict with precondition-not-met
//     (cancel);
//   - with publish-options whose value does not parse (pubsub#max_items
//     "many"): bad-request (modify);
//   - a publish-options field that is no node configuration field (a
//     secret) is ignored.

const (
	pushService = "push.prosody.test"
	appAdmin    = "appserver" // the app server's administrator at prosody.test
)

// pushHosts: the federation tests' domains, and the push service at
// Prosody's address.
var pushHosts = map[string]string{
	"prosody.test": prosodyAddr, pushService: prosodyAddr,
	"annals.test": annalsAddr, "rooms.annals.test": annalsAddr,
}

// startAppServer runs Prosody for prosody.test with the push service, its
// admin appserver@prosody.test and users (local part -> password).
func (f *federation) startAppServer(t *testing.T, users map[string]string) (*peer, account) {
	t.Helper()
	all := map[string]string{appAdmin: appAdmin + "-pw"}
	for u, pw := range users {
		all[u] = pw
	}
	pr := f.startProsody(t, peerConfig{domain: "prosody.test", addr: prosodyAddr, users: all,
		pubsub: pushService, admins: []string{appAdmin + "@prosody.test"}})
	return pr, pr.account(appAdmin, appAdmin+"-pw")
}

// slixPush runs clients/slix_push.py inside the namespace.
func (f *federation) slixPush(t *testing.T, scenario string, args ...string) []result {
	t.Helper()
	return runDriver(t, "ip", append([]string{"netns", "exec", f.ns.name, "/usr/bin/python3", "clients/slix_push.py", scenario}, args...)...)
}

func accountArgs(as ...account) []string {
	var args []string
	for _, a := range as {
		args = append(args, a.args()...)
	}
	return args
}

// TestPushAppServer proves the app server without Annals' push: its admin
// provisions nodes; a user of Prosody, then an Annals account (a remote
// JID, its IQs crossing the s2s link as any client's do), publishes
// notifications as a push-sending server does, with the publish-options
// that work and those that provoke each error; the admin and the
// publisher read the node back.
func TestPushAppServer(t *testing.T) {
	t.Parallel()
	start := time.Now()
	f := newFederation(t, pushHosts)
	pr, admin := f.startAppServer(t, map[string]string{"alice": "alice-pw"})
	data := t.TempDir()
	addUsers(t, data, map[string]string{"carol@annals.test": "carol-pw"})
	s := f.serveAnnals(t, data, []*peer{pr}, "--s2s-route", pushService+"="+pr.s2s)
	up := time.Since(start)
	for _, pub := range []struct{ name, jid string }{{"local", "alice@prosody.test"}, {"remote", "carol@annals.test"}} {
		t.Run(pub.name, func(t *testing.T) {
			t0 := time.Now()
			a := pr.account("alice", "alice-pw")
			if pub.name == "remote" {
				a = annalsAccount(s, "carol@annals.test", "carol-pw")
			}
			rs := f.slixPush(t, "appserver", append(accountArgs(admin, a), pushService, pub.name)...)
			t.Logf("%s publisher: %v", pub.name, ms3(time.Since(t0)))
			checkAppServer(t, rs, pub.jid)
		})
	}
	t.Logf("up in %v, in all %v", ms3(up), ms3(time.Since(start)))
}

func checkAppServer(t *testing.T, rs []result, publisher string) {
	t.Helper()
	for _, r := range all(rs, "provision") {
		if r["ok"] != true {
			t.Fatalf("the admin could not provision %s: %v", r["node"], r["error"])
		}
	}
	want := map[string]string{ // probe -> condition/type/pubsub condition ("" for success)
		"plain": "", "secret": "", "matching-option": "", "admin-autocreate": "",
		"mismatching-option": "conflict/cancel/precondition-not-met",
		"invalid-option":     "bad-request/modify/",
		"closed-node":        "forbidden/auth/",
		"missing-node":       "forbidden/auth/",
	}
	got := map[string]string{}
	for _, r := range all(rs, "publish") {
		got[str(r["probe"])] = ""
		if e, ok := r["error"].(map[string]any); ok {
			got[str(r["probe"])] = fmt.Sprintf("%s/%s/%s", e["condition"], e["type"], str(e["pubsub"]))
		}
	}
	for probe, w := range want {
		if g, ok := got[probe]; !ok || g != w {
			t.Errorf("publish %s: got %q (ran: %v), want %q", probe, g, ok, w)
		}
	}
	reads := map[string]result{}
	for _, r := range all(rs, "items") {
		reads[str(r["step"])] = r
	}
	for _, step := range []string{"admin-reads", "publisher-reads"} {
		r := reads[step]
		its, _ := r["items"].([]any)
		if r["ok"] != true || len(its) != 3 {
			t.Errorf("%s: %v; want the 3 notifications published", step, r)
			continue
		}
		for _, it := range its {
			item := it.(map[string]any)
			fields, _ := item["fields"].(map[string]any)
			if item["form_type"] != "urn:xmpp:push:summary" || fmt.Sprint(fields["message-count"]) != "[1]" {
				t.Errorf("%s: item %v is not the notification published", step, item)
			}
			if item["publisher"] != publisher {
				t.Errorf("%s: item published by %v; want %s", step, item["publisher"], publisher)
			}
		}
	}
	if r := reads["admin-reads-closed"]; r["ok"] != true || len(r["items"].([]any)) != 0 {
		t.Errorf("the closed node holds %v; want nothing", r)
	}
}
