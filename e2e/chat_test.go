package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// The 1:1 chat state tests drive Annals with two third-party clients,
// slixmpp (clients/slix_chat.py) and xmpp.js (clients/xmppjs/chat.mjs),
// which print what they saw; the assertions are here.

func slixChat(t *testing.T, s *server, args ...string) []result {
	t.Helper()
	return runDriver(t, "/usr/bin/python3", append([]string{"clients/slix_chat.py", strconv.Itoa(s.port)}, args...)...)
}

func all(rs []result, event string) []result {
	var out []result
	for _, r := range rs {
		if r["event"] == event {
			out = append(out, r)
		}
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// stanzaIDs returns the by/id pairs of a received message's stanza-ids.
func stanzaIDs(r result) [][2]string {
	var out [][2]string
	list, _ := r["stanza_ids"].([]any)
	for _, x := range list {
		m := x.(map[string]any)
		out = append(out, [2]string{str(m["by"]), str(m["id"])})
	}
	return out
}

func strs(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		out = append(out, str(x))
	}
	return out
}

// countsAreOne checks a {message id: count} fact: every id in want, once.
func countsAreOne(t *testing.T, what string, v any, want []string) {
	t.Helper()
	m, _ := v.(map[string]any)
	for _, id := range want {
		if n, _ := m[id].(float64); n != 1 {
			t.Errorf("%s: message %s is there %v times, want once (%v)", what, id, m[id], m)
		}
	}
}

// Romeo and Juliet on two clients each: Romeo's message reaches his other
// client as a <sent/> carbon and both of Juliet's clients; a normal message
// to one of Juliet's clients reaches her other one as a <received/>
// carbon; each archive holds each message once, and Romeo finds his under
// the ID he computed, by ids and by after-id.
func TestChatForkSlixmpp(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	rs := slixChat(t, s, "fork", "romeo@localhost", "montague", "juliet@localhost", "capulet")
	for _, se := range all(rs, "session") {
		sm, _ := se["sm"].(map[string]any)
		if sm["enabled"] != true || str(sm["resume_id"]) != str(se["stream_id"]) || se["carbons"] != "enabled" {
			t.Errorf("%s: stream management %v, carbons %v; want enabled with the bound stream's id %s as resume id",
				se["who"], sm, se["carbons"], se["stream_id"])
		}
	}
	sent := all(rs, "sent")
	if len(sent) != 2 {
		t.Fatalf("sent: %v", sent)
	}
	ids := []string{str(sent[0]["id"]), str(sent[1]["id"])}
	expected := []string{str(sent[0]["expected"]), str(sent[1]["expected"])}
	check := find(t, rs, "archive-check")
	julietIDs := strs(check["juliet_result_ids"])
	if len(julietIDs) != 2 {
		t.Fatalf("juliet's archive: %v", check)
	}
	type copy struct{ kind, id, by, stanzaID string }
	want := map[string][]copy{
		"romeo/desk":   nil,
		"romeo/phone":  {{"carbon-sent", ids[0], "romeo@localhost", expected[0]}, {"carbon-sent", ids[1], "romeo@localhost", expected[1]}},
		"juliet/desk":  {{"direct", ids[0], "juliet@localhost", julietIDs[0]}, {"direct", ids[1], "juliet@localhost", julietIDs[1]}},
		"juliet/phone": {{"direct", ids[0], "juliet@localhost", julietIDs[0]}, {"carbon-received", ids[1], "juliet@localhost", julietIDs[1]}},
	}
	got := map[string][]copy{}
	for _, r := range all(rs, "received") {
		c := copy{kind: str(r["kind"]), id: str(r["id"])}
		if sids := stanzaIDs(r); len(sids) == 1 {
			c.by, c.stanzaID = sids[0][0], sids[0][1]
		} else {
			c.by = fmt.Sprintf("%d stanza-ids", len(sids))
		}
		got[str(r["who"])] = append(got[str(r["who"])], c)
	}
	for who, w := range want {
		if !reflect.DeepEqual(got[who], w) {
			t.Errorf("%s received %+v\nwant %+v", who, got[who], w)
		}
	}
	for i, e := range expected {
		if in, _ := check["expected_in_romeo_archive"].(map[string]any); in[e] != true {
			t.Errorf("message %s is not in romeo's archive under the computed ID %s: %v", ids[i], e, check["romeo_result_ids"])
		}
	}
	countsAreOne(t, "romeo's archive", check["romeo_counts"], ids)
	countsAreOne(t, "juliet's archive", check["juliet_counts"], ids)
	if got := strs(check["ids_query_ids"]); !reflect.DeepEqual(got, ids) {
		t.Errorf("ids query for %v found %v", expected, got)
	}
	if got := strs(check["after_id_query_ids"]); !reflect.DeepEqual(got, ids[1:]) {
		t.Errorf("after-id %s found %v, want %v", expected[0], got, ids[1:])
	}
}

// The same with xmpp.js: its client computes the archive ID from the
// stream header it saw and finds its message under it.
func TestChatForkXmppjs(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("clients/xmppjs/node_modules/@xmpp/client"); err != nil {
		t.Fatal("xmpp.js is not installed: make test runs npm ci in e2e/clients/xmppjs")
	}
	s := startServer(t, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	dir, _ := filepath.Abs("clients/xmppjs")
	rs := runDriver(t, "node", filepath.Join(dir, "chat.mjs"), strconv.Itoa(s.port), "fork",
		"romeo@localhost", "montague", "juliet@localhost", "capulet")
	checkXmppjsFork(t, rs)
}

// checkXmppjsFork checks what chat.mjs's fork saw: juliet got romeo's
// message once with her stanza-id, and each archive holds it once, romeo's
// under the ID his client computed.
func checkXmppjsFork(t *testing.T, rs []result) {
	t.Helper()
	sent := find(t, rs, "sent")
	var juliet []result
	for _, r := range all(rs, "received") {
		if r["who"] == "juliet" {
			juliet = append(juliet, r)
		}
	}
	if len(juliet) != 1 || juliet[0]["id"] != sent["id"] || len(stanzaIDs(juliet[0])) != 1 || stanzaIDs(juliet[0])[0][0] != "juliet@localhost" {
		t.Fatalf("juliet received %v", juliet)
	}
	check := find(t, rs, "archive-check")
	if check["expected_in_romeo_archive"] != true || check["romeo_count"] != 1.0 || check["juliet_count"] != 1.0 ||
		!reflect.DeepEqual(strs(check["ids_query_result_ids"]), []string{str(sent["expected"])}) {
		t.Fatalf("archives: %v (expected ID %s)", check, sent["expected"])
	}
}

// A client whose connection is cut resumes its session: it learns that
// the server handled its last message, gets what was sent to it while it
// was away, and a message sent again with the same id is stored and
// delivered once.
func TestChatResume(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	rs := slixChat(t, s, "resume", "romeo@localhost", "montague", "juliet@localhost", "capulet")
	res := find(t, rs, "resume")
	cut := find(t, rs, "cut")
	if res["result"] != "resumed" || str(res["bound_stream_id"]) != str(cut["resume_id"]) {
		t.Fatalf("resumption: %v (cut at %v)", res, cut)
	}
	if got := all(rs, "retransmitted"); len(got) != 1 || len(stanzaIDs(got[0])) != 1 {
		t.Errorf("retransmitted to the resumed session: %v, want the one message sent while it was away", got)
	}
	var mine []string
	for _, r := range all(rs, "sent") {
		if r["who"] == "client" {
			mine = append(mine, str(r["id"]))
		}
	}
	countsAreOne(t, "delivered to the peer", find(t, rs, "peer-summary")["counts"], mine)
	check := find(t, rs, "archive-check")
	countsAreOne(t, "client's archive", check["client_counts"], mine)
	countsAreOne(t, "peer's archive", check["peer_counts"], mine)
	if got := strs(check["ids_query_ids"]); len(got) != len(mine) {
		t.Errorf("computed IDs %v found %v", check["expected"], got)
	}
}

// Messages to an account with no client are delivered to its next
// session, with a delay stamp, and are in its archive once.
func TestChatOffline(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	rs := slixChat(t, s, "offline", "romeo@localhost", "montague", "juliet@localhost", "capulet")
	var ids []string
	for _, r := range all(rs, "sent") {
		ids = append(ids, str(r["id"]))
	}
	countsAreOne(t, "delivered on login", find(t, rs, "offline-summary")["counts"], ids)
	check := find(t, rs, "archive-check")
	countsAreOne(t, "juliet's archive", check["counts"], ids)
	var stanzaIDsSeen []string
	for _, r := range all(rs, "received") {
		d, _ := r["delay"].(map[string]any)
		sids := stanzaIDs(r)
		if d == nil || d["from"] != "localhost" || str(d["stamp"]) == "" || len(sids) != 1 || sids[0][0] != "juliet@localhost" {
			t.Errorf("offline message without delay stamp or stanza-id: %v", r)
			continue
		}
		stanzaIDsSeen = append(stanzaIDsSeen, sids[0][1])
	}
	if !reflect.DeepEqual(stanzaIDsSeen, strs(check["result_ids"])) {
		t.Errorf("stanza-ids on delivery %v, archive IDs %v", stanzaIDsSeen, check["result_ids"])
	}
}

// Malformed archive queries get the right error; a huge max is clamped;
// a stanza-id sent by a client never reaches anyone.
func TestChatBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	rs := slixChat(t, s, "mam-bad", "romeo@localhost", "montague", "juliet@localhost", "capulet")
	want := map[string]string{
		"no-form-type":      "bad-request",
		"wrong-form-type":   "bad-request",
		"unknown-field":     "bad-request",
		"bad-start":         "bad-request",
		"after-id-unknown":  "item-not-found",
		"rsm-after-unknown": "item-not-found",
	}
	for _, r := range all(rs, "mam") {
		q := str(r["query"])
		if q == "max-100000" {
			fin, _ := r["fin"].(map[string]any)
			if r["ok"] != true || r["count"] != 250.0 || fin["complete"] == "true" {
				t.Errorf("max 100000 on 302 messages: %v results, fin %v; want 250 and not complete", r["count"], fin)
			}
			continue
		}
		e, _ := r["error"].(map[string]any)
		if e["condition"] != want[q] {
			t.Errorf("%s: got %v, want %s", q, r["error"], want[q])
		}
		delete(want, q)
	}
	if len(want) != 0 {
		t.Errorf("queries not run: %v", want)
	}
	copies := all(rs, "spoof-copy")
	if len(copies) == 0 {
		t.Fatal("the peer got no copy of the spoofed message")
	}
	for _, r := range copies {
		for _, sid := range stanzaIDs(r) {
			if sid[1] == "spoof" {
				t.Errorf("%s got the client's stanza-id: %v", r["who"], r)
			}
		}
	}
}

// Messages the server acknowledged (XEP-0198 <a h/>) survive SIGKILL, in
// both parties' archives, each once.
func TestChatAckIsDurable(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUsers(t, data, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	s, cmd := serveOn(t, data)
	const n = 300
	acked := find(t, slixChat(t, s, "burst", "romeo@localhost", "montague", "juliet@localhost", strconv.Itoa(n)), "acked")
	if acked["ok"] != true {
		t.Fatalf("the server did not acknowledge all %d messages: %v", n, acked)
	}
	cmd.Process.Kill()
	cmd.Wait()
	ids := strs(acked["ids"])
	s2, _ := serveOn(t, data)
	romeo := find(t, slixChat(t, s2, "count", "romeo@localhost", "montague", "juliet@localhost"), "archive-count")
	juliet := find(t, slixChat(t, s2, "count", "juliet@localhost", "capulet", "romeo@localhost"), "archive-count")
	countsAreOne(t, "romeo's archive after SIGKILL", romeo["counts"], ids)
	countsAreOne(t, "juliet's archive after SIGKILL", juliet["counts"], ids)
	if got := strs(romeo["result_ids"]); !reflect.DeepEqual(got, strs(acked["expected"])) {
		t.Errorf("romeo's archive IDs are not the computed ones:\n got %v\nwant %v", got, acked["expected"])
	}
	if out, err := exec.Command(bin, "audit", "verify", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("audit verify after SIGKILL: %v\n%s", err, out)
	}
}
