package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/features/extdisco"
	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
)

// serve refuses malformed --external-service values, too many of them,
// a TURN secret given twice over, or with no relay to use it, or in a
// file too large to be one, and a --turn-ttl out of bounds: a usage
// error (exit 2) naming the flag; a secret file that is not there exits 1.
func TestExtdiscoFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "turn-secret")
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(secret, []byte("north-wind\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, make([]byte, maxSecretFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	turn := []string{"--external-service", "turn:turn.example.org:3478?transport=udp"}
	var many []string
	for i := range extdisco.MaxServices + 1 {
		many = append(many, "--external-service", fmt.Sprintf("stun:stun%d.example.org:3478?transport=udp", i))
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--external-service", "turn:turn.example.org:3478"}, 2, "--external-service: extdisco: malformed service \"turn:turn.example.org:3478\": no transport"},
		{[]string{"--external-service", "turn:turn.example.org?transport=udp"}, 2, "give host:port"},
		{[]string{"--external-service", "ftp:ftp.example.org:21?transport=tcp"}, 2, "the type is stun, stuns, turn or turns"},
		{many, 2, "33 services; at most 32"},
		{append(turn, turn...), 2, "given twice"},
		{append([]string{"--turn-secret", "s", "--turn-secret-file", secret}, turn...), 2, "not both"},
		{[]string{"--turn-secret-file", secret, "--external-service", "stun:stun.example.org:3478?transport=udp"}, 2, "no turn: or turns: service"},
		{append([]string{"--turn-secret-file", big}, turn...), 2, "holds more than 1024 bytes"},
		{append([]string{"--turn-ttl", "30s"}, turn...), 2, "give between 1m0s and 720h0m0s"},
		{append([]string{"--turn-ttl", "-1h"}, turn...), 2, "--turn-ttl must be more than 0"},
		{append([]string{"--turn-secret-file", filepath.Join(dir, "none")}, turn...), 1, "--turn-secret-file: open"},
	} {
		// A serve that wrongly starts is stopped rather than waited for.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin, append([]string{"serve", "--data", dir, "--c2s", "127.0.0.1:0", "--s2s", ""}, c.args...)...)
		out, _ := cmd.CombinedOutput()
		cancel()
		if code := cmd.ProcessState.ExitCode(); code != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("serve %v: code %d, output %q; want code %d and %q", c.args, code, out, c.code, c.want)
		}
	}
}

// The secret file's final newline is no part of the secret: a client is
// given the credentials the secret alone makes. Without services nothing
// is advertised.
func TestExtdiscoSecretFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "turn-secret")
	if err := os.WriteFile(path, []byte("north-wind\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := extdiscoFlags{services: stringList{"turn:turn.example.org:3478?transport=udp"}, secretFile: path, ttl: time.Hour}
	svc, err := e.service([]string{"example.com"})
	if err != nil {
		t.Fatal(err)
	}
	m := mux.New()
	svc.Register(m)
	got, _, err := muxtest.Ask(m, mux.Server, &muxtest.Session{Full: jid.MustParse("juliet@example.com/balcony")}, "",
		"<iq type='get' id='x'><services xmlns='urn:xmpp:extdisco:2'/></iq>")
	var exp int64
	if _, serr := fmt.Sscanf(between(got, "username='", "'"), "%d:", &exp); err != nil || serr != nil {
		t.Fatalf("%s, %v %v", got, err, serr)
	}
	_, want := extdisco.Credentials([]byte("north-wind"), "juliet@example.com", time.Unix(exp, 0))
	if !strings.Contains(got, "password='"+want+"'") {
		t.Errorf("%s; want the password the secret without its newline makes, %s", got, want)
	}
	none, err := (&extdiscoFlags{ttl: extdisco.DefaultTTL}).service([]string{"example.com"})
	if err != nil {
		t.Fatal(err)
	}
	m = mux.New()
	none.Register(m)
	if f := m.Features(mux.Server); len(f) != 0 {
		t.Errorf("without services the server advertises %v", f)
	}
}

func between(s, start, end string) string {
	_, after, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, end)
	return v
}
