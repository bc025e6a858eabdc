package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeInstall runs `make install` into a DESTDIR, with the default
// PREFIX and with PREFIX=/usr, and checks that every file is where the
// Makefile says, that the unit starts the binary installed, that the
// installed configuration passes config check, and that a second install
// keeps the operator's annals.toml.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is needed")
	}
	for _, c := range []struct{ prefix, bin, unit, sysusers string }{
		{"", "usr/local/bin/annals", "usr/local/lib/systemd/system/annals.service", "usr/local/lib/sysusers.d/annals.conf"},
		{"/usr", "usr/bin/annals", "usr/lib/systemd/system/annals.service", "usr/lib/sysusers.d/annals.conf"},
	} {
		dest := t.TempDir()
		args := []string{"-C", "../..", "install", "DESTDIR=" + dest}
		if c.prefix != "" {
			args = append(args, "PREFIX="+c.prefix)
		}
		if out, err := exec.Command("make", args...).CombinedOutput(); err != nil {
			t.Fatalf("make %v: %v\n%s", args, err, out)
		}
		modes := map[string]os.FileMode{c.bin: 0o755, c.unit: 0o644, c.sysusers: 0o644,
			"etc/annals/annals.example.toml": 0o644, "etc/annals/annals.toml": 0o644}
		for rel, mode := range modes {
			fi, err := os.Stat(filepath.Join(dest, rel))
			if err != nil || fi.Mode().Perm() != mode {
				t.Errorf("PREFIX=%q: %s: %v, %v; want mode %v", c.prefix, rel, fi, err, mode)
			}
		}
		unit, _ := os.ReadFile(filepath.Join(dest, c.unit))
		if want := "ExecStart=/" + c.bin + " serve --config /etc/annals/annals.toml"; !strings.Contains(string(unit), want) {
			t.Errorf("PREFIX=%q: the unit does not say %q:\n%s", c.prefix, want, unit)
		}
		installed := filepath.Join(dest, c.bin)
		if out, err := exec.Command(installed, "help").Output(); err != nil || !strings.Contains(string(out), "annals backup") {
			t.Errorf("the installed binary: %v\n%s", err, out)
		}
		conf := filepath.Join(dest, "etc/annals/annals.toml")
		if out, err := exec.Command(installed, "config", "check", "--config", conf, "--data", t.TempDir()).CombinedOutput(); err != nil {
			t.Errorf("config check of the installed configuration: %v\n%s", err, out)
		}
		// An operator's configuration survives the next install.
		os.WriteFile(conf, []byte("domain = \"example.org\"\n"), 0o640)
		if out, err := exec.Command("make", args...).CombinedOutput(); err != nil {
			t.Fatalf("make %v again: %v\n%s", args, err, out)
		}
		if b, _ := os.ReadFile(conf); string(b) != "domain = \"example.org\"\n" {
			t.Errorf("a second install overwrote annals.toml: %.80q…", b)
		}
	}
}

// TestSystemdUnit checks contrib/annals.service with systemd-analyze
// verify (any complaint fails, even one systemd would only ignore) and that
// it keeps the options the README promises.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../../contrib/annals.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range []string{"User=annals", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"ReadWritePaths=/var/lib/annals", "PrivateTmp=yes", "ProtectHome=yes", "\nCapabilityBoundingSet=\n", "StateDirectoryMode=0700"} {
		if !strings.Contains(string(src), opt) {
			t.Errorf("contrib/annals.service lacks %q", strings.TrimSpace(opt))
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIPPING: systemd-analyze verify of contrib/annals.service: no systemd-analyze here (Debian package systemd)")
	}
	// The unit as make install writes it, starting the binary this test
	// built (verify checks that ExecStart's program exists).
	unit := filepath.Join(t.TempDir(), "annals.service")
	os.WriteFile(unit, []byte(strings.ReplaceAll(string(src), "@BINDIR@", filepath.Dir(bin))), 0o644)
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
