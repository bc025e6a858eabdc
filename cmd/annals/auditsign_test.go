package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// keygen makes a key pair with the real binary and returns the key file
// and the public key file.
func keygen(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, pub := filepath.Join(dir, "audit.key"), filepath.Join(dir, "audit.pub")
	out, errOut, code := annals(t, "audit", "keygen", key)
	if code != 0 || !strings.HasPrefix(out, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("keygen: code %d\n%s%s", code, out, errOut)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v (want mode 0600)", fi, err)
	}
	if err := os.WriteFile(pub, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return key, pub
}

func writeFile(t *testing.T, path, s string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSignedHead signs a head, then checks it against copies of the log
// edited with the sqlite3 CLI, with a wrong key, and against altered and
// malformed lines.
func TestSignedHead(t *testing.T) {
	t.Parallel()
	master := t.TempDir()
	keys := t.TempDir()
	// Positions: 1 romeo v1, 2 juliet v1, 3 nurse v1, 4 romeo v2, 5 juliet v2, 6 nurse v2, 7 nurse v3.
	seed(t, master, "romeo@example.com", "juliet@example.com", "nurse@example.com")
	key, pub := keygen(t, keys)
	_, otherPub := keygen(t, t.TempDir())
	if _, errOut, code := annals(t, "audit", "keygen", key); code != 2 || !strings.Contains(errOut, "exists") {
		t.Fatalf("keygen over an existing key: code %d %s", code, errOut)
	}
	line, errOut, code := annals(t, "audit", "head", "--data", master, "--sign", key, "--at", "6")
	if code != 0 || !strings.HasPrefix(line, "annals-head/1 log ") || !strings.Contains(line, " position 6 streams 3 events 6 digest sha256:") {
		t.Fatalf("head --sign: code %d %q %s", code, line, errOut)
	}
	head := writeFile(t, filepath.Join(keys, "head"), line)
	// More events after the signed position leave it verifying.
	seed(t, master, "benvolio@example.com")
	if out, errOut, code := annals(t, "audit", "verify", "--data", master, "--head", head, "--pub", pub); code != 0 || !strings.Contains(out, "ok: signed head of") {
		t.Fatalf("verify --head on the untouched log: code %d\n%s%s", code, out, errOut)
	}

	t.Run("log edited", func(t *testing.T) {
		t.Parallel()
		// The digest is over each stream's head and the count of events:
		// a reorder of two streams' events before the position leaves it,
		// and the chains (the whole-log chain, the recorded heads) fail.
		cases := []struct {
			name, sql, want string
			signed          bool // the signed head check itself fails
		}{
			{"head hash of a stream", `UPDATE events SET hash = zeroblob(32) WHERE position = 5`, "stream account-juliet@example.com version 2:", true},
			{"last event at the position removed", `DELETE FROM events WHERE position = 6`, "no event at position 6", true},
			{"a stream's last event before it removed", `DELETE FROM events WHERE position = 4`, "events 5, signed 6", true},
			{"first event's id", `UPDATE events SET id = randomblob(16) WHERE position = 1`, "log identity differs", true},
			{"two streams' events reordered before it", `UPDATE events SET position = 100 WHERE position = 4;
				UPDATE events SET position = 4 WHERE position = 5; UPDATE events SET position = 5 WHERE position = 100`, "stream account-juliet@example.com version 2:", false},
			{"a stream's events reordered", `UPDATE events SET position = 100 WHERE position = 3;
				UPDATE events SET position = 3 WHERE position = 6; UPDATE events SET position = 6 WHERE position = 100`, "stream account-nurse@example.com version", true},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				copyFile(t, filepath.Join(master, "annals.db"), filepath.Join(dir, "annals.db"))
				sqlite3(t, filepath.Join(dir, "annals.db"), c.sql)
				out, errOut, code := annals(t, "audit", "verify", "--data", dir, "--head", head, "--pub", pub)
				if code != 1 || strings.Contains(out, "BROKEN: signed head") != c.signed || !strings.Contains(out, c.want) {
					t.Fatalf("verify --head after %q: code %d\n%s%s\nwant exit 1 and %q", c.sql, code, out, errOut, c.want)
				}
			})
		}
	})

	t.Run("line or key", func(t *testing.T) {
		t.Parallel()
		altered := strings.Replace(line, " events 6 ", " events 5 ", 1)
		cases := []struct {
			name, line, pub string
			code            int
			want            string
		}{
			{"wrong key", line, otherPub, 1, "does not verify with the key"},
			{"altered count", altered, pub, 1, "does not verify with the key"},
			{"empty", "", pub, 2, "malformed signed head: want"},
			{"two lines", line + line, pub, 2, "more than one line"},
			{"missing sig", line[:strings.Index(line, " sig ")] + "\n", pub, 2, "malformed signed head: want"},
			{"bad digest", strings.Replace(line, "digest sha256:", "digest md5:", 1), pub, 2, "digest"},
			{"not canonical", strings.Replace(line, " position 6 ", " position 06 ", 1), pub, 2, "not in canonical form"},
			{"short sig", line[:strings.Index(line, "ed25519:")+8] + "AAAA\n", pub, 2, "want 64 bytes"},
			{"public key is the private key", line, key, 2, "PUBLIC KEY"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				f := writeFile(t, filepath.Join(t.TempDir(), "head"), c.line)
				out, errOut, code := annals(t, "audit", "verify", "--data", master, "--head", f, "--pub", c.pub)
				if code != c.code || !strings.Contains(out+errOut, c.want) {
					t.Fatalf("code %d\n%s%s\nwant code %d and %q", code, out, errOut, c.code, c.want)
				}
			})
		}
	})

	t.Run("usage", func(t *testing.T) {
		t.Parallel()
		loose := writeFile(t, filepath.Join(t.TempDir(), "loose.key"), "")
		if err := os.Chmod(loose, 0o644); err != nil {
			t.Fatal(err)
		}
		pubOnly, err := os.ReadFile(pub)
		if err != nil {
			t.Fatal(err)
		}
		pubAsKey := writeFile(t, filepath.Join(t.TempDir(), "pub.key"), string(pubOnly))
		cases := []struct {
			args []string
			want string
		}{
			{[]string{"audit", "verify", "--data", master, "--head", head}, "--head and --pub go together"},
			{[]string{"audit", "head", "--data", master, "--sign", loose}, "readable by others"},
			{[]string{"audit", "head", "--data", master, "--sign", pubAsKey}, "PRIVATE KEY"},
			{[]string{"audit", "keygen"}, "one KEYFILE"},
			{[]string{"audit", "export", "--data", master, "--since", "x"}, "--since"},
		}
		for _, c := range cases {
			out, errOut, code := annals(t, c.args...)
			if code != 2 || !strings.Contains(out+errOut, c.want) {
				t.Errorf("annals %v: code %d %q; want 2 and %q", c.args, code, out+errOut, c.want)
			}
		}
	})
}

// python runs tools/annals_verify.py.
func python(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", append([]string{"../../tools/annals_verify.py"}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// exportLines runs `audit export` and returns its lines.
func exportLines(t *testing.T, args ...string) []string {
	t.Helper()
	out, errOut, code := annals(t, append([]string{"audit", "export"}, args...)...)
	if code != 0 {
		t.Fatalf("export: code %d %s", code, errOut)
	}
	return strings.SplitAfter(strings.TrimSuffix(out, "\n"), "\n")
}

// TestPythonVerifierAgrees runs the Python verifier on exports of a real
// log and of tampered ones, and `audit verify` on the log tampered the
// same way: both must pass, or both name the same stream and version.
func TestPythonVerifierAgrees(t *testing.T) {
	t.Parallel()
	master := t.TempDir()
	seed(t, master, "romeo@example.com", "juliet@example.com", "nurse@example.com")
	key, pub := keygen(t, t.TempDir())
	line, _, _ := annals(t, "audit", "head", "--data", master, "--sign", key, "--at", "5")
	head := writeFile(t, filepath.Join(t.TempDir(), "head"), line)
	if out, errOut, code := annals(t, "audit", "verify", "--data", master, "--head", head, "--pub", pub); code != 0 {
		t.Fatalf("verify: %d %s%s", code, out, errOut)
	}
	headNow, _, _ := annals(t, "audit", "head", "--data", master)
	digest := headNow[strings.Index(headNow, "sha256:"):]
	lines := exportLines(t, "--data", master)
	full := writeFile(t, filepath.Join(t.TempDir(), "export"), strings.Join(lines, ""))
	if out, code := python(t, full, "--head", head); code != 0 || !strings.Contains(out, "ok: 7 events in 3 streams") || !strings.Contains(out, "position 7 "+strings.TrimSpace(digest)) {
		t.Fatalf("python on the real export: code %d %s; want the digest of `audit head`: %s", code, out, digest)
	}
	// An export since a position continues the chains from the tips; its
	// header's digest is what `audit head --at` prints.
	since := exportLines(t, "--data", master, "--since", "4")
	at4, _, _ := annals(t, "audit", "head", "--data", master, "--at", "4")
	if !strings.Contains(since[0], strings.TrimSpace(at4[strings.Index(at4, "sha256:"):])) {
		t.Fatalf("export --since 4 header %s lacks the digest of %q", since[0], at4)
	}
	if out, code := python(t, writeFile(t, filepath.Join(t.TempDir(), "since"), strings.Join(since, ""))); code != 0 || !strings.Contains(out, "ok: 3 events in 3 streams") {
		t.Fatalf("python on export --since 4: code %d %s", code, out)
	}

	// lineAt finds the export line of the event at a position.
	lineAt := func(pos string) int {
		for i, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			if m["kind"] == "event" && m["position"] == pos {
				return i
			}
		}
		t.Fatalf("no event at %s", pos)
		return 0
	}
	cases := []struct {
		name, sql string
		export    func() []string
		want      string
	}{
		{"one byte of data", `UPDATE events SET data = replace(data, 'SCRAM-SHA-256', 'SCRAM-SHA-255') WHERE position = 4`,
			func() []string {
				l := append([]string(nil), lines...)
				i := lineAt("4")
				l[i] = strings.Replace(l[i], "SCRAM-SHA-256", "SCRAM-SHA-255", 1)
				return l
			}, "stream account-romeo@example.com version 2:"},
		{"an event removed", `DELETE FROM events WHERE position = 6`,
			func() []string {
				i := lineAt("6")
				return append(append([]string(nil), lines[:i]...), lines[i+1:]...)
			}, "stream account-nurse@example.com version 2:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, code := python(t, writeFile(t, filepath.Join(t.TempDir(), "export"), strings.Join(c.export(), "")))
			if code != 1 || !strings.Contains(out, c.want) {
				t.Fatalf("python on the tampered export: code %d %s; want exit 1 and %q", code, out, c.want)
			}
			dir := t.TempDir()
			copyFile(t, filepath.Join(master, "annals.db"), filepath.Join(dir, "annals.db"))
			sqlite3(t, filepath.Join(dir, "annals.db"), c.sql)
			vout, verr, vcode := annals(t, "audit", "verify", "--data", dir)
			if vcode != 1 || !strings.Contains(vout, c.want) {
				t.Fatalf("audit verify on the log tampered the same way: code %d %s%s; want exit 1 and %q", vcode, vout, verr, c.want)
			}
			// The tampered log exports, and the Python verifier agrees.
			if c.name == "one byte of data" {
				l := exportLines(t, "--data", dir)
				if out, code := python(t, writeFile(t, filepath.Join(t.TempDir(), "export"), strings.Join(l, ""))); code != 1 || !strings.Contains(out, c.want) {
					t.Fatalf("python on the export of the tampered log: code %d %s", code, out)
				}
			}
		})
	}
}
