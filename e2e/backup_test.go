package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// burstDone is one slixmpp burst whose every message the server acked
// (stream management: acked = archived), and when the driver returned.
type burstDone struct {
	ids       []string
	start, at time.Time
}

// burst runs clients/slix_chat.py burst once; unlike runDriver it may run
// on another goroutine than the test's.
func burst(port int, from, pw, to string, n int) (burstDone, error) {
	start := time.Now()
	cmd := exec.Command("/usr/bin/python3", "clients/slix_chat.py", strconv.Itoa(port), "burst", from, pw, to, strconv.Itoa(n))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	timer := time.AfterFunc(120*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.Output()
	if err != nil {
		return burstDone{}, fmt.Errorf("burst: %v\n%s%s", err, out, stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct {
			Event string   `json:"event"`
			OK    bool     `json:"ok"`
			IDs   []string `json:"ids"`
		}
		if json.Unmarshal([]byte(line), &r) == nil && r.Event == "acked" {
			if !r.OK {
				return burstDone{}, fmt.Errorf("burst: the server did not ack every message: %s", line)
			}
			return burstDone{ids: r.IDs, start: start, at: time.Now()}, nil
		}
	}
	return burstDone{}, fmt.Errorf("burst printed no acked line: %s", out)
}

// TestBackupWhileServing takes `annals backup` of a running server while
// two slixmpp clients keep sending, restores it into a new directory,
// checks it with audit verify, serves it and asks the archive (MAM, with
// slixmpp) for every message the server acked before the backup began:
// all of them must be there, once.
func TestBackupWhileServing(t *testing.T) {
	data := t.TempDir()
	users := map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"}
	addUsers(t, data, users)
	s, _ := serveOn(t, data)

	var (
		mu     sync.Mutex
		done   []burstDone
		errs   []error
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		bursts = func() int { mu.Lock(); defer mu.Unlock(); return len(done) }
	)
	// Two senders, back to back, so that the backup lands among messages
	// in flight.
	for _, p := range [][3]string{{"romeo@localhost", "montague", "juliet@localhost"}, {"juliet@localhost", "capulet", "romeo@localhost"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				b, err := burst(s.port, p[0], p[1], p[2], 150)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					done = append(done, b)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	waitFor := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); bursts() < n; time.Sleep(50 * time.Millisecond) {
			mu.Lock()
			e := errs
			mu.Unlock()
			if len(e) > 0 || time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("%d bursts of %d wanted; errors: %v", bursts(), n, e)
			}
		}
	}
	waitFor(3)
	// Into the next bursts: past the drivers' start and login, among
	// messages being sent and acked.
	time.Sleep(700 * time.Millisecond)
	bk := filepath.Join(t.TempDir(), "bk")
	began := time.Now()
	out, err := exec.Command(bin, "backup", bk, "--data", data).CombinedOutput()
	took := time.Since(began)
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("backup: %v\n%s", err, out)
	}
	t.Logf("%s(took %v)", out, took)
	waitFor(bursts() + 2) // traffic went on after the backup
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("bursts: %v", errs)
	}

	var before, all, during []string
	for _, b := range done {
		all = append(all, b.ids...)
		switch {
		case b.at.Before(began):
			before = append(before, b.ids...)
		case b.start.Before(began):
			during = append(during, b.ids...)
		}
	}
	if len(before) == 0 || len(during) == 0 {
		t.Fatalf("%d messages acked before the backup, %d in bursts it fell into: want some of each", len(before), len(during))
	}

	restored := filepath.Join(t.TempDir(), "restored")
	out, err = exec.Command(bin, "restore", bk, "--data", restored).CombinedOutput()
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "audit", "verify", "--data", restored).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok: ") {
		t.Fatalf("audit verify of the restored store: %v\n%s", err, out)
	}
	for _, f := range []string{"fake-salt.key", "tls-cert.pem", "tls-key.pem"} {
		a, _ := os.ReadFile(filepath.Join(data, f))
		b, err := os.ReadFile(filepath.Join(restored, f))
		if err != nil || len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: not restored as it was (%v)", f, err)
		}
	}

	s2, _ := serveOn(t, restored)
	sent := map[string]bool{}
	for _, id := range all {
		sent[id] = true
	}
	for _, q := range [][3]string{{"romeo@localhost", "montague", "juliet@localhost"}, {"juliet@localhost", "capulet", "romeo@localhost"}} {
		r := find(t, slixChat(t, s2, "count", q[0], q[1], q[2]), "archive-count")
		counts, _ := r["counts"].(map[string]any)
		var missing []string
		for _, id := range before {
			if counts[id] != 1.0 {
				missing = append(missing, fmt.Sprintf("%s (%v)", id, counts[id]))
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s's archive on the restored store lacks (or repeats) %d of the %d messages acked before the backup: %v",
				q[0], len(missing), len(before), missing)
		}
		for id, n := range counts {
			if !sent[id] || n != 1.0 {
				t.Errorf("%s's archive on the restored store has %q %v times", q[0], id, n)
			}
		}
		t.Logf("%s's restored archive: %d messages; %d acked before the backup, %d in the bursts it fell into, %d sent in all",
			q[0], len(counts), len(before), len(during), len(all))
	}
}
