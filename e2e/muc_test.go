package e2e

import (
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
)

// The group chat tests drive Annals' MUC service with slixmpp
// (clients/slix_muc.py) and xmpp.js (clients/xmppjs/muc.mjs); the
// drivers print what the clients saw, the assertions are here.

func slixMUC(t *testing.T, s *server, args ...string) []result {
	t.Helper()
	return runDriver(t, "/usr/bin/python3", append([]string{"clients/slix_muc.py", strconv.Itoa(s.port)}, args...)...)
}

func codesOf(r result) []int {
	var out []int
	list, _ := r["codes"].([]any)
	for _, c := range list {
		f, _ := c.(float64)
		out = append(out, int(f))
	}
	return out
}

func condition(r result) string {
	e, _ := r["error"].(map[string]any)
	return str(e["condition"])
}

// presences returns the presence events a client saw in a phase.
func presences(rs []result, who, phase string) []result {
	var out []result
	for _, r := range all(rs, "presence") {
		if r["who"] == who && r["phase"] == phase {
			out = append(out, r)
		}
	}
	return out
}

func counts(t *testing.T, r result, field string) map[string]float64 {
	t.Helper()
	m, _ := r[field].(map[string]any)
	out := map[string]float64{}
	for k, v := range m {
		out[k], _ = v.(float64)
	}
	return out
}

// One account on two clients is one occupant: a second client attaching
// shows nothing to the others; a groupchat message reaches both clients
// and lands once in the account's archive (and once in the room's); a
// nick change from one client reaches the other; a client that drops only
// detaches; an explicit exit from the other leaves the room once; a later
// client finds what was said meanwhile in its archive, once.
func TestMUCAttachSlixmpp(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	rs := slixMUC(t, s, "attach", "romeo@localhost", "montague", "juliet@localhost", "capulet", "verona")
	if n := find(t, rs, "second-occupant")["presences_seen"]; n != 0.0 {
		t.Errorf("juliet saw romeo's second client join (%v presences)", n)
	}
	deliveries := all(rs, "delivery")
	if len(deliveries) != 2 {
		t.Fatalf("deliveries: %v", deliveries)
	}
	first := counts(t, deliveries[0], "counts")
	if !reflect.DeepEqual(first, map[string]float64{"romeo/desk": 1, "romeo/phone": 1, "juliet/balcony": 1}) {
		t.Errorf("first message reached %v, want each client once", first)
	}
	ids, _ := deliveries[0]["stanza_ids"].(map[string]any)
	for _, who := range []string{"romeo/desk", "romeo/phone"} {
		copies, _ := ids[who].([]any)
		if len(copies) != 1 {
			t.Errorf("%s: %v", who, ids[who])
			continue
		}
		var bys []string
		for _, x := range copies[0].([]any) {
			bys = append(bys, str(x.(map[string]any)["by"]))
		}
		slices.Sort(bys)
		if !reflect.DeepEqual(bys, []string{"romeo@localhost", "verona@conference.localhost"}) {
			t.Errorf("%s's copy has stanza-ids by %v, want by the room and by the account", who, bys)
		}
	}
	check := find(t, rs, "archive-check")
	for field, want := range map[string]float64{"own_counts": 1, "own_without_include_counts": 0, "room_counts": 1} {
		for id, n := range counts(t, check, field) {
			if n != want {
				t.Errorf("%s: message %s %v times, want %v", field, id, n, want)
			}
		}
	}
	var desk303 bool
	for _, p := range presences(rs, "romeo/desk", "nick-change") {
		desk303 = desk303 || slices.Contains(codesOf(p), 303)
	}
	if !desk303 {
		t.Error("the other client of the account was not told of the nick change (303)")
	}
	if seen, _ := deliveries[1]["juliet_saw_unavailable"].([]any); len(seen) != 0 {
		t.Errorf("a dropped client looked like an exit to juliet: %v", seen)
	}
	if c := counts(t, deliveries[1], "counts"); c["romeo/desk"] != 1 {
		t.Errorf("after the drop the remaining client got %v", c)
	}
	left := find(t, rs, "left")
	if j, _ := left["juliet_unavailable"].([]any); len(j) != 1 {
		t.Errorf("juliet saw the exit %d times: %v", len(j), j)
	}
	if d, _ := left["desk_self_unavailable"].([]any); len(d) != 1 {
		t.Errorf("desk's own exit: %v", d)
	}
	late := counts(t, find(t, rs, "late-check"), "counts")
	for id, n := range late {
		if want := map[bool]float64{true: 1, false: 0}[len(id) > 1 && id[:2] == "g2"]; n != want {
			t.Errorf("late client's archive after the first message: %s %v times, want %v (%v)", id, n, want, late)
		}
	}
}

// The same with xmpp.js clients.
func TestMUCAttachXmppjs(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	dir, _ := filepath.Abs("clients/xmppjs")
	rs := runDriver(t, "node", filepath.Join(dir, "muc.mjs"), strconv.Itoa(s.port), "attach",
		"romeo@localhost", "montague", "juliet@localhost", "capulet", "verona")
	if n := find(t, rs, "second-occupant")["presences_seen"]; n != 0.0 {
		t.Errorf("juliet saw romeo's second client join (%v presences)", n)
	}
	if c := counts(t, find(t, rs, "delivery"), "counts"); !reflect.DeepEqual(c, map[string]float64{"romeo/desk": 1, "romeo/phone": 1, "juliet/balcony": 1}) {
		t.Errorf("message reached %v", c)
	}
	check := find(t, rs, "archive-check")
	if check["own_count"] != 1.0 || check["own_without_include_count"] != 0.0 || check["room_count"] != 1.0 {
		t.Errorf("archives: %v", check)
	}
}

// A kick and a ban reach every client of the account, with 307 and 301;
// a banned account cannot come back.
func TestMUCModeration(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"owner@localhost": "pw-owner", "user@localhost": "pw-user"})
	rs := slixMUC(t, s, "moderation", "owner@localhost", "pw-owner", "user@localhost", "pw-user", "court")
	for _, step := range []struct {
		phase string
		code  int
	}{{"kick", 307}, {"ban", 301}} {
		for _, who := range []string{"user/a", "user/b"} {
			ok := false
			for _, p := range presences(rs, who, step.phase) {
				c := codesOf(p)
				ok = ok || p["type"] == "unavailable" && slices.Contains(c, step.code) && slices.Contains(c, 110)
			}
			if !ok {
				t.Errorf("%s did not get its %s (%d, 110): %v", who, step.phase, step.code, presences(rs, who, step.phase))
			}
		}
	}
	// One client's exit: the other client of the account is told, the
	// owner sees one exit.
	var toldB bool
	for _, p := range presences(rs, "user/b", "leave") {
		toldB = toldB || p["type"] == "unavailable" && slices.Contains(codesOf(p), 110)
	}
	if !toldB {
		t.Errorf("the other client was not told that the account left: %v", presences(rs, "user/b", "leave"))
	}
	if n := len(presences(rs, "owner", "leave")); n != 1 {
		t.Errorf("the owner saw the exit %d times", n)
	}
	if c := condition(find(t, rs, "rejoin-banned")); c != "forbidden" {
		t.Errorf("banned account rejoining: %q, want forbidden", c)
	}
}

// The XEP-0045 flows ordinary clients use, with slixmpp's MUC plugin.
func TestMUCFlows(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"owner@localhost": "pw-owner", "user@localhost": "pw-user"})
	rs := slixMUC(t, s, "flows", "owner@localhost", "pw-owner", "user@localhost", "pw-user", "orchard")
	info := find(t, rs, "room-info")
	features, _ := info["info"].(map[string]any)["features"].([]any)
	for _, f := range []string{"muc_membersonly", "muc_moderated", "muc_passwordprotected"} {
		if !slices.Contains(features, any(f)) {
			t.Errorf("configured room lacks %s: %v", f, features)
		}
	}
	inv := find(t, rs, "invite-seen")
	if inv["count"] != 1.0 || !slices.Contains(inv["members"].([]any), any("user@localhost")) {
		t.Errorf("invitation: %v", inv)
	}
	joins := all(rs, "join-muc-wait")
	if len(joins) != 2 || condition(joins[0]) != "not-authorized" || joins[1]["ok"] != true {
		t.Errorf("joins without and with the password: %v", joins)
	}
	voice := find(t, rs, "voice-check")
	visitor, _ := voice["visitor_post"].(map[string]any)
	participant, _ := voice["participant_post"].(map[string]any)
	if errs, _ := visitor["sender_errors"].([]any); len(errs) != 1 || visitor["owner_got"] != 0.0 {
		t.Errorf("a visitor's post: %v", visitor)
	}
	if participant["owner_got"] != 1.0 {
		t.Errorf("a participant's post: %v", participant)
	}
	if subj, _ := find(t, rs, "subject-seen")["subjects"].([]any); len(subj) == 0 {
		t.Error("the subject change was not seen")
	}
	hist := find(t, rs, "history-seen")
	sent := strs(hist["sent"])
	var got []string
	for _, d := range hist["delayed"].([]any) {
		if m := d.(map[string]any); str(m["id"]) != "" {
			got = append(got, str(m["id"]))
		}
	}
	if !reflect.DeepEqual(got, sent[len(sent)-2:]) {
		t.Errorf("history with maxstanzas=2: %v, want %v", got, sent[len(sent)-2:])
	}
}

// Bad input gets the XEP-0045 error and leaves the room as it was.
func TestMUCBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"owner@localhost": "pw-owner", "user@localhost": "pw-user"})
	rs := slixMUC(t, s, "bad", "owner@localhost", "pw-owner", "user@localhost", "pw-user", "hall")
	want := map[string]string{
		"empty-nick":           "jid-malformed",
		"spaces-nick":          "jid-malformed",
		"taken-nick":           "conflict",
		"non-admin-kick":       "forbidden",
		"non-admin-self-owner": "forbidden",
		"non-admin-devoice":    "forbidden",
		"non-owner-config":     "forbidden",
		"config-unknown-field": "bad-request",
		"config-bad-boolean":   "bad-request",
		"config-bad-number":    "bad-request",
	}
	for event, cond := range want {
		if got := condition(find(t, rs, event)); got != cond {
			t.Errorf("%s: %q, want %q", event, got, cond)
		}
	}
	if a, _ := find(t, rs, "non-occupant-message")["answer"].(map[string]any); a == nil || condition(result(a)) != "not-acceptable" {
		t.Errorf("message from a non-occupant: %v", a)
	}
	// The owner's view of the room after each refused step is the view
	// before it.
	var before any
	for _, st := range all(rs, "state") {
		switch st["after"] {
		case "setup", "join":
			before = st["roster"]
		default:
			if !reflect.DeepEqual(st["roster"], before) {
				t.Errorf("after %s the room is %v, before it was %v", st["after"], st["roster"], before)
			}
		}
	}
}

// Bookmarks follow occupancy both ways: joining from one client sets
// autojoin and the other client is told; leaving clears it; a client
// publishing autojoin=true makes the account join, false makes it leave.
// A bookmark without autojoin never holds the account in: a client's
// join leaves the bookmark as it is, and the account leaves with its
// last client.
func TestMUCBookmarks(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"romeo@localhost": "montague"})
	rs := slixMUC(t, s, "bookmarks", "romeo@localhost", "montague", "garden")
	for _, p := range all(rs, "publish-bookmark") {
		if p["ok"] != true {
			t.Fatalf("publishing a bookmark: %v", p)
		}
	}
	occ := map[string]string{}
	for _, o := range all(rs, "occupants") {
		occ[str(o["after"])] = str(o["count"])
	}
	if !reflect.DeepEqual(occ, map[string]string{"leave": "0", "publish-true": "1", "publish-false": "0",
		"join-unheld": "1", "unavailable-unheld": "0", "publish-false-attached": "1"}) {
		t.Errorf("occupants after each step: %v", occ)
	}
	priv := find(t, rs, "private-bookmarks")
	if confs, _ := priv["conferences"].([]any); priv["ok"] != true || len(confs) != 1 ||
		confs[0].(map[string]any)["autojoin"] != "true" {
		t.Errorf("XEP-0048 view of the bookmarks: %v", priv)
	}
	want := map[string]string{"join": "true", "leave": "false", "publish-true": "true", "publish-false": "false",
		"publish-false-attached": "false"}
	for _, who := range []string{"desk", "phone"} {
		got := map[string]string{}
		for _, ev := range all(rs, "bookmark-event") {
			if ev["who"] == who && ev["id"] == "garden@conference.localhost" {
				got[str(ev["phase"])] = str(ev["autojoin"])
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s's bookmark notifications (autojoin by step): %v, want %v", who, got, want)
		}
	}
}

// Voice requests (XEP-0045 §7.13, §8.6, issue 14 item 10), with
// slixmpp's own request_voice: a visitor in a moderated room asks, the
// moderator's client gets the approval form and submits it, and the
// visitor speaks; asking again within the interval, or as a participant,
// is refused.
func TestMUCVoiceRequests(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"owner@localhost": "pw-owner", "user@localhost": "pw-user"})
	rs := slixMUC(t, s, "voice", "owner@localhost", "pw-owner", "user@localhost", "pw-user", "senate")
	if j := find(t, rs, "visitor-joined"); j["ok"] != true || j["role"] != "visitor" {
		t.Fatalf("the user joins the moderated room as a visitor: %v", j)
	}
	if v := find(t, rs, "visitor-says"); condition(v) != "forbidden" {
		t.Errorf("a visitor's groupchat: %v, want forbidden", v)
	}
	f := find(t, rs, "approval-form")
	form, _ := f["form"].(map[string]any)
	if f["frm"] != "senate@conference.localhost" || form["muc#jid"] != "user@localhost" || form["muc#roomnick"] != "user" ||
		form["muc#role"] != "participant" || form["muc#request_allow"] != "false" {
		t.Errorf("the moderator's approval form: %v", f)
	}
	if r := find(t, rs, "second-request"); condition(r) != "resource-constraint" {
		t.Errorf("a second request at once: %v, want resource-constraint", r)
	}
	if v := find(t, rs, "voiced"); v["role"] != "participant" {
		t.Errorf("after the approval: %v, want the participant role", v)
	}
	if h := find(t, rs, "heard"); h["ok"] != true {
		t.Errorf("the moderator did not hear the voiced user: %v", h)
	}
	if r := find(t, rs, "participant-request"); condition(r) != "bad-request" {
		t.Errorf("a participant asking for voice: %v, want bad-request", r)
	}
}
