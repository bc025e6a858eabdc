package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupRestore backs up a store with every file a restore needs
// beside it, restores it into a new directory and compares: the same log
// (audit verify passes, same head), the same files, owner-only modes.
func TestBackupRestore(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	seed(t, data, "romeo@example.com", "juliet@example.com", "nurse@example.com")
	side := map[string]string{
		"fake-salt.key":       "0123456789abcdef0123456789abcdef",
		"tls-cert.pem":        "cert",
		"tls-key.pem":         "key",
		"demo-password":       "pw\n",
		"uploads/slot1/a.png": "png bytes",
	}
	for rel, body := range side {
		p := filepath.Join(data, rel)
		os.MkdirAll(filepath.Dir(p), 0o750)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bk := filepath.Join(t.TempDir(), "bk")
	out, errOut, code := annals(t, "backup", bk, "--data", data)
	if code != 0 || !strings.Contains(out, "7 events up to position 7, 6 files") {
		t.Fatalf("backup: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Owner-only: the backup holds credentials and the server's keys.
	filepath.WalkDir(bk, func(p string, d os.DirEntry, err error) error {
		fi, _ := d.Info()
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	restored := filepath.Join(t.TempDir(), "restored")
	out, errOut, code = annals(t, "restore", bk, "--data", restored)
	if code != 0 || !strings.Contains(out, "ok: 7 events in 3 streams verify") || !strings.Contains(out, "restored the backup") {
		t.Fatalf("restore: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	for rel, body := range side {
		b, err := os.ReadFile(filepath.Join(restored, rel))
		if err != nil || string(b) != body {
			t.Errorf("restored %s: %q, %v; want %q", rel, b, err, body)
		}
	}
	entries, _ := os.ReadDir(restored)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".restore-") || e.Name() == manifestName {
			t.Errorf("restore left %s in the data directory", e.Name())
		}
	}
	if out, errOut, code := annals(t, "audit", "verify", "--data", restored); code != 0 || !strings.Contains(out, "ok: 7 events in 3 streams") {
		t.Fatalf("audit verify of the restored store: code %d, %s%s", code, out, errOut)
	}
	if out, _, _ := annals(t, "user", "list", "--data", restored); !strings.Contains(out, "romeo@example.com") {
		t.Fatalf("user list of the restored store: %q", out)
	}
}

// TestBackupRefusals: the cases where backup or restore must do nothing
// but say why, with exit code 2 for the caller's mistakes and 1 for a
// damaged backup, and leave no store behind.
func TestBackupRefusals(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	seed(t, data, "romeo@example.com", "juliet@example.com")
	bk := filepath.Join(t.TempDir(), "bk")
	if out, errOut, code := annals(t, "backup", bk, "--data", data); code != 0 {
		t.Fatalf("backup: code %d, %s%s", code, out, errOut)
	}

	t.Run("existing destination", func(t *testing.T) {
		dest := t.TempDir()
		os.WriteFile(filepath.Join(dest, "precious"), []byte("keep"), 0o600)
		_, errOut, code := annals(t, "backup", dest, "--data", data)
		if code != 2 || !strings.Contains(errOut, "not an empty directory") {
			t.Fatalf("code %d, stderr %q", code, errOut)
		}
		if entries, _ := os.ReadDir(dest); len(entries) != 1 {
			t.Fatalf("the destination was written to: %v", entries)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		for _, cmd := range [][]string{{"backup", filepath.Join(t.TempDir(), "x")}, {"restore", bk}} {
			_, errOut, code := annals(t, append(cmd, "--data", t.TempDir(), "--store", "nats://127.0.0.1:1")...)
			if code != 2 || !strings.Contains(errOut, "nats stream backup ANNALS") {
				t.Fatalf("%s with --store: code %d, stderr %q", cmd[0], code, errOut)
			}
		}
	})
	t.Run("no store", func(t *testing.T) {
		_, errOut, code := annals(t, "backup", filepath.Join(t.TempDir(), "x"), "--data", t.TempDir())
		if code != 2 || !strings.Contains(errOut, "no event store") {
			t.Fatalf("code %d, stderr %q", code, errOut)
		}
	})
	t.Run("restore without --data", func(t *testing.T) {
		_, errOut, code := annals(t, "restore", bk)
		if code != 2 || !strings.Contains(errOut, "needs --data") {
			t.Fatalf("code %d, stderr %q", code, errOut)
		}
	})
	t.Run("restore over a store", func(t *testing.T) {
		before, _ := os.ReadFile(filepath.Join(data, "annals.db"))
		_, errOut, code := annals(t, "restore", bk, "--data", data)
		if code != 2 || !strings.Contains(errOut, "already holds annals.db") {
			t.Fatalf("code %d, stderr %q", code, errOut)
		}
		if after, _ := os.ReadFile(filepath.Join(data, "annals.db")); !bytes.Equal(before, after) {
			t.Fatal("the existing store was changed")
		}
	})
	t.Run("not a backup", func(t *testing.T) {
		_, errOut, code := annals(t, "restore", data, "--data", filepath.Join(t.TempDir(), "r"))
		if code != 2 || !strings.Contains(errOut, "not a finished annals backup") {
			t.Fatalf("code %d, stderr %q", code, errOut)
		}
	})

	// Damaged backups: a flipped byte the manifest catches; a broken
	// page and an edited event under a manifest rewritten to match, which
	// integrity_check and audit verify catch.
	damaged := []struct {
		name   string
		damage func(t *testing.T, db string)
		resum  bool
		want   string
	}{
		{"flipped byte", func(t *testing.T, db string) { flip(t, db, 5000) }, false, "is not what was backed up"},
		{"broken page", func(t *testing.T, db string) {
			// Page 2 onwards, at 4 KiB pages: b-tree pages whose headers
			// are overwritten.
			b, _ := os.ReadFile(db)
			for i := 4096; i < len(b); i += 4096 {
				copy(b[i:], bytes.Repeat([]byte{0x0d}, 16))
			}
			os.WriteFile(db, b, 0o600)
		}, true, "damaged"},
		{"edited event", func(t *testing.T, db string) {
			sqlite3(t, db, `UPDATE events SET data = '{"jid":"tybalt@example.com"}' WHERE position = 2`)
		}, true, "does not verify"},
	}
	for _, d := range damaged {
		t.Run(d.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "bk")
			os.Mkdir(src, 0o700)
			for _, n := range []string{"annals.db", manifestName} {
				copyFile(t, filepath.Join(bk, n), filepath.Join(src, n))
			}
			db := filepath.Join(src, "annals.db")
			d.damage(t, db)
			if d.resum {
				resum(t, src)
			}
			target := filepath.Join(t.TempDir(), "r")
			out, errOut, code := annals(t, "restore", src, "--data", target)
			if code != 1 || !strings.Contains(errOut, d.want) {
				t.Fatalf("code %d, stdout %q, stderr %q; want %q", code, out, errOut, d.want)
			}
			if _, err := os.Stat(filepath.Join(target, "annals.db")); err == nil {
				t.Fatal("a damaged backup was put in place")
			}
		})
	}
}

func flip(t *testing.T, path string, at int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) <= at {
		t.Fatalf("%s: %d bytes, %v", path, len(b), err)
	}
	b[at] ^= 0xff
	os.WriteFile(path, b, 0o600)
}

// resum rewrites a backup's manifest to match its annals.db, as a damage
// the sums cannot see would be.
func resum(t *testing.T, dir string) {
	t.Helper()
	var m manifest
	b, _ := os.ReadFile(filepath.Join(dir, manifestName))
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	sum, err := fileSum(filepath.Join(dir, "annals.db"))
	if err != nil {
		t.Fatal(err)
	}
	m.SHA256["annals.db"] = sum
	b, _ = json.Marshal(m)
	os.WriteFile(filepath.Join(dir, manifestName), b, 0o600)
}
