package e2e

import (
	"fmt"
	"strconv"
	"testing"
)

// Retraction and moderation in a room (XEP-0424, XEP-0425), with
// slixmpp's own plugins: bob's retraction of his message and alice's
// moderation of his next one reach every client (alice's two and bob's);
// the room's archive then holds tombstones in their places, and the
// retraction and the moderation notice beside them; bob, no moderator,
// cannot moderate alice's message. In 1:1 chat, bob's retraction of a
// message to alice reaches both her clients and her archive holds a
// tombstone in its place (XEP-0424 §5), and the message he kept as it was.
func TestRetractAndModerate(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice@localhost": "pw", "bob@localhost": "pw"})
	room := "parlour@conference.localhost"
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_retract.py", "127.0.0.1:"+strconv.Itoa(s.port), "pw", "alice@localhost", "bob@localhost", room)
	ids := find(t, rs, "ids")
	oops, spam, welcome := fmt.Sprint(ids["oops"]), fmt.Sprint(ids["spam"]), fmt.Sprint(ids["welcome"])
	for _, r := range rs {
		if r["event"] != "received" {
			continue
		}
		var retraction, moderation bool
		for _, m := range r["messages"].([]any) {
			m := m.(map[string]any)
			retraction = retraction || m["retracts"] == oops && m["moderated"] == false
			moderation = moderation || m["retracts"] == spam && m["moderated"] == true && m["from"] == room
		}
		if !retraction || !moderation {
			t.Errorf("%s got the retraction %v and the moderation %v; want both: %v", r["who"], retraction, moderation, r["messages"])
		}
	}
	if e, _ := find(t, rs, "bob-moderates")["error"].(map[string]any); e == nil || e["condition"] != "forbidden" {
		t.Errorf("bob moderating: %v; want forbidden", e)
	}
	byID := map[string]map[string]any{}
	for _, m := range find(t, rs, "archive")["messages"].([]any) {
		m := m.(map[string]any)
		byID[fmt.Sprint(m["stanza_id"])] = m
	}
	for id, moderated := range map[string]bool{oops: false, spam: true} {
		m := byID[id]
		if m == nil || m["tombstone"] != true || m["body"] != nil || m["moderated"] != moderated {
			t.Errorf("the archive holds for %s: %v; want a tombstone (moderated %v) without the body", id, m, moderated)
		}
	}
	if m := byID[welcome]; m == nil || m["body"] != "welcome" || m["tombstone"] == true {
		t.Errorf("the archive holds for alice's message: %v; want it as it was", m)
	}
	retractions := 0
	for _, m := range byID {
		if m["retracts"] != nil {
			retractions++
		}
	}
	if retractions != 2 {
		t.Errorf("the archive holds %d retractions; want bob's and the moderation notice: %v", retractions, byID)
	}

	for _, r := range rs {
		if r["event"] != "chat" {
			continue
		}
		got := false
		for _, m := range r["messages"].([]any) {
			got = got || m.(map[string]any)["retracts"] == "typo-1"
		}
		if !got {
			t.Errorf("%s did not get bob's retraction: %v", r["who"], r["messages"])
		}
	}
	byMsgID := map[string]map[string]any{}
	for _, m := range find(t, rs, "chat-archive")["messages"].([]any) {
		m := m.(map[string]any)
		byMsgID[fmt.Sprint(m["id"])] = m
	}
	if m := byMsgID["typo-1"]; m == nil || m["tombstone"] != true || m["body"] != nil {
		t.Errorf("alice's archive holds for the retracted message: %v; want a tombstone", m)
	}
	if m := byMsgID["kept-1"]; m == nil || m["body"] != "kept" {
		t.Errorf("alice's archive holds for the kept message: %v", m)
	}
}
