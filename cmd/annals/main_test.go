package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore/sqlite"
)

// bin is the annals binary built once for these tests: they run the real
// command, exit codes included.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "annals-bin")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "annals")
	// Every server a test starts listens for other servers (federation)
	// on a port of its own, as several on one machine must.
	os.Setenv("ANNALS_S2S", "127.0.0.1:0")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build annals: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// annals runs the binary and returns its stdout, stderr and exit code.
func annals(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// seed writes account histories through the real store and domain rules.
func seed(t *testing.T, dir string, users ...string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "annals.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ids := event.NewIDs()
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	do := func(j string, c account.Command) {
		t.Helper()
		jj, err := account.ParseJID(j)
		if err != nil {
			t.Fatal(err)
		}
		stream := account.Stream(jj)
		var st account.State
		evs, err := s.ReadStream(ctx, stream, 1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if st, err = account.Evolve(st, e); err != nil {
				t.Fatal(err)
			}
		}
		at = at.Add(time.Minute)
		out, err := account.Decide(st, c, ids, at, "test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, stream, int64(st.Version), out...); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range users {
		j, _ := account.ParseJID(u)
		do(u, account.Create{JID: j})
	}
	for _, u := range users {
		do(u, account.ChangePassword{Mechanisms: []string{"SCRAM-SHA-256"}})
	}
	if len(users) > 2 {
		do(users[2], account.Delete{Reason: "test"})
	}
}

func sqlite3(t *testing.T, db, script string) {
	t.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatal("the sqlite3 CLI is needed (make test installs the Debian package sqlite3)")
	}
	out, err := exec.Command("sqlite3", db, script).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %q: %v\n%s", script, err, out)
	}
}

// TestAuditVerifyTamper edits, deletes and reorders single rows of the
// events table with the sqlite3 CLI and expects verify to name the place.
func TestAuditVerifyTamper(t *testing.T) {
	t.Parallel()
	master := t.TempDir()
	// Positions: 1 romeo v1, 2 juliet v1, 3 nurse v1, 4 romeo v2, 5 juliet v2,
	// 6 nurse v2, 7 nurse v3.
	seed(t, master, "romeo@example.com", "juliet@example.com", "nurse@example.com")
	if out, errOut, code := annals(t, "audit", "verify", "--data", master); code != 0 || !strings.Contains(out, "ok: 7 events in 3 streams") {
		t.Fatalf("untouched log: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	const (
		romeo  = "stream account-romeo@example.com version "
		juliet = "stream account-juliet@example.com version "
		nurse  = "stream account-nurse@example.com version "
	)
	cases := []struct {
		name, sql string
		want      []string // any of these is a right answer
	}{
		{"edit data", `UPDATE events SET data = '{"jid":"tybalt@example.com"}' WHERE position = 2`, []string{juliet + "1"}},
		{"edit data keeping length", `UPDATE events SET data = replace(data, 'SCRAM-SHA-256', 'SCRAM-SHA-255') WHERE position = 4`, []string{romeo + "2"}},
		{"edit hash", `UPDATE events SET hash = zeroblob(32) WHERE position = 5`, []string{juliet + "2"}},
		{"edit type", `UPDATE events SET type = 'AccountDeleted' WHERE position = 4`, []string{romeo + "2"}},
		{"edit time", `UPDATE events SET occurred_at = occurred_at + 1 WHERE position = 1`, []string{romeo + "1"}},
		{"edit cause", `UPDATE events SET cause = 'forged' WHERE position = 6`, []string{nurse + "2"}},
		{"edit id", `UPDATE events SET id = randomblob(16) WHERE position = 3`, []string{nurse + "1"}},
		{"edit version", `UPDATE events SET version = 9 WHERE position = 7`, []string{nurse + "3"}},
		{"move to another stream", `UPDATE events SET stream = 'account-juliet@example.com', version = 3 WHERE position = 7`, []string{nurse + "3", juliet + "3"}},
		{"delete first", `DELETE FROM events WHERE position = 1`, []string{romeo + "1"}},
		{"delete middle of a stream", `DELETE FROM events WHERE position = 6`, []string{nurse + "2"}},
		{"delete last of juliet", `DELETE FROM events WHERE position = 5`, []string{juliet + "2"}},
		{"delete last of a stream", `DELETE FROM events WHERE position = 4`, []string{romeo + "2"}},
		{"delete last of the log", `DELETE FROM events WHERE position = 7`, []string{nurse + "3"}},
		{"reorder within a stream", `UPDATE events SET position = 100 WHERE position = 3;
			UPDATE events SET position = 3 WHERE position = 6; UPDATE events SET position = 6 WHERE position = 100`, []string{nurse + "1", nurse + "2"}},
		{"reorder across streams", `UPDATE events SET position = 100 WHERE position = 4;
			UPDATE events SET position = 4 WHERE position = 5; UPDATE events SET position = 5 WHERE position = 100`, []string{juliet + "2"}},
		{"edit prev link", `UPDATE events SET prev = 1 WHERE position = 5`, []string{juliet + "2"}},
		{"renumber a position", `UPDATE events SET position = 50 WHERE position = 7`, []string{nurse + "3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			copyFile(t, filepath.Join(master, "annals.db"), filepath.Join(dir, "annals.db"))
			sqlite3(t, filepath.Join(dir, "annals.db"), c.sql)
			out, errOut, code := annals(t, "audit", "verify", "--data", dir)
			if code == 0 {
				t.Fatalf("verify exited 0 after %q: %s", c.sql, out)
			}
			named := false
			for _, w := range c.want {
				named = named || strings.Contains(out+errOut, w+":")
			}
			if !named {
				t.Fatalf("verify after %q said\n%s%s\nwant it to name one of %q", c.sql, out, errOut, c.want)
			}
		})
	}
}

// copyFile copies a checkpointed SQLite file (the store was closed, so the
// WAL is folded in).
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// dumpReadModels prints every read-model table and the checkpoints, rows
// in primary-key order, so two databases can be compared as text.
func dumpReadModels(t *testing.T, path string) string {
	t.Helper()
	s, err := tryDump(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tryDump(path string) (string, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		return "", err
	}
	defer db.Close()
	var b strings.Builder
	tables := []string{"projection_checkpoints"}
	for _, p := range allProjections() {
		tables = append(tables, p.Tables()...)
	}
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `" ORDER BY 1`)
		if err != nil {
			return "", fmt.Errorf("dump %s: %w", table, err)
		}
		cols, _ := rows.Columns()
		fmt.Fprintf(&b, "== %s %v\n", table, cols)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return "", err
			}
			fmt.Fprintf(&b, "%v\n", vals)
		}
		rows.Close()
	}
	return b.String(), nil
}

// TestRebuildMatchesLive runs `annals serve`, writes events from another
// process while it runs, stops it, then rebuilds and compares the tables.
func TestRebuildMatchesLive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "annals.db")
	seed(t, dir, "alice@example.com", "bob@example.com")

	srv := exec.Command(bin, "serve", "--data", dir, "--log-level", "debug", "--c2s", "127.0.0.1:0")
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	// Written while serve runs, by this process: serve must pick them up.
	seed(t, dir, "carol@example.com", "dave@example.com", "eve@example.com")

	s, err := sqlite.Open(context.Background(), db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.ReadAll(context.Background(), event.Position{}, 1000)
	s.Close()
	if err != nil || len(last) == 0 {
		t.Fatalf("read log: %d events, %v", len(last), err)
	}
	want := last[len(last)-1].Position
	deadline := time.Now().Add(30 * time.Second)
	caughtUp := fmt.Sprintf("[accounts/v1 %d %d]", want.Commit, want.Prepare)
	for dump, _ := tryDump(db); !strings.Contains(dump, caughtUp); dump, _ = tryDump(db) {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not project up to %s:\n%s\n%s", want, dump, srvOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Only one process writes read models: rebuild refuses while serve runs.
	if out, errOut, code := annals(t, "rebuild", "--data", dir); code == 0 || !strings.Contains(errOut, "in use") {
		t.Fatalf("rebuild beside a running serve: code %d\n%s%s", code, out, errOut)
	}
	if err := srv.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("serve exited with %v:\n%s", err, srvOut.String())
	}
	live := dumpReadModels(t, db)
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		if !strings.Contains(live, u+"@example.com") {
			t.Fatalf("live read model lacks %s:\n%s", u, live)
		}
	}
	if strings.Contains(live, "eve@example.com") {
		t.Fatalf("deleted account eve is still in the live read model:\n%s", live)
	}

	out, errOut, code := annals(t, "rebuild", "--data", dir)
	if code != 0 || !strings.Contains(out, "accounts/v1: replayed 11 events") {
		t.Fatalf("rebuild: code %d\n%s%s", code, out, errOut)
	}
	if rebuilt := dumpReadModels(t, db); rebuilt != live {
		t.Fatalf("rebuilt read models differ from the live ones:\nlive:\n%s\nrebuilt:\n%s", live, rebuilt)
	}
}

func TestCLIErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "a@example.com")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no command given"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"audit"}, 2, "audit needs query, verify, head, export or keygen"},
		{[]string{"audit", "verify", "--data", filepath.Join(dir, "nope")}, 1, "no event store at"},
		{[]string{"audit", "query", "--data", dir, "--since", "yesterday"}, 2, "--since"},
		{[]string{"audit", "query", "--data", dir, "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"audit", "head", "--data", dir, "--at", "x"}, 2, "--at"},
		{[]string{"audit", "head", "--data", dir, "--at", "99"}, 1, "no event at position 99"},
		{[]string{"serve", "--data", dir, "--durability", "maybe"}, 2, "--durability"},
		{[]string{"serve", "--data", dir, "--archive-expiry", "1h"}, 2, "at least 48h0m0s"},
		{[]string{"serve", "--data", dir, "--archive-expiry", "-72h"}, 2, "--archive-expiry"},
		{[]string{"serve", "--data", dir, "--archive-expiry", "72h", "--seal-content=false"}, 2, "needs --seal-content"},
		{[]string{"serve", "--data", dir, "--archive-expiry", "72h", "--archive-expiry-every", "1s"}, 2, "give 1m to 24h"},
		{[]string{"user", "erase", "a@example.com", "--data", dir, "--reason", strings.Repeat("r", 1025)}, 1, "reason is too long"},
		{[]string{"user", "erase", "nobody@example.com", "--data", dir}, 1, "no such account"},
		{[]string{"serve", "--data", dir, "--allow-plaintext", "--c2s", "0.0.0.0:5222"}, 2, "only allowed on loopback"},
		{[]string{"serve", "--data", dir, "--domain", "not a domain"}, 2, "--domain"},
		{[]string{"serve", "--data", dir, "--tls-cert", "x.pem"}, 2, "together"},
		{[]string{"serve", "--data", dir, "--s2s", "", "--mirror-of", "conference.example.org"}, 2, "needs --s2s"},
		{[]string{"serve", "--data", dir, "--mirror-service=false", "--mirror-of", "conference.example.org"}, 2, "--mirror-service"},
		{[]string{"serve", "--data", dir, "--mirror-of", "not a domain"}, 2, "--mirror-of take domains"},
		{[]string{"serve", "--data", dir, "--mirror-timeout", "0s"}, 2, "--mirror-timeout"},
		{[]string{"serve", "--data", dir, "--muc-voice-request-interval", "0s"}, 2, "--muc-voice-request-interval"},
		{[]string{"serve", "--data", dir, "--muc-idle-leave", "-1s"}, 2, "--muc-idle-leave"},
		{[]string{"serve", "--data", dir, "--mirror-resend-page", "0"}, 2, "--mirror-resend-page"},
		{[]string{"mirror", "history", "--data", dir, "--max", "0", "hall@conference.example.org"}, 2, "Usage"},
		{[]string{"mirror", "rebuild", "--from-master", "--data", dir, "hall@conference.example.org"}, 2, "start annals serve first"},
		{[]string{"rebuild", "--data", dir, "--projection", "nope"}, 2, "no such projection"},
	}
	for _, c := range cases {
		out, errOut, code := annals(t, c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("annals %v: code %d, output %q; want code %d and %q", c.args, code, out+errOut, c.code, c.want)
		}
	}
}

func TestAuditQueryAndHead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "romeo@example.com", "juliet@example.com", "nurse@example.com")

	out, _, code := annals(t, "audit", "query", "--data", dir, "--type", "AccountCreated", "--json")
	if code != 0 {
		t.Fatalf("query exited %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 AccountCreated lines, got:\n%s", out)
	}
	for _, l := range lines {
		var e event.Envelope
		if err := e.UnmarshalJSON([]byte(l)); err != nil || e.Type != account.TypeCreated {
			t.Fatalf("line %q: %v", l, err)
		}
	}
	out, _, _ = annals(t, "audit", "query", "--data", dir, "--stream", "account-nurse@example.com")
	if n := strings.Count(out, "\n"); n != 3 || !strings.Contains(out, "AccountDeleted") {
		t.Fatalf("nurse's stream: want 3 events ending in AccountDeleted, got:\n%s", out)
	}
	// Seeded minutes: 09:01-09:03 created, 09:04-09:06 passwords, 09:07 deleted.
	out, _, _ = annals(t, "audit", "query", "--data", dir, "--since", "2026-11-27T09:04:00Z", "--until", "2026-11-27T09:06:00Z")
	if n := strings.Count(out, "\n"); n != 2 || strings.Contains(out, "AccountCreated") {
		t.Fatalf("time window: want 2 password changes, got:\n%s", out)
	}

	before, _, code := annals(t, "audit", "head", "--data", dir)
	if code != 0 || !strings.HasPrefix(before, "position 7 streams 3 events 7 digest sha256:") {
		t.Fatalf("head: %q", before)
	}
	// More events later do not change the digest as of the recorded position.
	seed(t, dir, "benvolio@example.com")
	again, _, _ := annals(t, "audit", "head", "--data", dir, "--at", "7")
	if again != before {
		t.Fatalf("head --at 7 after more appends = %q, recorded %q", again, before)
	}
	now, _, _ := annals(t, "audit", "head", "--data", dir)
	if now == before {
		t.Fatal("head did not change after appends")
	}
	// Truncating the log is visible against the recorded digest.
	sqlite3(t, filepath.Join(dir, "annals.db"), `DELETE FROM events WHERE position >= 7`)
	if after, _, code := annals(t, "audit", "head", "--data", dir, "--at", "7"); code == 0 && after == before {
		t.Fatalf("head --at 7 after truncation still matches: %q", after)
	}
}

func TestUserCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := func(stdin string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--data", dir)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	out, code := run("", "user", "add", "juliet@localhost", "--random-password")
	const prefix = "juliet@localhost password: "
	if code != 0 || !strings.HasPrefix(out, prefix) {
		t.Fatalf("add --random-password: %d %q", code, out)
	}
	juliet := strings.TrimSpace(strings.TrimPrefix(out, prefix))
	if out, code := run("wherefore\n", "user", "add", "romeo@localhost"); code != 0 {
		t.Fatalf("add with the password on stdin: %d %q", code, out)
	}
	cases := []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"", []string{"user", "add", "romeo@localhost", "--password", "x"}, 1, "already exists"},
		{"", []string{"user", "passwd", "nurse@localhost", "--password", "x"}, 1, "no such account"},
		{"", []string{"user", "del", "nurse@localhost"}, 1, "no such account"},
		{"", []string{"user", "add", "localhost", "--password", "x"}, 2, "not a bare JID"},
		{"", []string{"user", "add", "a@localhost/phone", "--password", "x"}, 2, "not a bare JID"},
		{"", []string{"user", "add", "a@localhost"}, 2, "no password"},
		{"", []string{"user", "add", "a@localhost", "--password", "x", "--random-password"}, 2, "not both"},
		{"", []string{"user", "add"}, 2, "needs a JID"},
		{"", []string{"user", "frob"}, 2, "unknown user command"},
		{"", []string{"user", "passwd", "romeo@localhost", "--password", "doth"}, 0, "password set"},
		{"", []string{"user", "list"}, 0, "juliet@localhost\tcreated "},
		{"", []string{"user", "del", "romeo@localhost"}, 0, "deleted"},
		// Flags before or after the JID, as people type them.
		{"", []string{"user", "add", "--password", "mercutio-pw", "mercutio@localhost"}, 0, "password set"},
		{"", []string{"user", "passwd", "--password", "queen-mab", "mercutio@localhost"}, 0, "password set"},
		{"", []string{"user", "del", "mercutio@localhost", "tybalt@localhost"}, 2, "unexpected argument"},
		{"", []string{"user", "--help"}, 0, "Usage:"},
	}
	for _, c := range cases {
		out, code := run(c.stdin, c.args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("annals %v: code %d, output %q; want code %d and %q", c.args, code, out, c.code, c.want)
		}
	}
	if out, _ := run("", "user", "list"); strings.Contains(out, "romeo") || !strings.Contains(out, "juliet") {
		t.Fatalf("list after deleting romeo: %q", out)
	}
	// The log says what happened to accounts, never the passwords.
	raw, err := os.ReadFile(filepath.Join(dir, "annals.db"))
	if err != nil {
		t.Fatal(err)
	}
	log, _ := run("", "audit", "query", "--json")
	for _, secret := range []string{juliet, "wherefore", "doth"} {
		if strings.Contains(log, secret) || bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("the password %q is stored in clear", secret)
		}
	}
	for _, typ := range []string{"AccountCreated", "AccountPasswordChanged", "AccountDeleted"} {
		if !strings.Contains(log, typ) {
			t.Fatalf("the log lacks %s:\n%s", typ, log)
		}
	}
	// And which command did it.
	for _, cause := range []string{"cli:user add", "cli:user passwd", "cli:user del"} {
		if !strings.Contains(log, `"cause":"`+cause+`"`) {
			t.Fatalf("no event caused by %q:\n%s", cause, log)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "annals.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("annals.db mode %v (err %v), want 0600", fi.Mode().Perm(), err)
	}
}

// serve --demo creates the demo account once and prints the same password
// on every start.
func TestServeDemo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := func() string {
		t.Helper()
		cmd := exec.Command(bin, "serve", "--demo", "--data", dir, "--c2s", "127.0.0.1:0")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "serving") {
				break
			}
		}
		cmd.Process.Signal(os.Interrupt)
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		return out.String()
	}
	first, second := start(), start()
	line := func(s string) string {
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "Demo account: demo@localhost  password: ") {
				return l
			}
		}
		t.Fatalf("no demo account line in %q", s)
		return ""
	}
	if line(first) != line(second) {
		t.Fatalf("demo password changed between starts: %q then %q", line(first), line(second))
	}
	out, _, _ := annals(t, "user", "list", "--data", dir)
	if strings.Count(out, "demo@localhost") != 1 {
		t.Fatalf("user list: %q", out)
	}
}
