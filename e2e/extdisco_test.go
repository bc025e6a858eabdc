package e2e

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// External Service Discovery (XEP-0215) as a slixmpp client asks it, the
// IQs built by hand (Debian's slixmpp has no plugin): the server
// advertises the feature when serve is given services; every service is
// listed, the relays with TURN REST credentials whose password the
// driver checks against HMAC-SHA1 computed in Python, and which expire
// --turn-ttl after the request; a type filter; credentials at one relay;
// item-not-found at one that is not configured.
func TestExternalServices(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUsers(t, data, map[string]string{"alice@localhost": "pw"})
	secret := filepath.Join(t.TempDir(), "turn-secret")
	if err := os.WriteFile(secret, []byte("north-wind\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const ttl = 2 * 3600
	s, _ := serveOn(t, data,
		"--external-service", "stun:stun.example.org:3478?transport=udp",
		"--external-service", "turn:turn.example.org:3478?transport=udp",
		"--external-service", "turns:turn.example.org:5349?transport=tcp",
		"--turn-secret-file", secret, "--turn-ttl", strconv.Itoa(ttl)+"s")
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_extdisco.py", "127.0.0.1:"+strconv.Itoa(s.port), "pw", "alice@localhost", secret)
	got := map[string]result{}
	for _, r := range rs {
		got[fmt.Sprint(r["event"], "/", r["what"])] = r
	}
	if f, _ := got["disco/<nil>"]["features"].([]any); !slices.Contains(f, any("urn:xmpp:extdisco:2")) {
		t.Errorf("disco#info features %v; want urn:xmpp:extdisco:2", f)
	}
	services := func(what string) []map[string]any {
		r := got["extdisco/"+what]
		if r["error"] != nil {
			t.Errorf("%s: %v", what, r["error"])
		}
		var out []map[string]any
		list, _ := r["services"].([]any)
		for _, s := range list {
			out = append(out, s.(map[string]any))
		}
		return out
	}
	// checkRelay: the credentials are the account's, right by the
	// secret, and last ttl from when they were asked for.
	checkRelay := func(what string, s map[string]any) {
		asked, _ := got["extdisco/"+what]["asked_at"].(float64)
		exp, _ := s["expires_unix"].(float64)
		switch {
		case s["restricted"] != "1" || s["username_jid"] != "alice@localhost" || s["password_ok"] != true:
			t.Errorf("%s: %v; want restricted credentials for alice@localhost, the password HMAC-SHA1 of the username", what, s)
		case s["username_expiry"] != exp:
			t.Errorf("%s: %v; the username's expiry is not the expires attribute", what, s)
		case math.Abs(exp-(asked+ttl)) > 5:
			t.Errorf("%s: expires %v, asked at %v; want %d s later", what, s["expires"], asked, ttl)
		}
	}
	all := services("all")
	if len(all) != 3 {
		t.Fatalf("all services: %v; want 3", all)
	}
	if st := all[0]; st["type"] != "stun" || st["host"] != "stun.example.org" || st["port"] != "3478" || st["transport"] != "udp" || st["username"] != nil || st["restricted"] != nil {
		t.Errorf("the STUN service: %v; want stun.example.org:3478 over udp, without credentials", st)
	}
	for i, want := range [][3]string{{"turn", "3478", "udp"}, {"turns", "5349", "tcp"}} {
		s := all[i+1]
		if s["type"] != want[0] || s["host"] != "turn.example.org" || s["port"] != want[1] || s["transport"] != want[2] {
			t.Errorf("service %d: %v; want %v at turn.example.org", i+1, s, want)
		}
		checkRelay("all", s)
	}
	if turn := services("turn"); len(turn) != 1 || turn[0]["type"] != "turn" {
		t.Errorf("type turn: %v; want the one turn service", turn)
	}
	if c := services("credentials"); len(c) != 1 || c[0]["type"] != "turns" || c[0]["port"] != "5349" || got["extdisco/credentials"]["answer"] != "credentials" {
		t.Errorf("credentials at the turns relay: %v", got["extdisco/credentials"])
	} else {
		checkRelay("credentials", c[0])
	}
	if e, _ := got["extdisco/unknown"]["error"].(map[string]any); e == nil || e["condition"] != "item-not-found" {
		t.Errorf("credentials at an unknown relay: %v; want item-not-found", got["extdisco/unknown"])
	}
}

// A user of another server asking this one's services is forbidden: its
// relays are for its own accounts. Both serve the same services.
func TestExternalServicesFederated(t *testing.T) {
	t.Parallel()
	secret := filepath.Join(t.TempDir(), "turn-secret")
	if err := os.WriteFile(secret, []byte("north-wind\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, b := startFederated(t, func(self, peer *fedServer) []string {
		return append(dialback(self, peer), "--external-service", "turn:turn.example.org:3478?transport=udp", "--turn-secret-file", secret)
	})
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_extdisco.py", a.c2s(), "pw-"+a.domain, "juliet@"+a.domain, secret, b.domain)
	got := map[string]result{}
	for _, r := range rs {
		got[fmt.Sprint(r["what"])] = r
	}
	if r := got["all"]; r["error"] != nil || len(r["services"].([]any)) != 1 {
		t.Errorf("juliet asking her own server: %v; want its one service", r)
	}
	if e, _ := got["other-server"]["error"].(map[string]any); e == nil || e["condition"] != "forbidden" {
		t.Errorf("juliet asking %s: %v; want forbidden", b.domain, got["other-server"])
	}
}

// The credentials open a real relay: Debian's coturn, configured as the
// README says (use-auth-secret, the same static-auth-secret), allocates
// for the username and password Annals gave the slixmpp client and
// relays between two of its allocations (turnutils_uclient -y); with
// the password altered it refuses.
func TestExternalServicesCoturn(t *testing.T) {
	t.Parallel()
	for _, prog := range []string{"turnserver", "turnutils_uclient"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s is needed (make tools installs coturn): %v", prog, err)
		}
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "turn-secret")
	if err := os.WriteFile(secret, []byte("north-wind\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	turn := exec.Command("turnserver", "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", strconv.Itoa(port),
		"--use-auth-secret", "--static-auth-secret", "north-wind", "--realm", "localhost", "--no-tls", "--no-dtls", "--no-cli",
		"--allow-loopback-peers", "--pidfile", filepath.Join(dir, "turnserver.pid"), "--log-file", "stdout", "--simple-log")
	var turnLog lockedBuffer
	turn.Stdout, turn.Stderr = &turnLog, &turnLog
	if err := turn.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		turn.Process.Kill()
		turn.Wait()
		if t.Failed() {
			t.Logf("coturn log:\n%s", tail(turnLog.String(), 16<<10))
		}
	})
	if err := waitListen("127.0.0.1:"+strconv.Itoa(port), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	addUsers(t, data, map[string]string{"alice@localhost": "pw"})
	s, _ := serveOn(t, data, "--external-service", "turn:127.0.0.1:"+strconv.Itoa(port)+"?transport=udp", "--turn-secret-file", secret)
	var creds map[string]any
	for _, r := range runDriver(t, "/usr/bin/python3", "clients/slix_extdisco.py", "127.0.0.1:"+strconv.Itoa(s.port), "pw", "alice@localhost", secret) {
		if list, _ := r["services"].([]any); r["what"] == "all" && len(list) == 1 {
			creds = list[0].(map[string]any)
		}
	}
	user, _ := creds["username"].(string)
	pass, _ := creds["password"].(string)
	if user == "" || pass == "" {
		t.Fatalf("no credentials: %v", creds)
	}
	relay := func(password string) (string, error) {
		out, err := exec.Command("turnutils_uclient", "-u", user, "-w", password, "-p", strconv.Itoa(port), "-y", "-n", "2", "-m", "1", "-l", "100", "127.0.0.1").CombinedOutput()
		return string(out), err
	}
	if out, err := relay(pass); err != nil || !strings.Contains(out, "Total lost packets 0") {
		t.Errorf("coturn with Annals' credentials: %v\n%s", err, tail(out, 4<<10))
	}
	// Another first character (one in 64 passwords begins with 'x'; such
	// a "wrong" one was the right one, and a fresh-clone CI failed).
	wrong := "x" + pass[1:]
	if pass[0] == 'x' {
		wrong = "y" + pass[1:]
	}
	if out, err := relay(wrong); err == nil {
		t.Errorf("coturn took a wrong password:\n%s", tail(out, 4<<10))
	}
}
