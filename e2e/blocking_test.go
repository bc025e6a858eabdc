package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestBlocking (XEP-0191, issue 14 item 4), with slixmpp's xep_0191
// plugin: Juliet (clients a1 and a2) and Romeo (b) are contacts both
// ways; her server and her account advertise urn:xmpp:blocking. a2 asks for the block list, a1 blocks Romeo: a2 gets the push,
// a1 (which never asked for the list) none. While he is blocked, his
// message to her is refused with service-unavailable and is in none of
// her archive, his IQ to her client is refused the same way, his
// presence does not reach her (her clients see him go unavailable, and he
// her), and her message to him is refused with not-acceptable and
// <blocked/>. She unblocks him: the push, their presence again, and
// messages both ways delivered and archived. The list she leaves survives
// a restart and `annals rebuild`.
func TestBlocking(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUsers(t, data, map[string]string{"juliet@localhost": "j-pw", "romeo@localhost": "r-pw"})
	s, cmd := serveOn(t, data)
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_block.py", strconv.Itoa(s.port), "block",
		"juliet@localhost", "j-pw", "romeo@localhost", "r-pw")
	checkContacts(t, all(rs, "subscription"))
	const juliet, romeo = "juliet@localhost", "romeo@localhost"
	a1, a2, b := juliet+"/desk", juliet+"/phone", romeo+"/orchard"

	// XEP-0191 §3.1: the server says it serves blocking; so does the
	// account, whose address answers it too.
	for _, d := range all(rs, "disco") {
		if d["ok"] != true || !strings.Contains(fmt.Sprint(d["features"]), "urn:xmpp:blocking") {
			t.Errorf("disco#info of %v: %v", d["to"], d)
		}
	}
	if len(all(rs, "disco")) != 2 {
		t.Errorf("disco#info of the server and the account: %v", all(rs, "disco"))
	}
	if l := find(t, rs, "blocklist"); l["ok"] != true || fmt.Sprint(l["items"]) != "[]" {
		t.Fatalf("the list at first: %v", l)
	}
	for _, kind := range []string{"blocked", "unblocked"} {
		if r := find(t, rs, kind); r["ok"] != true {
			t.Fatalf("%s: %v", kind, r)
		}
	}
	// The pushes go to a2, which asked for the list, and only to it.
	var pushes []string
	for _, p := range all(rs, "push") {
		pushes = append(pushes, fmt.Sprintf("%v %v %v %v", p["who"], p["phase"], p["kind"], p["items"]))
	}
	want := []string{
		"a2 blocked block [romeo@localhost]",
		"a2 unblocked unblock [romeo@localhost]",
		"a2 end block [iago@shakespeare.example/phone spam.example]",
	}
	if fmt.Sprint(pushes) != fmt.Sprint(want) {
		t.Fatalf("pushes %q, want %q", pushes, want)
	}

	for _, phase := range []string{"blocked", "unblocked"} {
		blocked := phase == "blocked"
		sent := map[string]result{}
		for _, r := range inPhase(all(rs, "sent"), phase) {
			sent[r["who"].(string)] = r
		}
		received := inPhase(all(rs, "received"), phase)
		// Romeo's message to her, and her answer to him.
		errFor := func(who string, id any) result {
			for _, r := range received {
				if r["who"] == who && r["id"] == id && r["type"] == "error" {
					return r
				}
			}
			return nil
		}
		got := func(who string, body any) bool {
			for _, r := range received {
				if r["who"] == who && r["body"] == body && r["type"] != "error" {
					return true
				}
			}
			return false
		}
		fromB, fromA := sent["b"], sent["a1"]
		if e := errFor("b", fromB["id"]); blocked != (e != nil) || blocked && condition(e) != "service-unavailable" {
			t.Errorf("%s: the answer to Romeo's message: %v", phase, e)
		}
		if blocked == (got("a1", fromB["body"]) || got("a2", fromB["body"])) {
			t.Errorf("%s: Romeo's message reached Juliet's clients: a1 %v, a2 %v", phase, got("a1", fromB["body"]), got("a2", fromB["body"]))
		}
		e := errFor("a1", fromA["id"])
		if blocked != (e != nil) || blocked && (condition(e) != "not-acceptable" || e["blocked"] != true) {
			t.Errorf("%s: the answer to Juliet's message: %v", phase, e)
		}
		if blocked == got("b", fromA["body"]) {
			t.Errorf("%s: Juliet's message reached Romeo: %v", phase, got("b", fromA["body"]))
		}
		if iq := inPhase(all(rs, "iq"), phase)[0]; blocked == (iq["ok"] == true) ||
			blocked && fmt.Sprint(iq["error"].(map[string]any)["condition"]) != "service-unavailable" {
			t.Errorf("%s: Romeo's disco#info to her client: %v", phase, iq)
		}
		// Her archive holds what was delivered, nothing that was refused.
		var mam result
		for _, r := range inPhase(all(rs, "mam"), phase) {
			mam = r
		}
		bodies := fmt.Sprint(mam["bodies"])
		if mam["ok"] != true || blocked == strings.Contains(bodies, fmt.Sprint(fromB["body"])) || blocked == strings.Contains(bodies, fmt.Sprint(fromA["body"])) ||
			strings.Contains(bodies, ", blocked ") {
			t.Errorf("%s: her archive with Romeo: %v", phase, mam)
		}
		// Presence: on the block each side sees the other go; while
		// blocked nothing more; on the unblock each sees the other again.
		saw := map[string][]string{}
		for _, p := range inPhase(all(rs, "presence"), phase) {
			saw[p["who"].(string)] = append(saw[p["who"].(string)], fmt.Sprintf("%v %v %v", p["sender"], p["type"], p["status"]))
		}
		if blocked {
			for _, who := range []string{"a1", "a2"} {
				if fmt.Sprint(saw[who]) != fmt.Sprint([]string{b + " unavailable "}) {
					t.Errorf("%s: %s saw of Romeo %q, want only him going", phase, who, saw[who])
				}
			}
			if w := fmt.Sprint(saw["b"]); !strings.Contains(w, a1+" unavailable") || !strings.Contains(w, a2+" unavailable") ||
				strings.Count(w, " available ") > 0 || len(saw["b"]) != 2 {
				t.Errorf("%s: Romeo saw of her %q, want both her clients going", phase, saw["b"])
			}
		} else {
			for _, who := range []string{"a1", "a2"} {
				if w := fmt.Sprint(saw[who]); !strings.Contains(w, b+" available b's status, blocked") || !strings.Contains(w, b+" available b's status, unblocked") {
					t.Errorf("%s: %s saw of Romeo %q, want his presence again, then its change", phase, who, saw[who])
				}
			}
			if w := fmt.Sprint(saw["b"]); !strings.Contains(w, a1+" available") || !strings.Contains(w, a2+" available") {
				t.Errorf("%s: Romeo saw of her %q, want both her clients again", phase, saw["b"])
			}
		}
	}
	end := all(rs, "blocklist")[1]
	wantEnd := "[iago@shakespeare.example/phone spam.example]"
	if end["ok"] != true || fmt.Sprint(end["items"]) != wantEnd {
		t.Fatalf("the list at the end: %v", end)
	}

	// The list is in her account's stream: it is there after a restart,
	// after the read models are rebuilt.
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if out, err := exec.Command(bin, "rebuild", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
	again, _ := serveOn(t, data)
	l := find(t, runDriver(t, "/usr/bin/python3", "clients/slix_block.py", strconv.Itoa(again.port), "list", juliet, "j-pw"), "blocklist")
	if l["ok"] != true || fmt.Sprint(l["items"]) != wantEnd {
		t.Fatalf("the list after a restart and a rebuild: %v", l)
	}
}

func inPhase(rs []result, phase string) []result {
	var out []result
	for _, r := range rs {
		if r["phase"] == phase {
			out = append(out, r)
		}
	}
	return out
}
