package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The servers BenchmarkDMUC runs, all in one network namespace
// (netns_test.go), each domain on its own address with c2s on ADDR:5222
// and s2s on ADDR:5269:
//
//	capulet.test   127.0.0.2  Annals, the master (conference.capulet.test)
//	montague.test  127.0.0.3  Annals, the other side (mirror.montague.test)
//	prosody.test   127.0.0.4  Prosody, the master in the prosody mode
//	                          (rooms.prosody.test)
//
// The master and montague.test reach each other only through the link: a
// proxy at dmucToMirror (127.0.0.5:5269, forwarding to montague.test) and
// one at dmucToMaster (127.0.0.6:5269, to the master). Annals finds them
// by --s2s-route; Prosody, which always dials port 5269, by the
// namespace's hosts file, which puts montague.test's names at
// dmucToMirror. Both proxies share the link's two directions, so the
// link counts every byte between the two servers whichever of them opened
// the connection that carried it.
const (
	dmucMasterAddr  = "127.0.0.2"
	dmucMirrorAddr  = "127.0.0.3"
	dmucProsodyAddr = "127.0.0.4"
	dmucToMirror    = "127.0.0.5:5269"
	dmucToMaster    = "127.0.0.6:5269"
)

var dmucHosts = map[string]string{
	"capulet.test": dmucMasterAddr, "conference.capulet.test": dmucMasterAddr,
	"prosody.test": dmucProsodyAddr, "rooms.prosody.test": dmucProsodyAddr,
	"montague.test": "127.0.0.5", "conference.montague.test": "127.0.0.5", "mirror.montague.test": "127.0.0.5",
}

// dmucLink starts the link's two proxies inside the namespace, from the
// master (at masterAddr) to montague.test and back: its a is the master,
// its b montague.test. They stop when b ends.
func (f *federation) dmucLink(b *testing.B, masterAddr string) *link {
	l := &link{ab: &linkDir{}, ba: &linkDir{}}
	for _, p := range []struct {
		listen, target string
		up, down       *linkDir
	}{
		{dmucToMirror, dmucMirrorAddr + ":5269", l.ab, l.ba},
		{dmucToMaster, masterAddr + ":5269", l.ba, l.ab},
	} {
		checkLoopback(b, p.listen, p.target)
		var ln net.Listener
		if err := f.ns.within(func() (err error) { ln, err = net.Listen("tcp", p.listen); return err }); err != nil {
			b.Fatalf("link proxy: %v", err)
		}
		l.proxies = append(l.proxies, serveLinkProxy(b, ln, p.target, p.up, p.down, f.dialWithin))
	}
	return l
}

// dialWithin dials addr from inside the namespace.
func (f *federation) dialWithin(ctx context.Context, addr string) (net.Conn, error) {
	var c net.Conn
	err := f.ns.within(func() (err error) { c, err = dialTCP(ctx, addr); return err })
	return c, err
}

// startDMUCAnnals runs annals serve in the namespace as domain at addr,
// in dir: SQLite at the default durability, in-band registration for the
// benchmark's accounts, a certificate from the test CA for names, the
// test CA to check its peer's (the two authenticate each other with SASL
// EXTERNAL), a route to each of the peer's names through the link, and
// flags.
func (f *federation) startDMUCAnnals(b *testing.B, dir, domain, addr string, names, routes []string, flags ...string) *fedBenchServer {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	cert, key := f.ca.issue(b, names...)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeFile(b, certFile, cert, 0o600)
	writeFile(b, keyFile, key, 0o600)
	s := &fedBenchServer{kind: "annals", domain: domain, c2s: addr + ":5222", log: filepath.Join(dir, "annals.log")}
	args := []string{"serve", "--data", filepath.Join(dir, "data"), "--domain", domain,
		"--c2s", s.c2s, "--s2s", addr + ":5269", "--tls-cert", certFile, "--tls-key", keyFile, "--s2s-ca", f.ca.file,
		"--registration", "--registrations-per-address", "0"}
	for _, r := range routes {
		args = append(args, "--s2s-route", r)
	}
	f.startFedProcess(b, s, f.ns.command(bin, append(args, flags...)...), s.c2s, addr+":5269")
	return s
}

// startDMUCProsody runs Debian's Prosody in the namespace as prosody.test
// with its MUC component rooms.prosody.test (mod_muc, no archive: what
// crosses the link does not depend on it), in dir: set up for federation
// as startFedProsody sets it up (TLS required on s2s, the test CA
// trusted, SASL EXTERNAL, the namespace's hosts file for names), in-band
// registration for the benchmark's sender, logging at info, which says
// nothing per stanza.
func (f *federation) startDMUCProsody(b *testing.B, dir string) *fedBenchServer {
	if !installed("prosody") || exec.Command("dpkg", "-s", "lua-unbound").Run() != nil {
		b.Skip("prosody not measured: make tools bench-tools installs prosody and lua-unbound")
	}
	certs := filepath.Join(dir, "certs")
	for _, d := range []string{filepath.Join(dir, "data"), certs} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	const domain, muc = "prosody.test", "rooms.prosody.test"
	cert, key := f.ca.issue(b, domain, muc)
	writeFile(b, filepath.Join(certs, domain+".crt"), cert, 0o600)
	writeFile(b, filepath.Join(certs, domain+".key"), key, 0o600)
	s := &fedBenchServer{kind: "prosody", domain: domain, c2s: dmucProsodyAddr + ":5222", log: filepath.Join(dir, "prosody.log")}
	conf := fmt.Sprintf(`run_as_root = true
data_path = %[1]q
certificates = %[2]q
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "register" }
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
authentication = "internal_hashed"
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = true
ssl = { cafile = %[4]q }
unbound = { hoststxt = %[5]q; resolvconf = %[6]q }
network_settings = { nagle = false }
log = { info = %[7]q }
VirtualHost %[8]q
Component %[9]q "muc"
`, filepath.Join(dir, "data"), certs, dmucProsodyAddr, f.ca.file, f.ns.hosts, f.ns.resolv, s.log, domain, muc)
	confPath := filepath.Join(dir, "prosody.cfg.lua")
	writeFile(b, confPath, []byte(conf), 0o600)
	f.startFedProcess(b, s, f.ns.command("prosody", "--config", confPath, "-F"), s.c2s, dmucProsodyAddr+":5269")
	return s
}

// dmucServers starts mode's master and montague.test in dir, and the link
// between them: the master's domain and the room to use come back too.
func (f *federation) dmucServers(b *testing.B, mode, dir string) (master, mirror *fedBenchServer, l *link, room string) {
	toMaster := []string{"capulet.test=" + dmucToMaster, "conference.capulet.test=" + dmucToMaster}
	var flags []string
	switch mode {
	case "prosody":
		l = f.dmucLink(b, dmucProsodyAddr)
		master = f.startDMUCProsody(b, filepath.Join(dir, "prosody"))
		toMaster = []string{"prosody.test=" + dmucToMaster, "rooms.prosody.test=" + dmucToMaster}
		room = "hall@rooms.prosody.test"
	case "mirror", "plain":
		l = f.dmucLink(b, dmucMasterAddr)
		toMirror := []string{"montague.test=" + dmucToMirror, "mirror.montague.test=" + dmucToMirror}
		// The master is the same in both modes: it trusts montague.test's
		// mirror; only montague.test chooses whether to use it.
		master = f.startDMUCAnnals(b, filepath.Join(dir, "capulet"), "capulet.test", dmucMasterAddr,
			[]string{"capulet.test", "conference.capulet.test"}, toMirror, "--mirror-trust", "montague.test")
		if mode == "mirror" {
			flags = []string{"--mirror-of", "conference.capulet.test"}
		}
		room = "hall@conference.capulet.test"
	default:
		b.Fatalf("no mode %q", mode)
	}
	mirror = f.startDMUCAnnals(b, filepath.Join(dir, "montague"), "montague.test", dmucMirrorAddr,
		[]string{"montague.test", "conference.montague.test", "mirror.montague.test"}, toMaster, flags...)
	return master, mirror, l, room
}

// waitQuiet waits until nothing has crossed l for quiet, at most limit,
// and returns the count then.
func waitQuiet(l *link, quiet, limit time.Duration) (linkCount, error) {
	last, since := l.Count(), time.Now()
	for deadline := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		c := l.Count()
		if c != last {
			last, since = c, time.Now()
		} else if time.Since(since) >= quiet {
			return c, nil
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("the link was never quiet for %v in %v (%s)", quiet, limit, c)
		}
	}
}

// logSays is what a server's log warns of, and says of mirrors, for a
// failure's message.
func logSays(s *fedBenchServer) string {
	var lines []string
	for _, line := range strings.Split(s.logText(), "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") || strings.Contains(line, `msg="mirror`) ||
			strings.Contains(line, "\terror\t") || strings.Contains(line, "\twarn\t") { // Prosody's
			lines = append(lines, line)
		}
	}
	return tail(strings.Join(lines, "\n"), 4<<10)
}
