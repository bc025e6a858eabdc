package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Administration over XMPP (issue 14, item 6), with slixmpp's own
// XEP-0050 and XEP-0133 plugins: an admin (--admin) adds a user, which
// logs in; changes its password (its session ends, the old password
// fails, the new one works); sees it among the online users; sends an
// announcement that it and another user receive; deletes it (through
// the confirmation stage: its session ends, it can no longer log in). A
// user that is not an admin sees no command and is refused one. The
// account's events name the admin as their cause.
func TestAdHocAdministration(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUsers(t, data, map[string]string{"admin@localhost": "pw", "bob@localhost": "pw"})
	s, _ := serveOn(t, data, "--admin", "admin@localhost")
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_adhoc.py", "127.0.0.1:"+strconv.Itoa(s.port),
		"admin@localhost", "bob@localhost", "pw", "nurse@localhost", "first-pw", "second-pw")
	var (
		commands = map[string][]result{} // by who and command, in order
		logins   = map[string]bool{}
		byWho    = map[string]result{} // the other facts, by event and who
	)
	for _, r := range rs {
		who := fmt.Sprint(r["who"])
		switch r["event"] {
		case "command":
			k := who + " " + fmt.Sprint(r["command"])
			commands[k] = append(commands[k], r)
		case "login":
			logins[who] = r["ok"] == true
		default:
			byWho[fmt.Sprint(r["event"], " ", who)] = r
		}
	}
	// What each may see and do.
	var adminNodes []string
	for _, n := range byWho["commands admin"]["nodes"].([]any) {
		adminNodes = append(adminNodes, n.(string))
	}
	for _, c := range []string{"add-user", "delete-user", "change-user-password", "get-online-users-list", "get-online-users-num", "announce"} {
		if !slices.Contains(adminNodes, "http://jabber.org/protocol/admin#"+c) {
			t.Errorf("the admin's commands %v lack %s", adminNodes, c)
		}
	}
	if nodes := byWho["commands bob"]["nodes"].([]any); len(nodes) != 0 {
		t.Errorf("bob sees commands: %v", nodes)
	}
	if r := commands["bob add-user"]; len(r) != 1 || r[0]["error"] != "forbidden" {
		t.Errorf("bob running add-user: %v; want forbidden", r)
	}
	if r := byWho["info bob"]; r["ok"] != false || r["error"] != "forbidden" {
		t.Errorf("bob's disco#info on add-user: %v", r)
	}
	if r := byWho["info admin"]; r["ok"] != true {
		t.Errorf("the admin's disco#info on add-user: %v", r)
	}
	completed := func(k string, i int, note string) result {
		t.Helper()
		rs := commands[k]
		if len(rs) <= i || rs[i]["status"] != "completed" {
			t.Errorf("%s: %v; want it completed", k, rs)
			return nil
		}
		if note != "" && !strings.Contains(fmt.Sprint(rs[i]["notes"]), note) {
			t.Errorf("%s: notes %v; want %q", k, rs[i]["notes"], note)
		}
		return rs[i]
	}
	// The account's life.
	completed("admin add-user", 0, "Added nurse@localhost.")
	if r := commands["admin add-user"]; len(r) != 2 || r[1]["error"] != "conflict" {
		t.Errorf("adding nurse again: %v; want conflict", r)
	}
	completed("admin change-user-password", 0, "Changed the password of nurse@localhost")
	for who, want := range map[string]bool{"new": true, "new-old-password": false, "new-new-password": true, "new-after-delete": false} {
		if ok, seen := logins[who]; !seen || ok != want {
			t.Errorf("login %s: %v (seen %v); want %v", who, ok, seen, want)
		}
	}
	for who, cond := range map[string]string{"new": "reset", "new-deleted": "not-authorized"} {
		if r := byWho["ended "+who]; r["ok"] != true || r["condition"] != cond {
			t.Errorf("%s's session: %v; want it ended with %s", who, r, cond)
		}
	}
	if r := completed("admin get-online-users-list", 0, ""); r != nil {
		online := fmt.Sprint(r["fields"])
		for _, j := range []string{"admin@localhost", "bob@localhost", "nurse@localhost"} {
			if !strings.Contains(online, j) {
				t.Errorf("online users %s lack %s", online, j)
			}
		}
	}
	completed("admin announce", 0, "Sent to 3 sessions of 3 users.")
	for _, who := range []string{"new-new-password", "bob"} {
		r := byWho["announcement "+who]
		if r["sender"] != "localhost" || r["type"] != "headline" || r["body"] != "The server restarts at noon.\nSave your work." {
			t.Errorf("%s's announcement: %v", who, r)
		}
	}
	if r := byWho["stage admin"]; r["command"] != "delete-user" || !slices.Equal(r["actions"].([]any), []any{"complete", "prev"}) ||
		!strings.HasPrefix(fmt.Sprint(r["instructions"]), "Delete nurse@localhost? ") {
		t.Errorf("delete-user's confirmation: %v", r)
	}
	completed("admin delete-user", 0, "Deleted nurse@localhost.")

	// The log: each change an event of nurse's stream, caused by the admin.
	out, err := exec.Command(bin, "audit", "query", "--json", "--stream", "account-nurse@localhost", "--data", data).CombinedOutput()
	if err != nil {
		t.Fatalf("audit query: %v\n%s", err, out)
	}
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e struct{ Type, Cause string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if e.Type == "AccountWentOffline" {
			// The session core records the end of nurse's last session
			// (XEP-0012), which the admin's changes caused: not the
			// admin's event.
			continue
		}
		if e.Cause != "adhoc:admin@localhost" {
			t.Errorf("%s caused by %q", e.Type, e.Cause)
		}
		types = append(types, e.Type)
	}
	if want := []string{"AccountCreated", "AccountPasswordChanged", "AccountDeleted"}; !slices.Equal(types, want) {
		t.Errorf("nurse's stream: %v; want %v", types, want)
	}
}
