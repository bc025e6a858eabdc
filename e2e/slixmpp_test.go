package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "annals-e2e")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "annals")
	// Every server a test starts listens for other servers (federation)
	// on a port of its own, as several on one machine must.
	os.Setenv("ANNALS_S2S", "127.0.0.1:0")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/annals").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build annals: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running annals serve with a few accounts.
type server struct {
	port int
	data string
	logs *lockedBuffer // its standard error, when serveOn started it
}

func startServer(t *testing.T, users map[string]string) *server {
	t.Helper()
	data := t.TempDir()
	addUsers(t, data, users)
	s, _ := serveOn(t, data)
	return s
}

// addUsers creates accounts (bare JID -> password) in data.
func addUsers(t *testing.T, data string, users map[string]string) {
	t.Helper()
	for j, pw := range users {
		if out, err := exec.Command(bin, "user", "add", j, "--password", pw, "--data", data).CombinedOutput(); err != nil {
			t.Fatalf("user add %s: %v\n%s", j, err, out)
		}
	}
}

// serveOn starts annals serve on data and returns it with its process.
func serveOn(t *testing.T, data string, flags ...string) (*server, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--data", data, "--c2s", "127.0.0.1:0", "--log-level", "debug"}, flags...)...)
	return startServe(t, cmd, data), cmd
}

// startServe starts cmd, an annals serve on data, keeping its log (shown
// when the test fails), and stops it when the test ends.
func startServe(t *testing.T, cmd *exec.Cmd, data string) *server {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", tail(logs.String(), 48<<10))
		}
	})
	port, ok := listeningPort(stdout)
	if !ok {
		t.Fatalf("server did not say where it listens")
	}
	return &server{port: port, data: data, logs: logs}
}

// listeningPort reads serve's standard output until it says where it
// listens, and drains the rest in the background.
func listeningPort(stdout io.Reader) (int, bool) {
	lines := bufio.NewScanner(stdout)
	addr := regexp.MustCompile(`on 127\.\d+\.\d+\.\d+:(\d+)`)
	for lines.Scan() {
		if m := addr.FindStringSubmatch(lines.Text()); m != nil {
			port, _ := strconv.Atoi(m[1])
			go func() {
				for lines.Scan() {
				}
			}()
			return port, true
		}
	}
	return 0, false
}

type result map[string]any

// slix runs the slixmpp driver and returns its JSON lines.
func slix(t *testing.T, s *server, args ...string) []result {
	t.Helper()
	return runDriver(t, "/usr/bin/python3", append([]string{"clients/slix.py", strconv.Itoa(s.port)}, args...)...)
}

// runDriver runs a third-party client driver and returns its JSON lines.
func runDriver(t *testing.T, prog string, args ...string) []result {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		t.Fatalf("%s is needed (make test installs the drivers' Debian packages): %v", prog, err)
	}
	cmd := exec.Command(prog, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	timer := time.AfterFunc(150*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\nstdout:\n%s\nstderr:\n%s", prog, args, err, out, stderr.String())
	}
	var rs []result
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s %v printed %q (stderr %s)", prog, args, line, stderr.String())
		}
		rs = append(rs, r)
	}
	return rs
}

func find(t *testing.T, rs []result, event string) result {
	t.Helper()
	for _, r := range rs {
		if r["event"] == event {
			return r
		}
	}
	t.Fatalf("no %q in %v", event, rs)
	return nil
}

func TestSlixmppLogin(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"juliet@localhost": "balcony-1595"})
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			rs := slix(t, s, "login", "juliet@localhost/chamber", "balcony-1595", mech)
			login := find(t, rs, "login")
			if login["ok"] != true || login["jid"] != "juliet@localhost/chamber" {
				t.Fatalf("login with %s: %v (want the requested resource bound)", mech, login)
			}
			if _, ok := find(t, rs, "ping")["rtt"]; !ok {
				t.Fatal("ping not answered")
			}
			features := fmt.Sprint(find(t, rs, "disco")["features"])
			for _, f := range []string{"urn:xmpp:ping", "http://jabber.org/protocol/disco#info", "jabber:iq:version"} {
				if !strings.Contains(features, f) {
					t.Errorf("disco#info lacks %s: %s", f, features)
				}
			}
			if c := find(t, rs, "unknown-iq")["error"]; c != "service-unavailable" {
				t.Errorf("an IQ nobody answers got %q, want service-unavailable", c)
			}
		})
	}
	t.Run("no resource requested", func(t *testing.T) {
		login := find(t, slix(t, s, "login", "juliet@localhost", "balcony-1595", "SCRAM-SHA-256"), "login")
		j, _ := login["jid"].(string)
		if login["ok"] != true || !strings.HasPrefix(j, "juliet@localhost/") || len(j) <= len("juliet@localhost/") {
			t.Fatalf("the server did not generate a resource: %v", login)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		rs := slix(t, s, "login", "juliet@localhost/x", "wrong", "SCRAM-SHA-256")
		if find(t, rs, "login")["ok"] != false {
			t.Fatalf("login with a wrong password succeeded: %v", rs)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		rs := slix(t, s, "login", "nobody@localhost/x", "balcony-1595", "SCRAM-SHA-256")
		if find(t, rs, "login")["ok"] != false {
			t.Fatalf("login as an unknown user succeeded: %v", rs)
		}
	})
}

func TestSlixmppMessage(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	rs := slix(t, s, "converse", "romeo@localhost/orchard", "montague", "juliet@localhost/balcony", "capulet")
	got := find(t, rs, "received")
	if got["body"] != "wherefore art thou" || got["sender"] != "romeo@localhost/orchard" || got["to"] != "juliet@localhost/balcony" {
		t.Fatalf("juliet received %v; want the body from romeo@localhost/orchard (the spoofed from overwritten)", got)
	}
	conds := map[string]string{}
	for _, r := range rs {
		if r["event"] == "error" {
			conds[fmt.Sprint(r["sender"])] = fmt.Sprint(r["condition"])
		}
	}
	if conds["nobody@localhost"] != "service-unavailable" || conds["someone@elsewhere.example"] != "remote-server-not-found" {
		t.Fatalf("errors for undeliverable messages: %v", conds)
	}
}

// The RFC 6121 handshake between two slixmpp clients, each then seeing the
// other's presence; the roster survives a SIGKILL of the server.
func TestSlixmppSubscription(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUsers(t, data, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	s, cmd := serveOn(t, data)
	rs := slix(t, s, "subscribe", "romeo@localhost/orchard", "montague", "juliet@localhost/balcony", "capulet")
	t.Logf("slixmpp saw: %v", rs)
	for _, r := range rs {
		switch r["event"] {
		case "presence-seen":
			if r["sender"] == "" {
				t.Errorf("%s never saw the other's presence: %v", r["who"], rs)
			}
		case "roster":
			if r["subscription"] != "both" || r["pending_out"] != false {
				t.Errorf("%s's roster item: %v; want subscription both", r["who"], r)
			}
		}
	}
	// Acknowledged roster state survives SIGKILL.
	cmd.Process.Kill()
	cmd.Wait()
	s2, _ := serveOn(t, data)
	got := find(t, slix(t, s2, "roster", "romeo@localhost/again", "montague", "juliet@localhost"), "roster")
	if got["subscription"] != "both" {
		t.Fatalf("after SIGKILL and restart romeo's roster is %v", got)
	}
	if out, err := exec.Command(bin, "audit", "verify", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("audit verify after SIGKILL: %v\n%s", err, out)
	}
}

// In-band registration (XEP-0077) with --registration: slixmpp registers,
// logs in with the new account; the same name again is a conflict; without
// the flag registration is refused.
func TestSlixmppRegistration(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s, cmd := serveOn(t, data, "--registration")
	r := find(t, slix(t, s, "register", "mercutio@localhost/street", "queen-mab"), "register")
	if r["ok"] != true || r["login"] != true || r["jid"] != "mercutio@localhost/street" {
		t.Fatalf("registration then login: %v", r)
	}
	// An account the client saw acknowledged survives a SIGKILL.
	cmd.Process.Kill()
	cmd.Wait()
	s, _ = serveOn(t, data, "--registration")
	if login := find(t, slix(t, s, "login", "mercutio@localhost/again", "queen-mab", "SCRAM-SHA-256"), "login"); login["ok"] != true {
		t.Fatalf("login after SIGKILL and restart: %v", login)
	}
	r = find(t, slix(t, s, "register", "mercutio@localhost/again", "other"), "register")
	if r["error"] != "conflict" {
		t.Fatalf("registering a taken name: %v, want conflict", r)
	}
	out, err := exec.Command(bin, "user", "list", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "mercutio@localhost") {
		t.Fatalf("user list after in-band registration: %v %s", err, out)
	}
	closed, _ := serveOn(t, t.TempDir())
	r = find(t, slix(t, closed, "register", "tybalt@localhost/x", "prince-of-cats"), "register")
	if r["ok"] == true || r["login"] == true {
		t.Fatalf("registration without --registration: %v", r)
	}
}

// make run's demo account: serve --demo prints a password that a client
// can log in with.
func TestSlixmppDemoAccount(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	cmd := exec.Command(bin, "serve", "--demo", "--data", data, "--c2s", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	var password string
	port := 0
	lines := bufio.NewScanner(stdout)
	pw := regexp.MustCompile(`Demo account: demo@localhost  password: (\S+)`)
	addr := regexp.MustCompile(`on 127\.\d+\.\d+\.\d+:(\d+)`)
	for port == 0 && lines.Scan() {
		if m := pw.FindStringSubmatch(lines.Text()); m != nil {
			password = m[1]
		}
		if m := addr.FindStringSubmatch(lines.Text()); m != nil {
			port, _ = strconv.Atoi(m[1])
		}
	}
	go func() {
		for lines.Scan() {
		}
	}()
	if password == "" || port == 0 {
		t.Fatalf("serve --demo printed no password or address")
	}
	login := find(t, slix(t, &server{port: port, data: data}, "login", "demo@localhost/laptop", password, "SCRAM-SHA-256"), "login")
	if login["ok"] != true {
		t.Fatalf("demo login: %v", login)
	}
}

// --tls-cert/--tls-key: the server uses the given certificate.
func TestSlixmppOwnCertificate(t *testing.T) {
	t.Parallel()
	certDir := t.TempDir()
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(certDir, "c.pem"), filepath.Join(certDir, "k.pem")
	os.WriteFile(cert, certPEM, 0o600)
	os.WriteFile(key, keyPEM, 0o600)
	data := t.TempDir()
	if out, err := exec.Command(bin, "user", "add", "juliet@localhost", "--password", "balcony", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	s, _ := serveOn(t, data, "--tls-cert", cert, "--tls-key", key)
	if login := find(t, slix(t, s, "login", "juliet@localhost/x", "balcony", "SCRAM-SHA-256"), "login"); login["ok"] != true {
		t.Fatalf("login: %v", login)
	}
	if _, err := os.Stat(filepath.Join(data, "tls-cert.pem")); err == nil {
		t.Fatal("a self-signed certificate was made although one was given")
	}
}
