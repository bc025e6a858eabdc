package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A network namespace of its own gives a federation test what XMPP
// servers need and a shared machine cannot give: every domain on its own
// loopback address at port 5269 (the port every server falls back to when
// SRV finds nothing), names that resolve to those addresses, and DNS that
// fails at once. Nothing in it is reachable from outside, nor collides
// with another test or a server of the machine.
//
// `ip netns exec NAME` runs a process in it and bind-mounts each file of
// /etc/netns/NAME over its /etc namesake for that process: the hosts file
// written here becomes /etc/hosts, resolv.conf sends DNS to 127.0.0.1
// where nothing listens. Every process of a test (the peers, Annals, the
// client drivers) runs that way; the test process itself stays outside.
type netns struct {
	name   string
	hosts  string // the namespace's /etc/hosts, as a path outside it
	resolv string // its /etc/resolv.conf, likewise
	// dir is for the files of what runs in it (configurations, data,
	// logs), removed with it; world-readable, as ejabberd runs as its own
	// user. ANNALS_E2E_KEEP=1 keeps it.
	dir string
}

// netnsPrefix starts the name of every namespace these tests make; the
// pid of the test process that made it follows.
const netnsPrefix = "annals-e2e-"

var (
	netnsSeq     atomic.Int64
	netnsReaping sync.Once
)

// newNetns makes a namespace for t, with its loopback up (127.0.0.0/8 is
// all local on it) and a hosts file naming each domain's address, and
// removes it, with every process still in it and its directory, when t
// ends. Every name a peer needs is given here: Prosody reads the hosts
// file once, when it starts. It skips t, saying why, where namespaces
// cannot be made.
func newNetns(t testing.TB, hosts map[string]string) *netns {
	t.Helper()
	netnsReaping.Do(reapNetns)
	n := &netns{name: fmt.Sprintf("%s%d-%d", netnsPrefix, os.Getpid(), netnsSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Skipf("network namespaces are not available here (they need root and iproute2): ip netns add: %v %s", err, out)
	}
	n.dir = filepath.Join(os.TempDir(), n.name)
	t.Cleanup(func() {
		removeNetns(t, n.name)
		if os.Getenv("ANNALS_E2E_KEEP") != "" {
			t.Logf("kept (ANNALS_E2E_KEEP): %s", n.dir)
			return
		}
		os.RemoveAll(n.dir)
	})
	if err := os.Mkdir(n.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := n.command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Skipf("cannot bring up loopback in a network namespace: %v %s", err, out)
	}
	etc := filepath.Join("/etc/netns", n.name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	n.hosts, n.resolv = filepath.Join(etc, "hosts"), filepath.Join(etc, "resolv.conf")
	// localhost first: ejabberd's Erlang node is named ejabberd@localhost.
	byAddr := map[string][]string{}
	for name, addr := range hosts {
		byAddr[addr] = append(byAddr[addr], name)
	}
	lines := []string{"127.0.0.1 localhost", "::1 localhost ip6-localhost"}
	for addr, names := range byAddr {
		sort.Strings(names)
		lines = append(lines, addr+" "+strings.Join(names, " "))
	}
	sort.Strings(lines[2:])
	if err := os.WriteFile(n.hosts, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Nothing answers on 127.0.0.1:53, so an SRV query fails at once and
	// the peers fall back to the hosts file and port 5269.
	if err := os.WriteFile(n.resolv, []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return n
}

// command runs name inside the namespace.
func (n *netns) command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// waitListen waits until something inside the namespace accepts
// connections on addr (host:port), asking from inside.
func (n *netns) waitListen(addr string, timeout time.Duration) error {
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		return fmt.Errorf("waitListen %q: no port", addr)
	}
	script := fmt.Sprintf("for i in $(seq %d); do (exec 3<>/dev/tcp/%s/%s) 2>/dev/null && exit 0; sleep 0.05; done; exit 1",
		int(timeout/(50*time.Millisecond))+1, host, port)
	if out, err := n.command("bash", "-c", script).CombinedOutput(); err != nil {
		return fmt.Errorf("nothing listens on %s in %s after %v: %v %s", addr, n.name, timeout, err, out)
	}
	return nil
}

// pids lists the processes inside the namespace.
func netnsPids(name string) []int {
	out, _ := exec.Command("ip", "netns", "pids", name).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// removeNetns kills what is left in the namespace (ejabberd's epmd
// outlives ejabberd; a peer that would not stop) and deletes it. Only
// processes started in it by this test can be in it.
func removeNetns(t testing.TB, name string) {
	for try := 0; ; try++ {
		pids := netnsPids(name)
		if len(pids) == 0 {
			break
		}
		if try == 50 {
			t.Errorf("processes %v are still in namespace %s after SIGKILL", pids, name)
			break
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil && !bytes.Contains(out, []byte("No such file")) {
		t.Errorf("ip netns del %s: %v %s", name, err, out)
	}
	os.RemoveAll(filepath.Join("/etc/netns", name))
}

// reapNetns removes the namespaces, and their directories, that a test
// process that no longer runs left behind (a crash, a kill -9, a
// timeout's panic).
func reapNetns() {
	for _, dir := range []string{"/run/netns", "/etc/netns", os.TempDir()} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
			if !ok {
				continue
			}
			owner, _, _ := strings.Cut(rest, "-")
			pid, err := strconv.Atoi(owner)
			if err != nil || pid == os.Getpid() {
				continue
			}
			if _, err := os.Stat(filepath.Join("/proc", owner)); err == nil {
				continue // its test is still running
			}
			for _, p := range netnsPids(e.Name()) {
				syscall.Kill(p, syscall.SIGKILL)
			}
			exec.Command("ip", "netns", "del", e.Name()).Run()
			os.RemoveAll(filepath.Join("/etc/netns", e.Name()))
			os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
		}
	}
}
