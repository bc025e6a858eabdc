package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestIQMixedClients: the IQs of TestIQBetweenClients between clients of
// two libraries, romeo's slixmpp client (a) and juliet's xmpp.js client
// (b), both ways: disco#info, software version, ping, 20 KiB over an
// in-band bytestream, and the entity capabilities lookups, slixmpp's
// plugin verifying the hash xmpp.js built by hand and the test verifying
// slixmpp's. The accounts are made contacts first, by two earlier
// slixmpp clients.
func TestIQMixedClients(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("clients/xmppjs/node_modules/@xmpp/client"); err != nil {
		t.Fatal("xmpp.js is not installed: make test runs npm ci in e2e/clients/xmppjs")
	}
	s := startServer(t, map[string]string{"romeo@localhost": "r-pw", "juliet@localhost": "j-pw"})
	checkContacts(t, all(slix(t, s, "subscribe", "romeo@localhost/laptop", "r-pw", "juliet@localhost/tablet", "j-pw"), "roster"))
	dir, _ := filepath.Abs("clients/xmppjs")
	ready, rest := startDriver(t, "node", filepath.Join(dir, "iq.mjs"), strconv.Itoa(s.port), "answer", "juliet@localhost", "j-pw")
	if str(ready["jid"]) != iqClients["b"] {
		t.Fatalf("the xmpp.js client is ready as %v, want %s", ready, iqClients["b"])
	}
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_iq.py", strconv.Itoa(s.port), "mixed", "romeo@localhost", "r-pw", iqClients["b"])
	rs = append(rs, rest()...)
	checkIQsBetween(t, rs, map[string]string{"a": "client-a", "b": "xmppjs-b"})
	checkCaps(t, rs, map[string]string{"a": slixCapsNode, "b": xmppjsCapsNode})
	checkCapsVerified(t, rs, 1)
}

// startDriver starts a client driver that runs alongside another: it
// waits for the driver's first fact, which must be "ready", and returns
// it with a function that waits for the driver to end and returns the
// facts it printed after.
func startDriver(t *testing.T, prog string, args ...string) (result, func() []result) {
	t.Helper()
	cmd := exec.Command(prog, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s %v: %v", prog, args, err)
	}
	timer := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
	t.Cleanup(func() {
		timer.Stop()
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	lines.Buffer(nil, 1<<20)
	next := func() (result, bool) {
		for lines.Scan() {
			var r result
			if err := json.Unmarshal(lines.Bytes(), &r); err != nil {
				t.Errorf("%s %v printed %q", prog, args, lines.Text())
				continue
			}
			return r, true
		}
		return nil, false
	}
	ready, ok := next()
	if !ok || ready["event"] != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("%s %v did not get ready: %v\nstderr:\n%s", prog, args, ready, stderr.String())
	}
	return ready, func() []result {
		t.Helper()
		var rs []result
		for r, ok := next(); ok; r, ok = next() {
			rs = append(rs, r)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s %v: %v\nstderr:\n%s", prog, args, err, stderr.String())
		}
		return rs
	}
}
