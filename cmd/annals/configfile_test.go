package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// serveFlagsFrom registers serve's options (after the test set the
// environment, which their defaults read), parses args and applies the
// file.
func serveFlagsFrom(t *testing.T, args []string) (*serveOptions, *flag.FlagSet, *configReport, error) {
	t.Helper()
	var o serveOptions
	fs := newFlagSet("serve", io.Discard)
	o.flags(fs)
	r, err := parseWithConfig(fs, args)
	return &o, fs, r, err
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "annals.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigPrecedence: a flag wins over the option's ANNALS_* variable,
// which wins over the file, which wins over the default; for an option
// without a variable, a flag wins over the file.
func TestConfigPrecedence(t *testing.T) {
	file := "domain = [\"file.example\", \"file2.example\"]\n[c2s]\nc2s = \"127.0.0.1:1\"\nmax-stanza = 100000\nresume-timeout = \"7s\"\n"
	for _, tc := range []struct {
		name   string
		file   bool
		env    map[string]string
		args   []string
		option string
		want   string // the flag's value; for domain, the resolved domains
		source string
	}{
		{"default", false, nil, nil, "c2s", ":5222", "default"},
		{"file over default", true, nil, nil, "c2s", "127.0.0.1:1", "file %s:3"},
		{"env over file", true, map[string]string{"ANNALS_C2S": "127.0.0.1:2"}, nil, "c2s", "127.0.0.1:2", "env ANNALS_C2S"},
		{"empty env is unset", true, map[string]string{"ANNALS_C2S": ""}, nil, "c2s", "127.0.0.1:1", "file %s:3"},
		{"flag over env and file", true, map[string]string{"ANNALS_C2S": "127.0.0.1:2"}, []string{"--c2s", "127.0.0.1:3"}, "c2s", "127.0.0.1:3", "flag"},
		{"int from file", true, nil, nil, "max-stanza", "100000", "file %s:4"},
		{"flag over file, no variable", true, nil, []string{"--max-stanza", "2000"}, "max-stanza", "2000", "flag"},
		{"no variable: ANNALS_ name ignored", true, map[string]string{"ANNALS_MAX_STANZA": "5"}, nil, "max-stanza", "100000", "file %s:4"},
		{"duration from file", true, nil, nil, "resume-timeout", "7s", "file %s:5"},
		{"array from file", true, nil, nil, "domain", "file.example,file2.example", "file %s:1"},
		{"env over file array", true, map[string]string{"ANNALS_DOMAIN": "env.example"}, nil, "domain", "env.example", "env ANNALS_DOMAIN"},
		{"flag over file array", true, nil, []string{"--domain", "flag.example"}, "domain", "flag.example", "flag"},
		{"default array", false, nil, nil, "domain", "localhost", "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("ANNALS_C2S", "")
			t.Setenv("ANNALS_DOMAIN", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := tc.args
			path := ""
			if tc.file {
				path = writeConfig(t, file)
				args = append([]string{"--config", path}, args...)
			}
			o, fs, r, err := serveFlagsFrom(t, args)
			if err != nil {
				t.Fatal(err)
			}
			got := fs.Lookup(tc.option).Value.String()
			if tc.option == "domain" {
				if err := o.resolve(); err != nil {
					t.Fatal(err)
				}
				got = strings.Join(o.x.domains, ",")
			}
			if got != tc.want {
				t.Errorf("%s = %q, want %q", tc.option, got, tc.want)
			}
			want := tc.source
			if strings.Contains(want, "%s") {
				want = strings.Replace(want, "%s", path, 1)
			}
			if r.sources[tc.option] != want {
				t.Errorf("%s from %q, want %q", tc.option, r.sources[tc.option], want)
			}
		})
	}
}

// TestConfigFromEnv: $ANNALS_CONFIG names the file; --config wins.
func TestConfigFromEnv(t *testing.T) {
	t.Setenv("ANNALS_CONFIG", writeConfig(t, "max-stanza = 1234\n"))
	_, fs, _, err := serveFlagsFrom(t, nil)
	if err != nil || fs.Lookup("max-stanza").Value.String() != "1234" {
		t.Fatalf("$ANNALS_CONFIG: max-stanza %s, err %v", fs.Lookup("max-stanza").Value, err)
	}
	_, fs, _, err = serveFlagsFrom(t, []string{"--config", writeConfig(t, "max-stanza = 99\n")})
	if err != nil || fs.Lookup("max-stanza").Value.String() != "99" {
		t.Fatalf("--config over $ANNALS_CONFIG: max-stanza %s, err %v", fs.Lookup("max-stanza").Value, err)
	}
}

// TestConfigErrors: every kind of error in a file names its line and
// says what to write instead; serve refuses to start (a usage error).
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"unknown key", "log-level = \"info\"\nmax-stanzas = 10\n", []string{":2: unknown key \"max-stanzas\"", "did you mean max-stanza?"}},
		{"unknown key in a table", "[web]\n\nhtttp = \":1\"\n", []string{":3: unknown key \"htttp\"", "did you mean http?"}},
		{"unknown, nothing close", "frobnicate = 1\n", []string{":1: unknown key \"frobnicate\"", "annals.example.toml"}},
		{"wrong type: string for int", "max-stanza = \"big\"\n", []string{":1: max-stanza: wrong type", "a number, e.g. max-stanza = 10"}},
		{"wrong type: int for string", "c2s = 5222\n", []string{":1: c2s: wrong type", "a string"}},
		{"wrong type: string for bool", "push = \"yes\"\n", []string{":1: push: wrong type", "true or false"}},
		{"wrong type: string for array", "\n\ndomain = \"a.example\"\n", []string{":3: domain: wrong type", `domain = ["a", "b"]`}},
		{"wrong type: numbers in array", "admin = [1]\n", []string{":1: admin: wrong type", "an array of strings"}},
		{"duration as a number", "resume-timeout = 300\n", []string{":1: resume-timeout: wrong type", `resume-timeout = "30s"`}},
		{"bad duration", "resume-timeout = \"5 minutes\"\n", []string{`:1: resume-timeout = "5 minutes": parse error; give a duration as a string`, "--resume-timeout is how long"}},
		{"bad size", "upload-max-size = \"2 GB\"\n", []string{`:1: upload-max-size = "2 GB"`, "a size such as 100MiB"}},
		{"a value the flag refuses", "trusted-proxy = [\"10.0.0.0/8\", \"proxy.example\"]\n", []string{`:1: trusted-proxy = ["10.0.0.0/8", "proxy.example"]`, "--trusted-proxy is address or CIDR"}},
		{"set twice", "max-stanza = 1\n[c2s]\nmax-stanza = 2\n", []string{":3: max-stanza is set twice (also at line 1)"}},
		{"nested table", "[a.b]\nc2s = \":1\"\n", []string{"tables only group options"}},
		{"not TOML", "c2s = \n", []string{":1:", "it is not TOML"}},
		{"config in the file", "config = \"other.toml\"\n", []string{":1: unknown key \"config\"", "on the command line"}},
		{"several errors at once", "a-1 = 1\nb-2 = 2\n", []string{":1: unknown key \"a-1\"", ":2: unknown key \"b-2\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.file)
			_, _, _, err := serveFlagsFrom(t, []string{"--config", path})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, errUsage) {
				t.Errorf("not a usage error: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwants %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	// An explicit file that is not there is an error, not "no file".
	_, _, _, err := serveFlagsFrom(t, []string{"--config", filepath.Join(t.TempDir(), "nope.toml")})
	if err == nil || !strings.Contains(err.Error(), "give an existing file") {
		t.Errorf("missing --config file: %v", err)
	}
}

// TestExampleConfig: annals.example.toml names every serve option, set or
// in a "# key = value" comment, and no other; as it is, it is valid; every
// commented value has the option's type.
func TestExampleConfig(t *testing.T) {
	t.Setenv("ANNALS_S2S", "")
	path := filepath.Join("..", "..", "annals.example.toml")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	o, fs, _, err := serveFlagsFrom(t, []string{"--config", path})
	if err != nil {
		t.Fatalf("the example is not valid: %v", err)
	}
	if err := o.resolve(); err != nil {
		t.Fatalf("serve refuses the example: %v", err)
	}
	settings, err := readConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	for _, s := range settings {
		named = append(named, s.key)
	}
	commented := regexp.MustCompile(`(?m)^# ([a-z0-9-]+) = (.*)$`)
	for _, m := range commented.FindAllStringSubmatch(string(text), -1) {
		named = append(named, m[1])
		s, err := readConfig(writeConfig(t, m[1]+" = "+m[2]+"\n"))
		if err != nil {
			t.Errorf("commented %s: %v", m[1], err)
			continue
		}
		if f := fs.Lookup(m[1]); f != nil {
			if _, err := tomlToFlag(f, s[0].val); err != nil {
				t.Errorf("commented %s: %v", m[1], err)
			}
		}
	}
	var flags []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" {
			flags = append(flags, f.Name)
		}
	})
	for _, f := range flags {
		if !slices.Contains(named, f) {
			t.Errorf("serve has --%s, annals.example.toml has not", f)
		}
	}
	for i, n := range named {
		if !slices.Contains(flags, n) {
			t.Errorf("annals.example.toml has %s, serve has no such flag", n)
		}
		if slices.Contains(named[:i], n) {
			t.Errorf("annals.example.toml has %s twice", n)
		}
	}
}

// TestEnvBacked: envBacked lists exactly the serve options an ANNALS_*
// variable sets (by the convention ANNALS_ + the flag's name in capitals),
// so that the file never overrides a variable and a variable that sets
// nothing never hides the file.
func TestEnvBacked(t *testing.T) {
	var o serveOptions
	fs := newFlagSet("serve", io.Discard)
	o.flags(fs)
	files, _ := filepath.Glob("*.go")
	found := map[string]bool{}
	re := regexp.MustCompile(`"ANNALS_([A-Z0-9_]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "configfile.go" {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			name := strings.ToLower(strings.ReplaceAll(string(m[1]), "_", "-"))
			if fs.Lookup(name) != nil {
				found[name] = true
				if envBacked[name] != "ANNALS_"+string(m[1]) {
					t.Errorf("%s reads ANNALS_%s, which envBacked does not list for --%s", f, m[1], name)
				}
			}
		}
	}
	for name := range envBacked {
		if !found[name] {
			t.Errorf("envBacked lists --%s, whose variable no source reads", name)
		}
	}
}

// TestConfigCheck: config check prints every option with its value and
// source, secrets hidden, then every error with its fix; errors are
// exit status 1, a bad command line 2.
func TestConfigCheck(t *testing.T) {
	t.Setenv("ANNALS_S2S", "")
	t.Setenv("ANNALS_C2S", "127.0.0.1:7")
	path := writeConfig(t, "[limits]\nmax-stanza = 100000\nc2s = \":1\"\nturn-secret = \"hunter2\"\nexternal-service = [\"turn:turn.example.org:3478?transport=udp\"]\n")
	var out bytes.Buffer
	err := run(t.Context(), []string{"config", "check", "--config", path, "--log-level", "warn"}, nil, &out, io.Discard)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"max-stanza = 100000", "# file " + path + ":2",
		"c2s = \"127.0.0.1:7\"", "# env ANNALS_C2S",
		"log-level = \"warn\"", "# flag",
		"resume-timeout = \"5m0s\"", "# default",
		"domain = [\"localhost\"]", "muc = \"conference.localhost\"",
		"turn-secret = \"(hidden)\"", "# no errors",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config check output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "hunter2") {
		t.Error("config check prints the TURN secret")
	}
	var lines int
	fs := newFlagSet("serve", io.Discard)
	(&serveOptions{}).flags(fs)
	fs.VisitAll(func(*flag.Flag) { lines++ })
	if got := strings.Count(out.String(), " # "); got != lines {
		t.Errorf("%d options printed, serve has %d (--config included, not printed: want one less)", got, lines)
	}

	// Errors of the file and of serve's checks, all of them.
	path = writeConfig(t, "max-stanza = \"x\"\nlog-level = \"loud\"\nnope = 1\n")
	out.Reset()
	err = run(t.Context(), []string{"config", "check", "--config", path}, nil, &out, io.Discard)
	if err == nil || errors.Is(err, errUsage) {
		t.Fatalf("config check with errors: %v, want an error of exit status 1", err)
	}
	for _, want := range []string{"# 3 error(s):", "error: " + path + ":1: max-stanza: wrong type", "error: " + path + ":3: unknown key \"nope\"", "error: --log-level \"loud\": use debug, info, warn or error"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config check output lacks %q:\n%s", want, out.String())
		}
	}
	for _, args := range [][]string{{"config"}, {"config", "frob"}, {"config", "check", "--no-such-flag"}, {"config", "check", "extra"}} {
		if err := run(t.Context(), args, nil, io.Discard, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

// TestConfigExitStatus: the binary's exit statuses, and serve refusing a
// bad file before it opens anything.
func TestConfigExitStatus(t *testing.T) {
	bad := writeConfig(t, "max-stanzas = 1\n")
	data := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"config", "check", "--config", bad}, 1, "1 error(s)"},
		{[]string{"config", "check", "--bogus"}, 2, "bogus"},
		{[]string{"serve", "--data", data, "--config", bad}, 2, bad + ":1: unknown key"},
		{[]string{"serve", "--data", data, "--config", bad + ".missing"}, 2, "give an existing file"},
	} {
		_, stderr, code := annals(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.err) {
			t.Errorf("annals %q: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.err)
		}
	}
	if entries, _ := os.ReadDir(data); len(entries) != 0 {
		t.Errorf("serve with a bad file wrote %d files in --data", len(entries))
	}
}
