package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
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

// TestPushNotifications: juliet@annals.test's client "phone" enables push
// to a node of push.prosody.test; romeo@annals.test sends her chat
// messages while the phone is CSI-inactive, active, detached awaiting
// resumption, resumed, offline, and offline after disabling, and her
// "desk" is connected and active all along; a notification must reach
// the node exactly when the phone cannot get the message itself.
// Registrations whose publishes fail are disabled: at once on an error
// of type auth or cancel, after three in a row of type modify, each with
// AccountPushDisabled in juliet's stream. A disable
// that names no node ends every registration to the service. Last, a
// registration outlives a restart, and with --push-with-sender and
// --push-with-body the notification carries them.
func TestPushNotifications(t *testing.T) {
	t.Parallel()
	start := time.Now()
	f := newFederation(t, pushHosts)
	pr, admin := f.startAppServer(t, nil)
	data := t.TempDir()
	addUsers(t, data, map[string]string{"juliet@annals.test": "juliet-pw", "romeo@annals.test": "romeo-pw"})
	route := []string{"--s2s-route", pushService + "=" + pr.s2s}
	s, cmd := f.serveAnnalsCmd(t, data, []*peer{pr}, route...)
	juliet, romeo := annalsAccount(s, "juliet@annals.test", "juliet-pw"), annalsAccount(s, "romeo@annals.test", "romeo-pw")
	steps := []string{fmt.Sprintf("up %v", ms3(time.Since(start)))}
	timed := func(name string, run func(t *testing.T)) {
		t0 := time.Now()
		t.Run(name, run)
		steps = append(steps, fmt.Sprintf("%s %v", name, ms3(time.Since(t0))))
	}
	timed("states", func(t *testing.T) {
		rs := f.slixPush(t, "push", append(accountArgs(admin, juliet, romeo), pushService, "juliet-phone")...)
		checkPushStates(t, rs)
		// Prosody's log shows each publish as it came: from the
		// account's bare JID (its pubsub shows only the bare JID of any
		// publisher), one for each notification.
		from := pushIQs(pr)
		if fmt.Sprint(from) != "[juliet@annals.test juliet@annals.test juliet@annals.test]" {
			t.Errorf("IQ sets to %s came from %v; want 3, each from juliet@annals.test", pushService, from)
		}
	})
	timed("errors", func(t *testing.T) {
		before := len(pushIQs(pr))
		f.slixPush(t, "provision", append(accountArgs(admin), pushService,
			"juliet-tablet:publishers", "juliet-tv:open", "juliet-watch:open")...)
		rs := f.slixPush(t, "errors", append(accountArgs(juliet, romeo), pushService, "2",
			"tablet:juliet-tablet", "tv:juliet-tv:pubsub#access_model=whitelist", "watch:juliet-watch:pubsub#max_items=many")...)
		for _, r := range all(rs, "enable") {
			if r["ok"] != true {
				t.Fatalf("%s could not enable push: %v", r["who"], r["error"])
			}
		}
		// forbidden (auth) and precondition-not-met (cancel): disabled
		// at the first; bad-request (modify) twice: not yet.
		nodes := []string{"juliet-phone", "juliet-tablet", "juliet-tv", "juliet-watch"}
		got := waitPushDisabled(t, data, "juliet@annals.test", []string{"juliet-tablet", "juliet-tv"}, nodes)
		if got["juliet-watch"] {
			t.Errorf("the watch's registration was disabled after two modify errors; want three in a row")
		}
		f.slixPush(t, "send", append(accountArgs(romeo, juliet), "1")...)
		waitPushDisabled(t, data, "juliet@annals.test", nodes[1:], nodes)
		// A disabled registration publishes no more: the tablet and the
		// tv once, the watch three times.
		time.Sleep(300 * time.Millisecond)
		if n := len(pushIQs(pr)) - before; n != 5 {
			t.Errorf("%d publishes reached %s; want 5 (the tablet's and the tv's first, the watch's three)", n, pushService)
		}
	})
	timed("disable without node", func(t *testing.T) {
		f.slixPush(t, "provision", append(accountArgs(admin), pushService, "juliet-pad-1:open", "juliet-pad-2:open")...)
		rs := f.slixPush(t, "disable-all", append(accountArgs(admin, juliet, romeo), pushService, "juliet-pad-1", "juliet-pad-2")...)
		for _, r := range append(all(rs, "enable"), all(rs, "disable")...) {
			if r["ok"] != true || r["empty"] != true {
				t.Fatalf("%s: %v; want an empty result", r["event"], r)
			}
		}
		for _, r := range all(rs, "items") {
			if its, _ := r["items"].([]any); r["ok"] != true || len(its) != 0 {
				t.Errorf("%s holds %v after the pad disabled push to %s with no node; want nothing", r["node"], its, pushService)
			}
		}
	})
	timed("with sender and body", func(t *testing.T) {
		// The laptop's registration is made before a restart, and
		// used after it.
		f.slixPush(t, "provision", append(accountArgs(admin), pushService, "juliet-laptop:open")...)
		rs := f.slixPush(t, "errors", append(accountArgs(juliet, romeo), pushService, "0", "laptop:juliet-laptop")...)
		if r := find(t, rs, "enable"); r["ok"] != true {
			t.Fatalf("the laptop could not enable push: %v", r)
		}
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		s := f.serveAnnals(t, data, []*peer{pr}, append(route, "--push-with-sender", "--push-with-body")...)
		juliet, romeo := annalsAccount(s, "juliet@annals.test", "juliet-pw"), annalsAccount(s, "romeo@annals.test", "romeo-pw")
		body := "push me: " + str(find(t, f.slixPush(t, "send", append(accountArgs(romeo, juliet), "1")...), "sent")["id"])
		its := find(t, f.slixPush(t, "items", append(accountArgs(admin), pushService, "juliet-laptop", "1")...), "items")["items"].([]any)
		if len(its) != 1 {
			t.Fatalf("juliet-laptop holds %v; want one notification", its)
		}
		fields, _ := its[0].(map[string]any)["fields"].(map[string]any)
		t.Logf("with sender and body: %v", fields)
		if sender := fmt.Sprint(fields["last-message-sender"]); sender != "[romeo@annals.test/orchard]" && sender != "[romeo@annals.test]" {
			t.Errorf("last-message-sender %s; want romeo's JID", sender)
		}
		if fmt.Sprint(fields["last-message-body"]) != "["+body+"]" {
			t.Errorf("last-message-body %v; want [%s]", fields["last-message-body"], body)
		}
	})
	t.Logf("%s; in all %v", strings.Join(steps, ", "), ms3(time.Since(start)))
}

// pushIQ is how Prosody 0.12 logs an IQ that came over s2s, at debug
// level: its one group is the start tag's attributes, in no set order
// (a Lua table's).
var (
	pushIQ  = regexp.MustCompile(`Received\[s2sin\]: <iq ([^>]*)>`)
	xmlAttr = regexp.MustCompile(`([\w:]+)='([^']*)'`)
)

// pushIQs lists the from of each IQ set to the push service that
// Prosody p logged.
func pushIQs(p *peer) []string {
	var from []string
	for _, m := range pushIQ.FindAllStringSubmatch(p.logText(), -1) {
		attrs := map[string]string{}
		for _, a := range xmlAttr.FindAllStringSubmatch(m[1], -1) {
			attrs[a[1]] = a[2]
		}
		if attrs["type"] == "set" && attrs["to"] == pushService {
			from = append(from, attrs["from"])
		}
	}
	return from
}

// checkPushStates checks the facts of slix_push.py's push scenario.
func checkPushStates(t *testing.T, rs []result) {
	t.Helper()
	if r := find(t, rs, "provision"); r["ok"] != true {
		t.Fatalf("provision: %v", r)
	}
	if features := fmt.Sprint(find(t, rs, "disco")["features"]); !strings.Contains(features, "urn:xmpp:push:0") {
		t.Errorf("juliet's disco#info lacks urn:xmpp:push:0: %s", features)
	}
	if r := find(t, rs, "enable"); r["ok"] != true || r["empty"] != true {
		t.Fatalf("enable: %v; want an empty result", r)
	}
	if r := find(t, rs, "disable"); r["ok"] != true || r["empty"] != true {
		t.Errorf("disable: %v; want an empty result", r)
	}
	if r := find(t, rs, "resumed"); r["ok"] != true {
		t.Errorf("the phone's session was not resumed: %v", r)
	}
	for _, r := range all(rs, "received") {
		if r["body"] == nil {
			t.Errorf("the connected phone did not get the %s message", r["step"])
		}
	}
	// Which states get a push: the phone cannot take the message itself.
	want := map[string]int{"inactive": 1, "active": 0, "detached": 1, "resumed": 0, "offline": 1, "disabled": 0}
	seen := map[string]bool{}
	first := true
	for _, r := range all(rs, "new-item") {
		step := str(r["step"])
		seen[step] = true
		its, _ := r["items"].([]any)
		if len(its) != want[step] {
			t.Errorf("%s: %d new notifications %v; want %d", step, len(its), its, want[step])
		}
		for _, it := range its {
			item := it.(map[string]any)
			fields, _ := item["fields"].(map[string]any)
			count := fmt.Sprint(fields["message-count"])
			n, err := strconv.Atoi(strings.Trim(count, "[]"))
			if item["form_type"] != "urn:xmpp:push:summary" || err != nil || n < 1 || (first && n != 1) {
				t.Errorf("%s: notification %v; want a summary with message-count a count (the first 1)", step, item)
			}
			first = false
			// Prosody shows the bare JID of any publisher; the account's
			// is the one the protocol says.
			if item["publisher"] != "juliet@annals.test" {
				t.Errorf("%s: notification published by %v; want juliet@annals.test", step, item["publisher"])
			}
			for _, f := range []string{"last-message-body", "last-message-sender"} {
				if _, ok := fields[f]; ok {
					t.Errorf("%s: notification carries %s without --push-with-body/--push-with-sender: %v", step, f, fields)
				}
			}
		}
		t.Logf("%s: %d new after %vs", step, len(its), r["waited"])
	}
	if r := find(t, rs, "desk"); r["received"] != float64(6) {
		t.Errorf("juliet's desk received %v of romeo's 6 messages", r["received"])
	}
	// A late push shows in the next step's count; the last step's, here.
	for _, r := range all(rs, "items") {
		if its, _ := r["items"].([]any); r["step"] == "after" && len(its) != 3 {
			t.Errorf("the node holds %d notifications at the end; want 3: %v", len(its), its)
		}
	}
	for step := range want {
		if !seen[step] {
			t.Errorf("the scenario never reached %s: %v", step, rs)
		}
	}
}

// waitPushDisabled waits (at most 10s) until account's stream holds an
// AccountPushDisabled for each of nodes, and returns the nodes (of all,
// the nodes of every registration) it holds one for.
func waitPushDisabled(t *testing.T, data, account string, nodes, all []string) map[string]bool {
	t.Helper()
	var got map[string]bool
	var events []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got, events = pushDisabled(t, data, account, all)
		missing := false
		for _, n := range nodes {
			missing = missing || !got[n]
		}
		if !missing {
			return got
		}
		if time.Now().After(deadline) {
			t.Errorf("AccountPushDisabled for %v; want one for each of %v. %s's stream:\n%s", got, nodes, account, strings.Join(events, "\n"))
			return got
		}
	}
}

// pushDisabled reads account's stream with annals audit query and returns
// the nodes (of all) named by its AccountPushDisabled events, and every
// event.
func pushDisabled(t *testing.T, data, account string, nodes []string) (map[string]bool, []string) {
	t.Helper()
	out, err := exec.Command(bin, "audit", "query", "--json", "--stream", "account-"+account, "--data", data).CombinedOutput()
	if err != nil {
		t.Fatalf("audit query: %v\n%s", err, out)
	}
	got := map[string]bool{}
	var events []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e struct {
			Type string
			Data json.RawMessage
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		events = append(events, line)
		if e.Type != "AccountPushDisabled" {
			continue
		}
		named := false
		for _, n := range nodes {
			// Whatever the field's name, the event names the node.
			if strings.Contains(string(e.Data), strconv.Quote(n)) {
				got[n], named = true, true
			}
		}
		if !named {
			t.Errorf("an AccountPushDisabled names none of %v: %s", nodes, line)
		}
	}
	return got, events
}
