package e2e

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The rooms TestRebuildIssue14's checks name.
const rebuildParlour, rebuildWake = "parlour@conference.localhost", "wake@conference.localhost"

// TestRebuildIssue14 (issue 14, "Done means"): every kind of state issue
// 14 added is rebuilt identically by `annals rebuild`. One server
// accumulates it all through real clients, the drivers of the features'
// own tests run side by side on one data directory: PEP nodes with their
// access models (slix_pep); account and room vCards (slix_vcard); room
// retractions, a moderation and a 1:1 tombstone (slix_retract); accounts
// added, changed and deleted by an admin's ad-hoc commands (slix_adhoc);
// last activity (slix_last); voice granted on request (slix_muc voice);
// and (slix_state extras) a node with the roster access model, max_items
// and a retraction, a bookmark with a password kept beside the log,
// private XML storage, a block list, an account with state everywhere
// deleted by an admin and added again, and one-shot clients' accounts
// left in a room whose last event is a moderation.
//
// Each time the server stops, every table but the log's is dumped, rows
// in order of all their columns; `annals rebuild` runs; the dump must be
// the same, row for row (the secrets beside the log, which no rebuild
// writes, included), and must hold what the projections make of those
// events (checkDump). What clients see must be the same too: a view of it
// all (slix_state view) before the stop and after the rebuild, from a new
// server, differs only in last activity's seconds, by the time between.
// Then a server with --muc-idle-leave takes the idle accounts out of their
// rooms (OccupantLeft, cause idle), and that is rebuilt identically too.
func TestRebuildIssue14(t *testing.T) {
	t.Parallel()
	const pw = "pw"
	data := t.TempDir()
	users := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "romeo", "juliet", "tybalt", "ra", "rb",
		"admin", "root", "adb", "la", "lb", "lc", "vo", "vu", "ex", "exf", "exs", "one"} {
		users[u+"@localhost"] = pw
	}
	addUsers(t, data, users)
	flags := []string{"--admin", "admin@localhost", "--admin", "root@localhost", "--vcard-max-bytes", "20000"}
	s, cmd := serveOn(t, data, flags...)
	port, addr := strconv.Itoa(s.port), "127.0.0.1:"+strconv.Itoa(s.port)

	img, _ := avatarPNG(t)
	files := t.TempDir()
	photo, big := filepath.Join(files, "avatar.png"), filepath.Join(files, "big.bin")
	if err := os.WriteFile(photo, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, bytes.Repeat([]byte{7}, 20000), 0o644); err != nil {
		t.Fatal(err)
	}
	const (
		orchard  = "orchard@conference.localhost"
		parlour  = rebuildParlour
		senate   = "senate@conference.localhost"
		idlehall = "idlehall@conference.localhost"
		wake     = rebuildWake
	)
	py := "/usr/bin/python3"
	drivers := map[string][]string{
		"pep":     {"clients/slix_pep.py", addr, pw, "alice@localhost", "bob@localhost", "carol@localhost"},
		"vcard":   {"clients/slix_vcard.py", port, "avatars", "romeo@localhost", pw, "juliet@localhost", pw, "tybalt@localhost", pw, orchard, photo, big},
		"retract": {"clients/slix_retract.py", addr, pw, "ra@localhost", "rb@localhost", parlour},
		"adhoc":   {"clients/slix_adhoc.py", addr, "admin@localhost", "adb@localhost", pw, "nurse@localhost", "first-pw", "second-pw"},
		"last":    {"clients/slix_last.py", addr, pw, "la@localhost", "lb@localhost", "lc@localhost"},
		"voice":   {"clients/slix_muc.py", port, "voice", "vo@localhost", pw, "vu@localhost", pw, "senate"},
		"extras": {"clients/slix_state.py", port, "extras", pw, "ex@localhost", "exf@localhost", "exs@localhost",
			"root@localhost", "kept@localhost", "one@localhost", idlehall, "doomed@localhost", wake},
	}
	start := time.Now()
	got := runDrivers(t, py, drivers)
	t.Logf("the drivers took %s", time.Since(start).Round(time.Millisecond))

	// The state is there to be rebuilt: each driver did what it is for.
	need := func(what string, ok bool, rs []result) {
		t.Helper()
		if !ok {
			t.Fatalf("%s: %v", what, rs)
		}
	}
	rs := got["pep"]
	need("alice's and bob's PEP nodes", find(t, rs, "published") != nil && len(all(rs, "read")) == 23, rs)
	rs = got["vcard"]
	need("romeo's and the orchard's vCards", whose(t, rs, "set", "a")["ok"] == true && whose(t, rs, "room-set", "a")["ok"] == true, rs)
	rs = got["retract"]
	tombstones := 0
	for _, m := range find(t, rs, "archive")["messages"].([]any) {
		if m.(map[string]any)["tombstone"] == true {
			tombstones++
		}
	}
	need("the parlour's retraction and moderation", tombstones == 2, rs)
	rs = got["adhoc"]
	var deleted bool
	for _, r := range all(rs, "command") {
		deleted = deleted || r["command"] == "delete-user" && r["status"] == "completed"
	}
	need("nurse added, changed and deleted by the admin", deleted, rs)
	rs = got["last"]
	need("lb's last activity", find(t, rs, "last") != nil && all(rs, "last")[2]["status"] == "gone to Mantua", rs)
	rs = got["voice"]
	need("vu's voice", find(t, rs, "voiced")["role"] == "participant", rs)
	for _, r := range all(got["extras"], "step") {
		need("extras: "+fmt.Sprint(r["what"]), r["ok"] == true, got["extras"])
	}

	spec, _ := json.Marshal(map[string]any{
		"pep": [][3]string{
			{"alice@localhost", "alice@localhost", "urn:xmpp:avatar:data"},
			{"bob@localhost", "alice@localhost", "urn:xmpp:avatar:metadata"},
			{"bob@localhost", "alice@localhost", "http://jabber.org/protocol/nick"},
			{"carol@localhost", "alice@localhost", "http://jabber.org/protocol/nick"},
			{"carol@localhost", "alice@localhost", "eu.siacs.conversations.axolotl.devicelist"},
			{"carol@localhost", "alice@localhost", "eu.siacs.conversations.axolotl.bundles:4223"},
			{"ex@localhost", "ex@localhost", "urn:example:rebuild:notes"},
			{"exf@localhost", "ex@localhost", "urn:example:rebuild:notes"},
			{"exs@localhost", "ex@localhost", "urn:example:rebuild:notes"},
			{"ex@localhost", "ex@localhost", "urn:xmpp:bookmarks:1"},
			{"exf@localhost", "ex@localhost", "urn:xmpp:bookmarks:1"},
			{"doomed@localhost", "doomed@localhost", "urn:xmpp:bookmarks:1"},
		},
		"private":    []string{"ex@localhost"},
		"vcards":     [][2]string{{"juliet@localhost", "romeo@localhost"}, {"tybalt@localhost", orchard}, {"tybalt@localhost", "doomed@localhost"}},
		"blocklists": []string{"ex@localhost", "doomed@localhost"},
		"mam": [][3]string{{"ra@localhost", "", "rb@localhost"}, {"rb@localhost", parlour, ""},
			{"ex@localhost", "", "doomed@localhost"}, {"doomed@localhost", "", "ex@localhost"}, {"tybalt@localhost", wake, ""}},
		"last":      [][2]string{{"la@localhost", "lb@localhost"}},
		"logins":    [][2]string{{"kept@localhost", pw}, {"kept@localhost", pw + "-old"}, {"nurse@localhost", "second-pw"}},
		"occupants": [][2]string{{"vo@localhost", senate}},
	})
	view := func(s *server) []result {
		return runDriver(t, py, "clients/slix_state.py", strconv.Itoa(s.port), "view", pw, string(spec))
	}
	start = time.Now()
	before := view(s)
	t.Logf("the view took %s", time.Since(start).Round(time.Millisecond))
	checkView(t, before)

	stopServe(cmd)
	checkRoomVersions(t, data)
	live := dumpTables(t, data)
	checkDump(t, live)
	rebuild(t, data)
	if rebuilt := dumpTables(t, data); rebuilt != live {
		t.Errorf("after `annals rebuild` the tables differ from the live ones:\n%s", diffLines(live, rebuilt))
	}
	s2, cmd2 := serveOn(t, data, flags...)
	after := view(s2)
	compareViews(t, before, after)
	stopServe(cmd2)

	// Idle accounts leave their rooms, as the server's events.
	_, cmd3 := serveOn(t, data, append(flags, "--muc-idle-leave", "1s")...)
	deadline := time.Now().Add(20 * time.Second)
	for !idleLeft(t, data, "one@localhost", idlehall) {
		if time.Now().After(deadline) {
			t.Fatal("one@localhost did not leave the idle hall")
		}
		time.Sleep(200 * time.Millisecond)
	}
	stopServe(cmd3)
	checkRoomVersions(t, data)
	live = dumpTables(t, data)
	if occ := section(live, "room_occupants"); strings.Contains(occ, "'"+idlehall+"','one@localhost'") {
		t.Fatalf("one@localhost is still an occupant of the idle hall:\n%s", occ)
	}
	rebuild(t, data)
	if rebuilt := dumpTables(t, data); rebuilt != live {
		t.Errorf("after the idle leaves and `annals rebuild` the tables differ from the live ones:\n%s", diffLines(live, rebuilt))
	}
}

// runDrivers runs the drivers side by side, each a program's arguments
// by name, and returns their facts by name.
func runDrivers(t *testing.T, prog string, drivers map[string][]string) map[string][]result {
	t.Helper()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		got  = map[string][]result{}
		errs []string
	)
	for name, args := range drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			defer func() { t.Logf("%s took %s", name, time.Since(start).Round(time.Millisecond)) }()
			cmd := exec.Command(prog, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			timer := time.AfterFunc(150*time.Second, func() { cmd.Process.Kill() })
			defer timer.Stop()
			out, err := cmd.Output()
			var rs []result
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				var r result
				if jerr := json.Unmarshal([]byte(line), &r); jerr != nil && err == nil {
					err = fmt.Errorf("printed %q: %v", line, jerr)
				}
				rs = append(rs, r)
			}
			mu.Lock()
			defer mu.Unlock()
			got[name] = rs
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s %v: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, out, stderr.String()))
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("drivers failed:\n%s", strings.Join(errs, "\n"))
	}
	return got
}

// checkView makes sure the view shows the state the test means to
// compare: a view of errors alone would compare equal too.
func checkView(t *testing.T, rs []result) {
	t.Helper()
	var pep []string
	for _, r := range all(rs, "pep") {
		what := fmt.Sprintf("%v reads %v", r["who"], r["node"])
		if e, ok := r["error"].(map[string]any); ok {
			what += fmt.Sprintf(": %v %v", e["condition"], e["pubsub"])
		} else {
			var ids []string
			for _, it := range r["items"].([]any) {
				ids = append(ids, fmt.Sprint(it.(map[string]any)["id"]))
			}
			what += fmt.Sprintf(": %v", ids)
		}
		pep = append(pep, what)
	}
	slices.Sort(pep)
	want := []string{
		"alice@localhost reads urn:xmpp:avatar:data: [" + avatarID() + "]",
		"bob@localhost reads http://jabber.org/protocol/nick: [current]",
		"bob@localhost reads urn:xmpp:avatar:metadata: [" + avatarID() + "]",
		"carol@localhost reads eu.siacs.conversations.axolotl.bundles:4223: [current]",
		"carol@localhost reads eu.siacs.conversations.axolotl.devicelist: [current]",
		"carol@localhost reads http://jabber.org/protocol/nick: not-authorized presence-subscription-required",
		"doomed@localhost reads urn:xmpp:bookmarks:1: []",
		"ex@localhost reads urn:example:rebuild:notes: [n2]",
		"ex@localhost reads urn:xmpp:bookmarks:1: [vault@conference.localhost]",
		"exf@localhost reads urn:example:rebuild:notes: [n2]",
		"exf@localhost reads urn:xmpp:bookmarks:1: not-allowed closed-node",
		"exs@localhost reads urn:example:rebuild:notes: not-authorized not-in-roster-group",
	}
	if !slices.Equal(pep, want) {
		t.Errorf("PEP as the clients read it:\n%s\nwant\n%s", strings.Join(pep, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range all(rs, "pep") {
		if r["node"] == "urn:xmpp:bookmarks:1" && r["who"] == "ex@localhost" && !strings.Contains(fmt.Sprint(r["items"]), "vault-pw-7") {
			t.Errorf("the owner's bookmark lacks its password: %v", r)
		}
	}
	if p := find(t, rs, "private"); !strings.Contains(fmt.Sprint(p["xml"]), "Hamlet") {
		t.Errorf("private storage: %v", p)
	}
	// doomed, deleted and added again, has none of what it had.
	for _, v := range all(rs, "vcard") {
		if photo := strings.Contains(fmt.Sprint(v["xml"]), "BINVAL"); photo != (v["of"] != "doomed@localhost") ||
			strings.Contains(fmt.Sprint(v["xml"]), "Doomed") {
			t.Errorf("%v's vCard: %v", v["of"], v)
		}
	}
	var blocked []string
	for _, b := range all(rs, "blocklist") {
		blocked = append(blocked, fmt.Sprint(b["who"], " ", b["items"]))
	}
	if want := []string{"ex@localhost [iago@shakespeare.example/phone spam.example]", "doomed@localhost []"}; !slices.Equal(blocked, want) {
		t.Errorf("block lists %q, want %q", blocked, want)
	}
	for _, m := range all(rs, "mam") {
		results := fmt.Sprint(m["results"])
		var ok bool
		switch fmt.Sprint(m["who"], " ", m["to"], " ", m["with_"]) {
		case "ra@localhost  rb@localhost", "rb@localhost " + rebuildParlour + " ":
			ok = strings.Contains(results, "retracted")
		case "ex@localhost  doomed@localhost":
			ok = strings.Contains(results, "remember me")
		case "doomed@localhost  ex@localhost":
			ok = results == "[]"
		case "tybalt@localhost " + rebuildWake + " ":
			ok = strings.Contains(results, "goodbye")
		}
		if m["ok"] != true || !ok {
			t.Errorf("MAM of %v %v with %v: %v", m["who"], m["to"], m["with_"], m)
		}
	}
	if l := find(t, rs, "last"); l["error"] != nil || l["status"] != "gone to Mantua" {
		t.Errorf("lb's last activity: %v", l)
	}
	var logins []string
	for _, l := range all(rs, "login") {
		logins = append(logins, fmt.Sprint(l["jid"], " ", l["password"], " ", l["ok"]))
	}
	if want := []string{"kept@localhost pw true", "kept@localhost pw-old false", "nurse@localhost second-pw false"}; !slices.Equal(logins, want) {
		t.Errorf("logins %q, want %q", logins, want)
	}
	if o := find(t, rs, "occupants"); !strings.Contains(fmt.Sprint(o["presences"]), "senate@conference.localhost/vu xa participant") {
		t.Errorf("the senate as its owner sees it: %v", o)
	}
}

// avatarID is the item ID of slix_pep.py's avatar: the SHA-1 of its bytes.
func avatarID() string {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = byte(i)
	}
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
}

// compareViews holds two views to the same facts but last activity's
// seconds, which must have grown by the time between the two questions.
func compareViews(t *testing.T, before, after []result) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("the views have %d and %d facts:\n%v\n%v", len(before), len(after), before, after)
	}
	for i := range before {
		b, a := before[i], after[i]
		if b["event"] == "last" && a["event"] == "last" {
			elapsed := a["at"].(float64) - b["at"].(float64)
			grown := a["seconds"].(float64) - b["seconds"].(float64)
			if math.Abs(grown-elapsed) > 2 {
				t.Errorf("last activity: %v, then %v: grew by %v seconds in %.1f", b, a, grown, elapsed)
			}
			for _, k := range []string{"at", "seconds"} {
				delete(b, k)
				delete(a, k)
			}
		}
		bj, _ := json.Marshal(b)
		aj, _ := json.Marshal(a)
		if !bytes.Equal(bj, aj) {
			t.Errorf("clients see after the rebuild\n%s\nwhere they saw\n%s", aj, bj)
		}
	}
}

func rebuild(t *testing.T, data string) {
	t.Helper()
	if out, err := exec.Command(bin, "rebuild", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
}

// idleLeft reports whether the log holds account's leaving room for
// being idle.
func idleLeft(t *testing.T, data, account, room string) bool {
	t.Helper()
	out, err := exec.Command(bin, "audit", "query", "--json", "--type", "OccupantLeft", "--stream", "room-"+room, "--data", data).CombinedOutput()
	if err != nil {
		t.Fatalf("audit query: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e struct {
			Cause string
			Data  struct {
				Account, Cause string
			}
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Data.Account == account && e.Data.Cause == "idle" {
			return true
		}
	}
	return false
}

// checkDump makes sure the read models hold what the projections make
// of issue 14's events, so that a projection passing over an event type,
// live and in the rebuild alike, fails the test too.
func checkDump(t *testing.T, dump string) {
	t.Helper()
	accounts := section(dump, "accounts")
	var kept []string // jid, created_at, password_changed_at, version
	for _, row := range strings.Split(accounts, "\n") {
		if strings.HasPrefix(row, "'kept@localhost',") {
			kept = strings.Split(row, ",")
		}
	}
	if len(kept) != 4 || kept[2] == "NULL" || kept[3] != "2" {
		t.Errorf("the accounts read model lacks kept, added by the admin, or its password change:\n%s", accounts)
	}
	if strings.Contains(accounts, "nurse@localhost") {
		t.Errorf("the accounts read model holds nurse, deleted by the admin:\n%s", accounts)
	}
	if occ := section(dump, "room_occupants"); !strings.Contains(occ, "'senate@conference.localhost','vu@localhost','vu','participant',") {
		t.Errorf("the rooms read model does not show vu's voice:\n%s", occ)
	}
	// What doomed kept is gone with it; what others keep of it is not.
	for table, prefix := range map[string]string{"pep_passwords": "'doomed@localhost',", "archive": "'doomed@localhost',",
		"archive_stays": "'doomed@localhost',", "room_occupants": "'" + rebuildWake + "','doomed@localhost',"} {
		for _, row := range strings.Split(section(dump, table), "\n") {
			if strings.HasPrefix(row, prefix) {
				t.Errorf("doomed's state outlives its deletion in %s: %s", table, trim(row))
			}
		}
	}
	if !strings.Contains(section(dump, "archive"), "<body>remember me</body>") {
		t.Errorf("ex's archive lost doomed's message:\n%s", section(dump, "archive"))
	}
	tombstones := map[string]int{}
	for _, row := range strings.Split(section(dump, "archive"), "\n") {
		if strings.Contains(row, "<retracted xmlns=''urn:xmpp:message-retract:1''") {
			account, _, _ := strings.Cut(row, ",")
			tombstones[account]++
		}
	}
	want := map[string]int{"'parlour@conference.localhost'": 2, "'idlehall@conference.localhost'": 2, "'ra@localhost'": 1, "'rb@localhost'": 1}
	if fmt.Sprint(tombstones) != fmt.Sprint(want) {
		t.Errorf("tombstones in the archive read model, by archive: %v, want %v", tombstones, want)
	}
}

// checkRoomVersions holds the rooms read model's version of each room to
// its stream's, as the read model's schema says it is: a room event the
// projection passes over leaves it behind.
func checkRoomVersions(t *testing.T, data string) {
	t.Helper()
	out, err := exec.Command("sqlite3", "-readonly", filepath.Join(data, "annals.db"), `SELECT r.jid, r.version, s.version FROM rooms r
		JOIN (SELECT stream, max(version) AS version FROM events GROUP BY stream) s ON s.stream = 'room-' || r.jid
		WHERE r.version != s.version`).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	if len(out) > 0 {
		t.Errorf("the rooms read model is behind some rooms' streams (room|read model's version|stream's):\n%s", out)
	}
}

// logTables are the log's own tables: what a rebuild reads, not writes.
var logTables = []string{"events", "streams", "stream_marks", "store_meta", "schema_migrations"}

// dumpTables prints every table of data's database but the log's, rows
// in the order of all their columns, each value quoted as SQL, so that
// two databases compare as text. The read models are there, and what is
// kept beside the log (credentials, bookmark passwords), which a rebuild
// must leave as it is.
func dumpTables(t *testing.T, data string) string {
	t.Helper()
	db := filepath.Join(data, "annals.db")
	sqlite := func(script string) string {
		t.Helper()
		cmd := exec.Command("sqlite3", "-readonly", "-batch", db)
		cmd.Stdin = strings.NewReader(script)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sqlite3 %q: %v\n%s", script, err, out)
		}
		return string(out)
	}
	cols := map[string][]string{}
	var tables []string
	for _, line := range strings.Split(strings.TrimSpace(sqlite(`SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`)), "\n") {
		table, col, _ := strings.Cut(line, "|")
		if slices.Contains(logTables, table) {
			continue
		}
		if cols[table] == nil {
			tables = append(tables, table)
		}
		cols[table] = append(cols[table], `"`+col+`"`)
	}
	if len(tables) < 10 {
		t.Fatalf("only tables %v in %s", tables, db)
	}
	var script strings.Builder
	script.WriteString(".mode quote\n")
	for _, table := range tables {
		fmt.Fprintf(&script, "SELECT '== %s';\nSELECT * FROM \"%s\" ORDER BY %s;\n", table, table, strings.Join(cols[table], ", "))
	}
	return sqlite(script.String())
}

// section is the rows of one table in a dump.
func section(dump, table string) string {
	_, rows, _ := strings.Cut(dump, "'== "+table+"'\n")
	rows, _, _ = strings.Cut(rows, "'== ")
	return rows
}

// diffLines lists the lines only one of two dumps has.
func diffLines(a, b string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	var out []string
	only := func(x, y, sign string) {
		cx, cy := count(x), count(y)
		for _, l := range strings.Split(x, "\n") {
			if cx[l] > cy[l] {
				out = append(out, sign+" "+trim(l))
				cx[l]--
			}
		}
	}
	only(a, b, "-")
	only(b, a, "+")
	return strings.Join(out, "\n")
}

func trim(l string) string {
	if len(l) > 400 {
		return l[:400] + "…"
	}
	return l
}
