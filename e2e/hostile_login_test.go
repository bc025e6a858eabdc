package e2e

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Attacks on logins (issue 10 items 3, 4, 5): credential aliases, password
// guessing, and memory spent on failed logins. Loopback only; every
// 127.0.0.0/8 address is a different client address to the server.

// dialFrom connects from source address src (e.g. "127.0.0.2") and
// negotiates STARTTLS, leaving the client before authentication.
func dialFrom(t *testing.T, addr, src string) *loadClient {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	c := &loadClient{nc: nc}
	if err := c.open("localhost"); err != nil {
		t.Fatal(err)
	}
	if err := c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		t.Fatal(err)
	}
	if st, _, err := c.next(); err != nil || st.Name.Local != "proceed" {
		t.Fatalf("starttls: %v", err)
	}
	c.nc = tls.Client(nc, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := c.open("localhost"); err != nil {
		t.Fatal(err)
	}
	return c
}

// plain makes one SASL PLAIN attempt and returns the server's answer:
// "success", or the failure condition.
func (c *loadClient) plain(t *testing.T, user, password string) string {
	t.Helper()
	if err := c.sendAuth(user, password); err != nil {
		t.Fatal(err)
	}
	return c.answer(t)
}

func (c *loadClient) sendAuth(user, password string) error {
	return c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + "</auth>")
}

func (c *loadClient) answer(t *testing.T) string {
	t.Helper()
	st, inner, err := c.next()
	if err != nil {
		t.Fatalf("SASL answer: %v", err)
	}
	if st.Name.Local == "failure" {
		return strings.Trim(strings.SplitN(strings.TrimPrefix(inner, "<"), " ", 2)[0], "/>")
	}
	return st.Name.Local
}

// canLogin reports whether user/password logs in from src.
func canLogin(t *testing.T, addr, src, user, password string) bool {
	t.Helper()
	c := dialFrom(t, addr, src)
	defer c.nc.Close()
	return c.plain(t, user, password) == "success"
}

// Registering "ｙａｎ" (fullwidth) makes yan@localhost; its credentials
// used to be kept under the fullwidth name, out of reach of `user passwd`
// and `user del` for yan@localhost, so the old password kept working, even
// for a newcomer's account of the same name.
func TestHostileCredentialAliases(t *testing.T) {
	data := t.TempDir()
	addUsers(t, data, map[string]string{"juliet@localhost": "balcony"})
	s, _ := serveOn(t, data, "--registration")
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	if err := registerAccount(addr, "localhost", "ｙａｎ", "old-secret"); err != nil {
		t.Fatal(err)
	}
	if !canLogin(t, addr, "127.0.0.1", "ｙａｎ", "old-secret") {
		t.Fatal("the account registered as ｙａｎ does not log in")
	}
	annals := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(bin, append(args, "--data", data)...).CombinedOutput(); err != nil {
			t.Fatalf("annals %v: %v\n%s", args, err, out)
		}
	}
	annals("user", "passwd", "yan@localhost", "--password", "new-secret")
	for _, name := range []string{"yan", "ｙａｎ", "YAN"} {
		if canLogin(t, addr, "127.0.0.1", name, "old-secret") {
			t.Fatalf("%s logs in with the password changed away", name)
		}
	}
	if !canLogin(t, addr, "127.0.0.1", "ｙａｎ", "new-secret") {
		t.Fatal("the new password does not log in")
	}
	annals("user", "del", "yan@localhost")
	if err := registerAccount(addr, "localhost", "yan", "newcomer"); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"old-secret", "new-secret"} {
		for _, name := range []string{"yan", "ｙａｎ"} {
			if canLogin(t, addr, "127.0.0.2", name, pw) {
				t.Fatalf("the deleted account's password %q logs in to the newcomer's account as %s", pw, name)
			}
		}
	}
	if !canLogin(t, addr, "127.0.0.3", "yan", "newcomer") || !canLogin(t, addr, "127.0.0.3", "juliet", "balcony") {
		t.Fatal("the newcomer or another account cannot log in")
	}
}

// Guessing is slow: past a few free failures every attempt waits, on one
// stream and across streams; a right password is never answered apart from
// a wrong one by the throttle; another account at another address is
// served meanwhile, and so is the attacked account's owner.
func TestHostileLoginThrottle(t *testing.T) {
	const step = 300 * time.Millisecond
	data := t.TempDir()
	addUsers(t, data, map[string]string{"juliet@localhost": "balcony", "romeo@localhost": "montague"})
	s, _ := serveOn(t, data, "--login-failures-account", "3", "--login-failures-address", "3",
		"--login-delay", step.String(), "--login-delay-max", step.String())
	addr := "127.0.0.1:" + strconv.Itoa(s.port)

	// One stream, ten guesses: three free, seven waiting a step each.
	c := dialFrom(t, addr, "127.0.0.2")
	start := time.Now()
	for i := range 10 {
		if got := c.plain(t, "juliet", "guess"+strconv.Itoa(i)); got != "not-authorized" {
			t.Fatalf("guess %d: %s", i, got)
		}
	}
	if d := time.Since(start); d < 7*step-50*time.Millisecond {
		t.Fatalf("10 guesses on one stream took %v, want at least %v", d, 7*step)
	}
	// The right password after them waits as long, then succeeds: the
	// throttle has no answer of its own that would confirm it.
	start = time.Now()
	if got := c.plain(t, "juliet", "balcony"); got != "success" || time.Since(start) < step-50*time.Millisecond {
		t.Fatalf("right password after guesses: %s after %v", got, time.Since(start))
	}

	// Across streams from one address: attempts are queued one step
	// apart, and past two steps of queue refused unchecked, the right
	// password exactly like a wrong one.
	src := "127.0.0.3"
	for i := range 3 {
		if got := dialFrom(t, addr, src).plain(t, "romeo", "guess"+strconv.Itoa(i)); got != "not-authorized" {
			t.Fatalf("free guess %d: %s", i, got)
		}
	}
	fillers := make([]*loadClient, 6)
	for i := range fillers {
		fillers[i] = dialFrom(t, addr, src)
	}
	right, wrong := dialFrom(t, addr, src), dialFrom(t, addr, src)
	type answer struct {
		cond string
		err  error
	}
	answers := make(chan answer, len(fillers))
	start = time.Now()
	for i, f := range fillers {
		if err := f.sendAuth("romeo", "parallel"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		go func() {
			st, inner, err := f.next()
			answers <- answer{st.Name.Local + " " + inner, err}
		}()
	}
	// The first answer to come back at once is a refusal: the queue is
	// full for a while now.
	first := <-answers
	if first.err != nil || !strings.Contains(first.cond, "not-authorized") || time.Since(start) > step {
		t.Fatalf("first answer to parallel guesses: %q %v after %v; want an immediate not-authorized", first.cond, first.err, time.Since(start))
	}
	if err := right.sendAuth("romeo", "montague"); err != nil {
		t.Fatal(err)
	}
	if err := wrong.sendAuth("romeo", "nope"); err != nil {
		t.Fatal(err)
	}
	rightAnswer, wrongAnswer := right.answer(t), wrong.answer(t)
	if rightAnswer != "not-authorized" || wrongAnswer != rightAnswer {
		t.Fatalf("behind a full queue: right password %s, wrong one %s; want the same not-authorized", rightAnswer, wrongAnswer)
	}
	if d := time.Since(start); d > 2*step {
		t.Fatalf("a refused attempt was held %v", d)
	}

	// Meanwhile another account at another address logs in at once, and
	// the attacked account's owner gets in from elsewhere, delayed at most
	// a step.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, who := range []struct{ src, user, pw string }{{"127.0.0.4", "juliet", "balcony"}, {"127.0.0.5", "romeo", "montague"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialFrom(t, addr, who.src)
			begin := time.Now()
			if err := c.sendAuth(who.user, who.pw); err != nil {
				errs <- err
				return
			}
			st, inner, err := c.next()
			if err != nil || st.Name.Local != "success" {
				errs <- fmt.Errorf("%s from %s during the attack: %s %s %v", who.user, who.src, st.Name.Local, inner, err)
				return
			}
			if d := time.Since(begin); d > 2*step {
				errs <- fmt.Errorf("%s from %s waited %v", who.user, who.src, d)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for range len(fillers) - 1 {
		if a := <-answers; a.err != nil || !strings.Contains(a.cond, "not-authorized") {
			t.Fatalf("a parallel guess got %q %v", a.cond, a.err)
		}
	}
}

// Failed logins with huge names and a huge stream-error text cost neither
// memory nor log: names over 1023 bytes are refused before lookup, throttle
// keys are fixed-size hashes, and logged client strings are clipped.
func TestHostileLoginMemory(t *testing.T) {
	t.Setenv("GOGC", "50") // garbage is not what this test measures
	data := t.TempDir()
	addUsers(t, data, map[string]string{"juliet@localhost": "balcony"})
	logPath := data + "/serve.log"
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve", "--data", data, "--c2s", "127.0.0.1:0", "--log-level", "debug")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	buf := make([]byte, 4096)
	var banner strings.Builder
	for !strings.Contains(banner.String(), "\n") {
		n, err := out.Read(buf)
		if err != nil {
			t.Fatalf("no banner: %v", err)
		}
		banner.Write(buf[:n])
	}
	m := regexp.MustCompile(`on (127\.0\.0\.1:\d+)`).FindStringSubmatch(banner.String())
	if m == nil {
		t.Fatalf("banner %q", banner.String())
	}
	addr := m[1]
	go func() {
		for {
			if _, err := out.Read(buf); err != nil {
				return
			}
		}
	}()
	before := vmRSS(t, cmd.Process.Pid)

	huge := strings.Repeat("n", 190<<10)
	for s := range 10 {
		c := dialFrom(t, addr, "127.0.0."+strconv.Itoa(10+s))
		for i := range 30 {
			if got := c.plain(t, huge+strconv.Itoa(s)+"-"+strconv.Itoa(i), "x"); got != "not-authorized" {
				t.Fatalf("a 190 KiB name got %s", got)
			}
		}
		c.nc.Close()
	}
	for s := range 5 {
		c := dialFrom(t, addr, "127.0.0.30")
		c.send("<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>" +
			strings.Repeat("t", 200<<10) + strconv.Itoa(s) + "</text></stream:error>")
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := c.next(); err != nil {
				break
			}
		}
	}
	if !canLogin(t, addr, "127.0.0.40", "juliet", "balcony") {
		t.Fatal("juliet cannot log in after the flood")
	}
	after := vmRSS(t, cmd.Process.Pid)
	fi, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RSS %d KiB -> %d KiB; log %d bytes", before, after, fi.Size())
	// 300 names of 190 KiB held as keys would be 57 MiB.
	if after-before > 30<<10 {
		t.Errorf("RSS grew by %d KiB over 300 failed logins", after-before)
	}
	if fi.Size() > 1<<20 {
		t.Errorf("the log grew to %d bytes", fi.Size())
	}
}

// vmRSS returns the resident set size of process pid in KiB.
func vmRSS(t *testing.T, pid int) int { return procStatusKB(t, pid, "VmRSS") }

// vmHWM returns the peak resident set size of process pid in KiB.
func vmHWM(t *testing.T, pid int) int { return procStatusKB(t, pid, "VmHWM") }

// procStatusKB reads a "Name: N kB" line of /proc/<pid>/status.
func procStatusKB(t *testing.T, pid int, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return 0
}
