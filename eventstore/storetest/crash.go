package storetest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"annals.im/annals/eventstore"
)

// The crash test runs the test binary again as a child that appends in a
// loop and prints one line per acknowledged event; the parent kills it with
// SIGKILL mid-stream and checks that every acknowledged event survived.
const (
	envCrashDir    = "ANNALS_STORETEST_CRASH_DIR"
	envCrashPrefix = "ANNALS_STORETEST_CRASH_PREFIX"
	crashWriters   = 8
	crashAcks      = 2000 // kill after this many acknowledged events
)

// crashChild turns this process into the appending child when the parent
// asked for it, and never returns then.
func crashChild(t *testing.T, open Open) bool {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		return false
	}
	p := os.Getenv(envCrashPrefix)
	s := open(t, dir)
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	for w := 0; w < crashWriters; w++ {
		go func() {
			for i := 0; ; i++ {
				stream := fmt.Sprintf("%saccount-w%d@example.com", p, w)
				if i%5 == 0 {
					stream = p + "room-shared@example.com"
				}
				evs, err := s.Append(ctxT(t), stream, eventstore.Any, proposed(1+i%3, "crash")...)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				mu.Lock()
				for _, e := range evs {
					fmt.Fprintf(out, "ack %s %d %s %s\n", e.Stream, e.Version, e.ID, e.Position)
				}
				// Flushed before the next append: a printed line is a
				// promise the store already made.
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	select {} // until killed
}

type ack struct {
	stream  string
	version uint64
	id      ulid.ULID
	pos     string
}

func testCrash(t *testing.T, open Open) {
	dir := t.TempDir()
	p := prefix()
	parts := strings.Split(t.Name(), "/")
	for i, part := range parts {
		parts[i] = "^" + regexp.QuoteMeta(part) + "$"
	}
	cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(parts, "/"), "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashPrefix+"="+p)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var acks []ack
	parse := func(line string) {
		if !strings.HasPrefix(line, "ack ") {
			return // the test framework's own output
		}
		f := strings.Fields(line)
		if len(f) != 5 {
			t.Fatalf("child printed %q", line)
		}
		v, err1 := strconv.ParseUint(f[2], 10, 64)
		id, err2 := ulid.ParseStrict(f[3])
		if err1 != nil || err2 != nil {
			t.Fatalf("child printed %q", line)
		}
		acks = append(acks, ack{f[1], v, id, f[4]})
	}
	deadline := time.After(60 * time.Second)
wait:
	for len(acks) < crashAcks {
		select {
		case line, ok := <-lines:
			if !ok {
				break wait
			}
			parse(line)
		case <-deadline:
			break wait
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred function, no flush, no Close
		t.Fatal(err)
	}
	for line := range lines { // what the child printed before it died was acknowledged too
		parse(line)
	}
	cmd.Wait()
	if len(acks) < crashAcks/2 {
		t.Fatalf("child acknowledged only %d events before the deadline", len(acks))
	}
	s := open(t, dir)
	defer s.Close()
	streams := make(map[string]bool)
	for _, a := range acks {
		streams[a.stream] = true
		got, err := s.ReadStream(ctxT(t), a.stream, a.version, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != a.id || got[0].Position.String() != a.pos {
			t.Fatalf("acknowledged %s version %d (%s at %s) is not in the reopened store (found %v)", a.stream, a.version, a.id, a.pos, got)
		}
	}
	for stream := range streams {
		checkChain(t, readStream(t, s, stream))
	}
	if _, err := eventstore.Verify(ctxT(t), s); err != nil {
		t.Fatalf("log after SIGKILL does not verify: %v", err)
	}
	// The store still takes appends after the crash.
	mustAppend(t, s, p+"room-shared@example.com", eventstore.Any, proposed(1, "after")...)
	t.Logf("%d acknowledged events before SIGKILL, all intact", len(acks))
}
