package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrubbed is what serve logs once an erasure's content is out of its
// read models and its write-ahead log (cmd/annals/erase.go, scrubber).
const scrubbed = "erased content dropped from the read models; write-ahead log emptied"

// TestErasure (issue 17, "Done means"): erasure end to end, with a
// running server and slixmpp clients. Alice and Bob write each other, in
// a room, bookmarks (with a password, which is kept beside the log) and
// vCards, every text distinctive (clients/slix_erase.py write). Their
// messages and passwords are in the data directory in the clear (the
// archive read model, the table beside the log); bookmarks and vCards
// are only in the log, sealed: no file holds them even now. While serve
// runs, `annals user erase alice`; once serve says it scrubbed:
//   - no file of the data directory holds a byte of Alice's texts, and
//     Bob's are still there;
//   - Bob's archive of their chat and the room's archive hold none of
//     Alice's messages and all of his; Alice's own bookmarks and vCard
//     are gone; what she writes afterwards is archived, and still reads
//     after a restart (it is not sealed under a destroyed key);
//   - audit verify passes, serving and stopped; `annals rebuild` gives the
//     tables the live server left.
//
// Then `annals user del bob --erase`, serving: Bob's two sessions end and
// his texts leave every file too; audit and rebuild again.
func TestErasure(t *testing.T) {
	t.Parallel()
	const (
		pw    = "pw"
		alice = "alice@localhost"
		bob   = "bob@localhost"
		hall  = "hall@conference.localhost"
	)
	data := t.TempDir()
	addUsers(t, data, map[string]string{alice: pw, bob: pw})
	s, cmd := serveOn(t, data)

	rs := runDriver(t, "/usr/bin/python3", "clients/slix_erase.py", strconv.Itoa(s.port), "write", pw, alice, bob, hall)
	for _, r := range all(rs, "step") {
		if r["ok"] != true {
			t.Fatalf("writing: %v", r)
		}
	}
	w := map[string]*wrote{}
	for _, r := range all(rs, "wrote") {
		b, _ := json.Marshal(r)
		w[r["who"].(string)] = &wrote{}
		json.Unmarshal(b, w[r["who"].(string)])
	}
	if w[alice] == nil || w[bob] == nil || len(w[alice].Messages) != 3 || len(w[bob].Sealed) != 2 {
		t.Fatalf("the driver wrote %v", rs)
	}
	checkFiles(t, data, "before any erasure", append(w[alice].Sealed, w[bob].Sealed...), append(w[alice].clear(), w[bob].clear()...))
	spec := map[string]any{
		"mam":    [][3]string{{bob, "", alice}, {bob, hall, ""}, {alice, "", bob}},
		"pep":    [][3]string{{alice, alice, "urn:xmpp:bookmarks:1"}, {bob, bob, "urn:xmpp:bookmarks:1"}},
		"vcards": [][2]string{{alice, alice}, {bob, alice}, {alice, bob}},
	}
	// What clients see, before and after: key, what of Alice's is there
	// before, what of Bob's is there throughout.
	views := []struct {
		key        string
		alice, bob []string
	}{
		{"mam " + bob + " with " + alice, w[alice].Messages[:2], w[bob].Messages[:2]},
		{"mam " + bob + " in " + hall, w[alice].Messages[2:], w[bob].Messages[2:]},
		{"mam " + alice + " with " + bob, w[alice].Messages[:2], w[bob].Messages[:2]},
		{"pep " + alice + " of " + alice, []string{w[alice].Sealed[0], w[alice].Password}, nil},
		{"pep " + bob + " of " + bob, nil, []string{w[bob].Sealed[0], w[bob].Password}},
		{"vcard " + alice + " of " + alice, w[alice].Sealed[1:], nil},
		{"vcard " + bob + " of " + alice, w[alice].Sealed[1:], nil},
		{"vcard " + alice + " of " + bob, nil, w[bob].Sealed[1:]},
	}
	checkView := func(v map[string]string, when string, erased bool) {
		t.Helper()
		for _, c := range views {
			seen, ok := v[c.key]
			if !ok {
				t.Fatalf("%s: the view has no %q: %v", when, c.key, v)
			}
			for _, x := range c.bob {
				if !strings.Contains(seen, x) {
					t.Errorf("%s: %s: %q is missing:\n%s", when, c.key, x, seen)
				}
			}
			for _, x := range c.alice {
				if strings.Contains(seen, x) != !erased {
					t.Errorf("%s: %s: %q there: %v, want %v:\n%s", when, c.key, x, !erased, erased, seen)
				}
			}
		}
	}
	checkView(eraseView(t, s, pw, spec), "before the erasure", false)

	// Alice is erased while serve runs.
	cli(t, s, "user", "erase", alice, "--reason", "request 17", "--data", data)
	checkFiles(t, data, "after alice's erasure", w[alice].all(), w[bob].clear())
	auditVerify(t, data, "serving, after alice's erasure")
	checkView(eraseView(t, s, pw, spec), "after alice's erasure", true)
	// What Alice writes after the erasure is archived (acked = archived)
	// and Bob reads it.
	b, err := burst(s.port, alice+"/later", pw, bob, 1)
	if err != nil {
		t.Fatal(err)
	}
	later := "burst " + b.ids[0]
	key := "mam " + bob + " with " + alice
	if seen := eraseView(t, s, pw, map[string]any{"mam": [][3]string{{bob, "", alice}}})[key]; !strings.Contains(seen, later) {
		t.Errorf("bob's archive lacks what alice wrote after her erasure, %q:\n%s", later, seen)
	}

	stopServe(cmd)
	auditVerify(t, data, "stopped, after alice's erasure")
	checkRebuild(t, data, "after alice's erasure")
	checkFiles(t, data, "after the rebuild", w[alice].all(), append(w[bob].clear(), later))

	s, cmd = serveOn(t, data)
	if seen := eraseView(t, s, pw, map[string]any{"mam": [][3]string{{bob, "", alice}}})[key]; !strings.Contains(seen, later) {
		t.Errorf("after a restart bob's archive lacks what alice wrote after her erasure, %q:\n%s", later, seen)
	}

	// Bob is deleted and erased while two of his clients are online.
	_, hold := startDriver(t, "/usr/bin/python3", "clients/slix_erase.py", strconv.Itoa(s.port), "hold", pw, bob, "phone", "tablet")
	cli(t, s, "user", "del", bob, "--erase", "--data", data)
	ended := all(hold(), "ended")
	for _, r := range ended {
		if r["ok"] != true || r["condition"] != "not-authorized" {
			t.Errorf("bob's session after user del --erase: %v, want it ended (not-authorized)", r)
		}
	}
	if len(ended) != 2 {
		t.Errorf("%d of bob's 2 sessions reported how they ended: %v", len(ended), ended)
	}
	checkFiles(t, data, "after bob's deletion and erasure", append(w[alice].all(), w[bob].all()...), []string{later})
	auditVerify(t, data, "serving, after bob's erasure")
	stopServe(cmd)
	auditVerify(t, data, "stopped, after bob's erasure")
	checkRebuild(t, data, "after bob's erasure")
}

// wrote is what an account wrote (clients/slix_erase.py write).
type wrote struct {
	Messages []string // 1:1, then the room: in the archive read model in the clear
	Password string   // its bookmark's: beside the log, in the clear
	Sealed   []string // its bookmark's name, its vCard: only in the log, sealed
}

func (w *wrote) clear() []string { return append(slices.Clone(w.Messages), w.Password) }
func (w *wrote) all() []string   { return append(w.clear(), w.Sealed...) }

// cli runs an annals command beside serve s and waits until serve says
// it scrubbed what the command erased.
func cli(t *testing.T, s *server, args ...string) {
	t.Helper()
	before := strings.Count(s.logs.String(), scrubbed)
	start := time.Now()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("annals %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for strings.Count(s.logs.String(), scrubbed) == before {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("annals %s: serve did not log %q within 20s (the command said: %s)", strings.Join(args, " "), scrubbed, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("annals %s: %s(scrubbed after %v)", strings.Join(args, " "), out, time.Since(start).Round(time.Millisecond))
}

// checkFiles searches every file of the data directory, byte by byte,
// for each text: none of gone may be found, each of kept must be.
func checkFiles(t *testing.T, data, when string, gone, kept []string) {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[p[len(data)+1:]] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("only %d files in %s", len(files), data)
	}
	holding := func(text string) (in []string) {
		for name, b := range files {
			if bytes.Contains(b, []byte(text)) {
				in = append(in, name)
			}
		}
		return in
	}
	for _, text := range gone {
		if in := holding(text); len(in) > 0 {
			t.Errorf("%s: %q is still in %v", when, text, in)
		}
	}
	for _, text := range kept {
		if in := holding(text); len(in) == 0 {
			t.Errorf("%s: %q is in no file of the data directory", when, text)
		}
	}
}

func auditVerify(t *testing.T, data, when string) {
	t.Helper()
	out, err := exec.Command(bin, "audit", "verify", "--data", data).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok: ") {
		t.Fatalf("audit verify, %s: %v\n%s", when, err, out)
	}
}

// checkRebuild: with serve stopped, `annals rebuild` gives the tables as
// they were.
func checkRebuild(t *testing.T, data, when string) {
	t.Helper()
	live := dumpTables(t, data)
	rebuild(t, data)
	if rebuilt := dumpTables(t, data); rebuilt != live {
		t.Errorf("%s, `annals rebuild` gives other tables than the live ones:\n%s", when, diffLines(live, rebuilt))
	}
}

// eraseView asks slix_state.py view for spec and returns what each
// account saw as text, by "mam WHO with PEER", "mam WHO in ROOM", "pep
// WHO of OWNER" and "vcard WHO of JID".
func eraseView(t *testing.T, s *server, pw string, spec map[string]any) map[string]string {
	t.Helper()
	js, _ := json.Marshal(spec)
	v := map[string]string{}
	for _, r := range runDriver(t, "/usr/bin/python3", "clients/slix_state.py", strconv.Itoa(s.port), "view", pw, string(js)) {
		var key string
		switch r["event"] {
		case "mam":
			if r["ok"] != true {
				t.Fatalf("MAM query: %v", r)
			}
			key = fmt.Sprintf("mam %s with %s", r["who"], r["with_"])
			if r["to"] != "" {
				key = fmt.Sprintf("mam %s in %s", r["who"], r["to"])
			}
		case "pep":
			key = fmt.Sprintf("pep %s of %s", r["who"], r["owner"])
		case "vcard":
			key = fmt.Sprintf("vcard %s of %s", r["who"], r["of"])
		default:
			continue
		}
		b, _ := json.Marshal(r)
		v[key] = string(b)
	}
	return v
}
