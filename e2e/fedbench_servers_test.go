package e2e

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The servers BenchmarkFederation runs, two of a kind federating with each
// other, all inside one network namespace (netns_test.go): each domain on
// its own loopback address, c2s on ADDR:5222 and s2s on ADDR:5269, the
// port Prosody always dials. Prosody finds the other domain through the
// namespace's hosts file; Annals through --s2s-route, to the same
// address. One namespace for both kinds, so that both pairs and the load
// client talk over the same loopback.

// fedBenchDomains are the domains of each kind's pair and their addresses.
var fedBenchDomains = map[string][2]fedBenchDomain{
	"annals":  {{"a.annals.test", "127.0.0.2"}, {"b.annals.test", "127.0.0.3"}},
	"prosody": {{"a.prosody.test", "127.0.0.4"}, {"b.prosody.test", "127.0.0.5"}},
}

type fedBenchDomain struct{ domain, addr string }

func fedBenchHosts() map[string]string {
	hosts := map[string]string{}
	for _, pair := range fedBenchDomains {
		for _, d := range pair {
			hosts[d.domain] = d.addr
		}
	}
	return hosts
}

// fedBenchServer is one running server of a pair.
type fedBenchServer struct {
	kind, domain string
	c2s          string // host:port in the namespace
	pid          int
	log          string // its log file
	// archived reads, from the server's database, the archive rows of
	// the benchmark messages whose id carries tag: owner (a bare JID)
	// and message (pair-k) of each row.
	archived func(tag string) ([][2]string, error)
	stop     func()
}

func (s *fedBenchServer) cpu() time.Duration { return procCPU(s.pid) }

func (s *fedBenchServer) logText() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// startFedAnnals runs annals serve in the namespace for d, federating with
// peer: SQLite in its own data directory at the default durability (full:
// fsync at every commit), in-band registration for the benchmark accounts,
// the test CA's certificate for its domain, and the test CA to check the
// peer's: the two authenticate each other with SASL EXTERNAL.
func (f *federation) startFedAnnals(b *testing.B, d, peer fedBenchDomain) *fedBenchServer {
	dir := filepath.Join(f.dir, "annals-"+d.domain)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	cert, key := f.ca.issue(b, d.domain, "conference."+d.domain)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeFile(b, certFile, cert, 0o600)
	writeFile(b, keyFile, key, 0o600)
	s := &fedBenchServer{kind: "annals", domain: d.domain, c2s: d.addr + ":5222", log: filepath.Join(dir, "annals.log")}
	cmd := f.ns.command(fedBin(b), "serve", "--data", filepath.Join(dir, "data"), "--domain", d.domain,
		"--c2s", s.c2s, "--s2s", d.addr+":5269", "--s2s-route", peer.domain+"="+peer.addr+":5269",
		"--tls-cert", certFile, "--tls-key", keyFile, "--s2s-ca", f.ca.file,
		"--registration", "--registrations-per-address", "0")
	if p := os.Getenv("ANNALS_BENCH_FED_PROFILE"); p != "" {
		cmd.Env = append(os.Environ(), "ANNALS_BENCH_CPUPROFILE="+filepath.Join(p, "annals-"+d.domain+".pprof"))
	}
	dbFile := filepath.Join(dir, "data", "annals.db")
	s.archived = func(tag string) ([][2]string, error) {
		return archivedRows(dbFile, `SELECT account, stanza FROM archive WHERE groupchat = 0 AND stanza LIKE ?`, tag)
	}
	f.startFedProcess(b, s, cmd, s.c2s, d.addr+":5269")
	return s
}

// startFedProsody runs Debian's Prosody in the namespace for d, set up as
// startProsody sets it up for the other benchmarks (SQLite storage, MAM
// archiving every message on both sides, carbons, stream management,
// in-band registration, no Nagle) and for federation as
// federation.startProsody (TLS required on s2s, the test CA trusted, the
// namespace's hosts file for names): the two authenticate each other with
// SASL EXTERNAL; s2s_secure_auth forbids falling back to an unchecked
// dialback. It logs at info, which says nothing per stanza.
func (f *federation) startFedProsody(b *testing.B, d fedBenchDomain) *fedBenchServer {
	if !installed("prosody") || exec.Command("dpkg", "-s", "lua-unbound").Run() != nil || exec.Command("dpkg", "-s", "lua-dbi-sqlite3").Run() != nil {
		b.Skip("prosody not measured: make tools bench-tools installs prosody, lua-unbound and lua-dbi-sqlite3")
	}
	dir := filepath.Join(f.dir, "prosody-"+d.domain)
	certs := filepath.Join(dir, "certs")
	os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	os.MkdirAll(certs, 0o700)
	cert, key := f.ca.issue(b, d.domain)
	writeFile(b, filepath.Join(certs, d.domain+".crt"), cert, 0o600)
	writeFile(b, filepath.Join(certs, d.domain+".key"), key, 0o600)
	s := &fedBenchServer{kind: "prosody", domain: d.domain, c2s: d.addr + ":5222", log: filepath.Join(dir, "prosody.log")}
	db := filepath.Join(dir, "prosody.sqlite")
	conf := fmt.Sprintf(`run_as_root = true
data_path = %[1]q
certificates = %[2]q
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "mam"; "carbons"; "smacks"; "register" }
allow_registration = true
min_seconds_between_registrations = 0
registration_throttle_max = 1000000
c2s_ports = { 5222 }
c2s_interfaces = { %[3]q }
s2s_ports = { 5269 }
s2s_interfaces = { %[3]q }
http_ports = { }
https_ports = { }
component_ports = { }
storage = "sql"
sql = { driver = "SQLite3", database = %[4]q }
authentication = "internal_hashed"
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = true
ssl = { cafile = %[5]q }
unbound = { hoststxt = %[6]q; resolvconf = %[7]q }
default_archive_policy = true
archive_expires_after = "never"
limits = { c2s = { rate = "100mb/s" } }
network_settings = { nagle = false }
log = { info = %[8]q }
VirtualHost %[9]q
`, filepath.Join(dir, "data"), certs, d.addr, db, f.ca.file, f.ns.hosts, f.ns.resolv, s.log, d.domain)
	confPath := filepath.Join(dir, "prosody.cfg.lua")
	writeFile(b, confPath, []byte(conf), 0o600)
	s.archived = func(tag string) ([][2]string, error) {
		return archivedRows(db, `SELECT "user" || '@' || "host", "value" FROM "prosodyarchive" WHERE "store" = 'archive' AND "value" LIKE ?`, tag)
	}
	f.startFedProcess(b, s, f.ns.command("prosody", "--config", confPath, "-F"), s.c2s, d.addr+":5269")
	return s
}

// startFedProcess starts cmd (ip netns exec, which execs the server in
// place: its pid is the server's), its output in s's directory, and waits
// until it listens on addrs.
func (f *federation) startFedProcess(b *testing.B, s *fedBenchServer, cmd *exec.Cmd, addrs ...string) {
	out, err := os.Create(filepath.Join(filepath.Dir(s.log), "stdout"))
	if err != nil {
		b.Fatal(err)
	}
	if s.kind == "annals" {
		// serve logs to standard error.
		cmd.Stdout = out
		lf, err := os.Create(s.log)
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = lf
		defer lf.Close()
	} else {
		cmd.Stdout, cmd.Stderr = out, out
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		out.Close()
	}
	b.Cleanup(s.stop)
	for _, a := range addrs {
		if err := f.ns.waitListen(a, 20*time.Second); err != nil {
			s.stop()
			o, _ := os.ReadFile(out.Name())
			b.Fatalf("%s %s: %v\n%s\n%s", s.kind, s.domain, err, o, tail(s.logText(), 8<<10))
		}
	}
}

// benchMsgID finds a benchmark message's id in an archived stanza:
// bm-SENT-TAG-PAIR-K, where SENT is the send time (smClient's delivery
// latency) and TAG the direction.
var benchMsgID = regexp.MustCompile(`bm-\d+-([a-z]+)-(\d+-\d+)`)

// archivedRows runs query (owner, stanza) with a LIKE pattern for tag on
// the SQLite database db, read-only, and returns each row's owner and the
// pair-k of the benchmark message with that tag it holds.
func archivedRows(db, query, tag string) ([][2]string, error) {
	d, err := sql.Open("sqlite3", "file:"+db+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	rs, err := d.Query(query, "%-"+tag+"-%")
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out [][2]string
	for rs.Next() {
		var owner, stanza string
		if err := rs.Scan(&owner, &stanza); err != nil {
			return nil, err
		}
		if m := benchMsgID.FindStringSubmatch(stanza); m != nil && m[1] == tag {
			out = append(out, [2]string{owner, m[2]})
		}
	}
	return out, rs.Err()
}

// within runs f on an OS thread moved into n's network namespace, so that
// the connections f opens are made there: net.Dial makes its socket on
// the calling thread, and a socket stays in the namespace it was made in.
// That is how the load client, in the test process, reaches servers that
// listen only inside the namespace. The thread moves back afterwards; if
// it cannot, its goroutine ends locked to it and Go ends the thread. (The
// process's main thread cannot end that way, and a process whose main
// thread is in the namespace is one removeNetns kills.)
func (n *netns) within(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := syscall.Open("/proc/thread-self/ns/net", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("this thread's network namespace: %w", err)
			return
		}
		defer syscall.Close(home)
		if err := setns("/run/netns/"+n.name, -1); err != nil {
			errc <- err
			return
		}
		err = f()
		if setns("", home) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// setns moves the calling thread into the network namespace of the file
// path, or of fd.
func setns(path string, fd int) error {
	if sysSetns == 0 {
		return fmt.Errorf("setns: no system call number for %s here", runtime.GOARCH)
	}
	if path != "" {
		var err error
		if fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("setns: %w", err)
		}
		defer syscall.Close(fd)
	}
	if _, _, errno := syscall.RawSyscall(sysSetns, uintptr(fd), syscall.CLONE_NEWNET, 0); errno != 0 {
		return fmt.Errorf("setns %s: %w", path, errno)
	}
	return nil
}

// sysSetns is setns(2)'s number on Linux, which package syscall does not
// define for every architecture (amd64 among them).
var sysSetns = map[string]uintptr{"amd64": 308, "386": 346, "arm64": 268, "arm": 375, "riscv64": 268,
	"loong64": 268, "ppc64le": 350, "ppc64": 350, "s390x": 339}[runtime.GOARCH]

// fedBin is the annals binary the benchmark runs: the tests' own, or with
// ANNALS_BENCH_FED_PROFILE=DIR one built with cpuprofileOverlay added to
// cmd/annals (an overlay: no file of the repository changes), which
// writes a CPU profile of the measured load to DIR, one per server.
func fedBin(b *testing.B) string {
	dir := os.Getenv("ANNALS_BENCH_FED_PROFILE")
	if dir == "" {
		return bin
	}
	profBin := bin + "-cpuprofile"
	if _, err := os.Stat(profBin); err == nil {
		return profBin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	src, err := filepath.Abs("../cmd/annals/zz_bench_cpuprofile.go")
	if err != nil {
		b.Fatal(err)
	}
	tmp := b.TempDir()
	file, overlay := filepath.Join(tmp, "cpuprofile.go"), filepath.Join(tmp, "overlay.json")
	writeFile(b, file, []byte(cpuprofileOverlay), 0o644)
	writeFile(b, overlay, []byte(fmt.Sprintf(`{"Replace": {%q: %q}}`, src, file)), 0o644)
	if out, err := exec.Command("go", "build", "-overlay", overlay, "-o", profBin, "../cmd/annals").CombinedOutput(); err != nil {
		b.Fatalf("build annals with the profile overlay: %v\n%s", err, out)
	}
	return profBin
}

// cpuprofileOverlay profiles the process from SIGUSR1 to SIGUSR2 into
// $ANNALS_BENCH_CPUPROFILE: the benchmark signals around the measured
// load, so that registration and logins (SCRAM) stay out of it.
const cpuprofileOverlay = `package main

import (
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func init() {
	path := os.Getenv("ANNALS_BENCH_CPUPROFILE")
	if path == "" {
		return
	}
	c := make(chan os.Signal, 2)
	signal.Notify(c, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		var f *os.File
		for s := range c {
			switch {
			case s == syscall.SIGUSR1 && f == nil:
				f, _ = os.Create(path)
				pprof.StartCPUProfile(f)
			case s == syscall.SIGUSR2 && f != nil:
				pprof.StopCPUProfile()
				f.Close()
				f = nil
				os.WriteFile(path+".done", nil, 0o644)
			}
		}
	}()
}
`

// profileSignal starts (SIGUSR1) or stops (SIGUSR2) the CPU profile of
// the Annals servers built with the overlay; stopping waits until each
// has written its profile.
func profileSignal(b *testing.B, servers []*fedBenchServer, sig syscall.Signal) {
	dir := os.Getenv("ANNALS_BENCH_FED_PROFILE")
	if dir == "" {
		return
	}
	for _, s := range servers {
		if s.kind != "annals" {
			continue
		}
		done := filepath.Join(dir, "annals-"+s.domain+".pprof.done")
		os.Remove(done)
		syscall.Kill(s.pid, sig)
		if sig != syscall.SIGUSR2 {
			continue
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(done); err == nil {
				// Symbolized: pprof needs no binary to read it.
				b.Logf("CPU profile of %s: go tool pprof -top %s", s.domain, strings.TrimSuffix(done, ".done"))
				break
			}
			if time.Now().After(deadline) {
				b.Errorf("%s wrote no CPU profile", s.domain)
				break
			}
		}
	}
}

// fedAccounts registers u0..u(n-1) (password pwN) in-band on s, 16 at a
// time, from inside the namespace.
func (f *federation) fedAccounts(s *fedBenchServer, n int) error {
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- f.ns.within(func() error {
				return registerAccount(s.c2s, s.domain, "u"+strconv.Itoa(i), "pw"+strconv.Itoa(i))
			})
		}()
	}
	var first error
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil && first == nil {
			first = fmt.Errorf("%s: %w", s.domain, err)
		}
	}
	return first
}
