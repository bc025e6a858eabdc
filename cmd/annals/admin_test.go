package main

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// --admin takes bare JIDs of accounts at the served domains (each once,
// normalized), and serve refuses to start with in-band registration
// while an admin's account does not exist.
func TestAdminFlags(t *testing.T) {
	t.Parallel()
	x := xmppFlags{domains: []string{"example.com", "localhost"}, admins: stringList{"Admin@example.com", "admin@example.com", "root@localhost"}}
	if err := x.validateAdmins(); err != nil || !slices.Equal(x.admins, stringList{"admin@example.com", "root@localhost"}) {
		t.Fatalf("admins %v, %v", x.admins, err)
	}
	dir := t.TempDir()
	seed(t, dir, "a@example.com")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--admin", "example.com"}, "--admin \"example.com\": give the bare JID of an account here"},
		{[]string{"--admin", "a@example.com/desk"}, "--admin"},
		{[]string{"--domain", "example.com", "--admin", "a@elsewhere.example"}, "not at a domain this server serves"},
		{[]string{"--domain", "example.com", "--registration", "--admin", "nobody@example.com"}, "would let anyone register it"},
	} {
		// A serve that wrongly starts is stopped rather than waited for.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin, append([]string{"serve", "--data", dir, "--c2s", "127.0.0.1:0", "--s2s", ""}, c.args...)...)
		out, _ := cmd.CombinedOutput()
		cancel()
		if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), c.want) {
			t.Errorf("serve %v: code %d, output %q; want code 2 and %q", c.args, code, out, c.want)
		}
	}
}
