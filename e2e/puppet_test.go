package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// puppets are slixmpp clients (clients/slix_puppet.py) the test drives a
// command at a time, for scenarios where the test acts between the
// clients' steps; every stanza each client receives is a fact the test
// can wait for.
type puppets struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	mu    sync.Mutex
	facts []result
	more  chan struct{} // closed and replaced at each fact
	ended bool
	next  int
}

func startPuppets(t *testing.T) *puppets {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "clients/slix_puppet.py")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &puppets{t: t, cmd: cmd, in: in, more: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r result
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				t.Logf("puppets: %s", sc.Text())
				continue
			}
			p.mu.Lock()
			p.facts = append(p.facts, r)
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
		p.mu.Lock()
		p.ended = true
		close(p.more)
		p.more = make(chan struct{})
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		fmt.Fprintln(in, `{"op":"quit"}`)
		in.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("puppets' stderr:\n%s", stderr.String())
		}
	})
	p.waitFor("the driver", 20*time.Second, func(r result) bool { return r["event"] == "ready" })
	return p
}

// do runs a command and returns its done fact; it fails the test if the
// command reports an error, unless mayFail.
func (p *puppets) do(cmd map[string]any, mayFail bool) result {
	p.t.Helper()
	p.mu.Lock()
	p.next++
	id := fmt.Sprint("c", p.next)
	p.mu.Unlock()
	cmd["id"] = id
	b, _ := json.Marshal(cmd)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		p.t.Fatalf("puppets: %v", err)
	}
	r := p.waitFor(fmt.Sprint(cmd["op"], " ", cmd["name"]), 60*time.Second, func(r result) bool { return r["event"] == "done" && r["id"] == id })
	if r["error"] != nil && !mayFail {
		p.t.Fatalf("%v: %v", cmd, r["error"])
	}
	return r
}

// login connects a client named name.
func (p *puppets) login(name, addr, full, password string) {
	p.t.Helper()
	p.do(map[string]any{"op": "login", "name": name, "addr": addr, "jid": full, "password": password}, false)
}

// waitFor returns the first fact pred accepts, waiting up to timeout.
func (p *puppets) waitFor(what string, timeout time.Duration, pred func(result) bool) result {
	p.t.Helper()
	return p.waitSince(0, what, timeout, pred)
}

// mark is where the facts so far end, for waitSince.
func (p *puppets) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.facts)
}

// waitSince is waitFor among the facts from mark on.
func (p *puppets) waitSince(mark int, what string, timeout time.Duration, pred func(result) bool) result {
	p.t.Helper()
	deadline := time.After(timeout)
	seen := mark
	for {
		p.mu.Lock()
		facts, more, ended := p.facts, p.more, p.ended
		p.mu.Unlock()
		for ; seen < len(facts); seen++ {
			if pred(facts[seen]) {
				return facts[seen]
			}
		}
		if ended {
			p.t.Fatalf("waiting for %s: the driver ended", what)
		}
		select {
		case <-more:
		case <-deadline:
			p.t.Fatalf("waiting for %s: not within %v; facts:\n%s", what, timeout, p.dump())
		}
	}
}

// all returns the facts pred accepts so far.
func (p *puppets) all(pred func(result) bool) []result { return p.allSince(0, pred) }

// allSince returns the facts from mark on that pred accepts.
func (p *puppets) allSince(mark int, pred func(result) bool) []result {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []result
	for _, r := range p.facts[min(mark, len(p.facts)):] {
		if pred(r) {
			out = append(out, r)
		}
	}
	return out
}

func (p *puppets) dump() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, r := range p.facts {
		j, _ := json.Marshal(r)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// is builds a predicate on a fact's fields.
func is(kv ...any) func(result) bool {
	return func(r result) bool {
		for i := 0; i+1 < len(kv); i += 2 {
			if fmt.Sprint(r[kv[i].(string)]) != fmt.Sprint(kv[i+1]) {
				return false
			}
		}
		return true
	}
}
