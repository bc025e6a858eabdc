package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Debian's Prosody and ejabberd as federation peers of a test, inside its
// network namespace (netns_test.go). Each serves one domain and a MUC
// component on its own loopback address: c2s on ADDR:5222 and s2s on
// ADDR:5269. Both find another domain the way a real server does: SRV
// first (which fails at once in the namespace), then the domain's address
// on port 5269, read from the namespace's hosts file. 5269 is not
// configurable on their side: Prosody's fallback port is fixed and
// ejabberd's (outgoing_s2s_port) is one for every domain, so each domain
// of a test needs its own address.

// testCA is the certificate authority of one federation test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM: what a peer trusts
}

func newTestCA(t testing.TB, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".pem")}
	writeFile(t, ca.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return ca
}

// issue makes a certificate for names (the first is the subject; all are
// DNS subject alternative names, which RFC 6125 lets an XMPP server check)
// and returns its PEM certificate and key. The certificate serves both as
// server and as client: an s2s stream's initiator shows it for EXTERNAL.
func (ca *testCA) issue(t testing.TB, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// federation is one test's namespace and certificate authorities.
type federation struct {
	ns  *netns
	dir string
	// ca signs every certificate of the test; a peer that trusts it
	// authenticates the others with SASL EXTERNAL (XEP-0178).
	ca *testCA
	// stranger signs nothing: a peer that trusts only it finds no
	// certificate valid and falls back to dialback (XEP-0220).
	stranger *testCA
}

// newFederation makes the namespace, with hosts mapping each domain to
// its address, and the CAs.
func newFederation(t testing.TB, hosts map[string]string) *federation {
	t.Helper()
	ns := newNetns(t, hosts)
	return &federation{ns: ns, dir: ns.dir, ca: newTestCA(t, ns.dir, "Annals test CA"), stranger: newTestCA(t, ns.dir, "Unrelated CA")}
}

// peerConfig is what a test asks of a peer server.
type peerConfig struct {
	domain string            // the domain it serves, e.g. prosody.test
	muc    string            // its MUC component, e.g. rooms.prosody.test ("": none)
	addr   string            // its loopback address: c2s on addr:5222, s2s on addr:5269
	users  map[string]string // local part -> password
	// dialback makes the peer trust only the stranger CA, so that no
	// certificate of the test is valid to it and it authenticates other
	// servers with dialback; otherwise it trusts the test CA and uses
	// SASL EXTERNAL where the other side offers it. Either way s2s TLS
	// is required, as Annals requires it.
	dialback bool
	// directTLS (Prosody only) also listens for direct TLS streams
	// (XEP-0368) on addr:5270.
	directTLS bool
	// pubsub (Prosody only) is a pubsub component (XEP-0060) on addr,
	// e.g. push.prosody.test ("": none); admins (Prosody only) are the
	// server's administrators, bare JIDs: only they create its nodes.
	pubsub string
	admins []string
}

// peer is a running Prosody or ejabberd.
type peer struct {
	kind        string // prosody or ejabberd
	domain, muc string
	c2s, s2s    string // host:port inside the namespace
	log         string // its log file
}

// account is user at p, for a client driver.
func (p *peer) account(user, password string) account {
	return account{addr: p.c2s, jid: user + "@" + p.domain, password: password}
}

// account is where a client logs in, and as whom.
type account struct{ addr, jid, password string }

// args are the account's arguments for slix_peers.py: ADDR JID PW.
func (a account) args() []string { return []string{a.addr, a.jid, a.password} }

func (p *peer) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// needPeer skips t, saying why, when a peer's Debian package is
// missing; under CI=true it fails t instead (make tools installs them).
func needPeer(t *testing.T, installed bool, what, pkgs string) {
	t.Helper()
	if installed {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing: make tools installs %s", what, pkgs)
	}
	t.Skipf("%s is missing (make tools installs %s)", what, pkgs)
}

func installed(prog string) bool {
	_, err := exec.LookPath(prog)
	return err == nil
}

// tailOnFailure prints the last part of a peer's log when t has failed.
func tailOnFailure(t *testing.T, p *peer) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log (%s), last 48 KiB:\n%s", p.kind, p.domain, tail(p.logText(), 48<<10))
		}
	})
}

// startProsody runs Debian's Prosody in the namespace for cfg. Accounts
// are made with prosodyctl before it starts. Prosody resolves other
// domains with libunbound (lua-unbound), which reads no hosts file unless
// told: its unbound option names the namespace's.
func (f *federation) startProsody(t *testing.T, cfg peerConfig) *peer {
	t.Helper()
	needPeer(t, installed("prosody"), "prosody", "prosody")
	// Without it Prosody's own resolver reads no hosts file and no other
	// domain resolves in the namespace.
	needPeer(t, exec.Command("dpkg", "-s", "lua-unbound").Run() == nil, "lua-unbound (Prosody's resolver)", "lua-unbound")
	dir := filepath.Join(f.dir, "prosody-"+cfg.domain)
	certs := filepath.Join(dir, "certs")
	os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	os.MkdirAll(certs, 0o700)
	// Prosody finds DOMAIN.crt and DOMAIN.key in its certificates
	// directory, for the MUC component too (its parent domain's).
	names := []string{cfg.domain}
	for _, c := range []string{cfg.muc, cfg.pubsub} {
		if c != "" {
			names = append(names, c)
		}
	}
	cert, key := f.ca.issue(t, names...)
	writeFile(t, filepath.Join(certs, cfg.domain+".crt"), cert, 0o600)
	writeFile(t, filepath.Join(certs, cfg.domain+".key"), key, 0o600)
	trust := f.ca.file
	if cfg.dialback {
		trust = f.stranger.file
	}
	p := &peer{kind: "prosody", domain: cfg.domain, muc: cfg.muc, c2s: cfg.addr + ":5222", s2s: cfg.addr + ":5269",
		log: filepath.Join(dir, "prosody.log")}
	conf := fmt.Sprintf(`run_as_root = true
data_path = %[1]q
certificates = %[2]q
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping" }
c2s_ports = { 5222 }
c2s_interfaces = { %[3]q }
s2s_ports = { 5269 }
s2s_interfaces = { %[3]q }
%[9]s
-- Nothing else: an HTTP or component port would bind 127.0.0.1.
http_ports = { }
https_ports = { }
component_ports = { }
authentication = "internal_hashed"
c2s_require_encryption = true
s2s_require_encryption = true
-- A certificate that does not verify is no reason to refuse: dialback.
s2s_secure_auth = false
ssl = { cafile = %[4]q }
unbound = { hoststxt = %[5]q; resolvconf = %[6]q }
log = { debug = %[7]q }
admins = { %[10]s }
VirtualHost %[8]q
`, filepath.Join(dir, "data"), certs, cfg.addr, trust, f.ns.hosts, f.ns.resolv, p.log, cfg.domain, directTLSPorts(cfg), luaStrings(cfg.admins))
	if cfg.muc != "" {
		conf += fmt.Sprintf("Component %q \"muc\"\n", cfg.muc)
	}
	if cfg.pubsub != "" {
		// Autocreation is for those who may create a node (admins):
		// anyone else's publish to a missing node is forbidden. Items
		// read back name their publisher's bare JID.
		conf += fmt.Sprintf("Component %q \"pubsub\"\n    autocreate_on_publish = true\n    expose_publisher = true\n", cfg.pubsub)
	}
	confPath := filepath.Join(dir, "prosody.cfg.lua")
	writeFile(t, confPath, []byte(conf), 0o600)
	for _, u := range sortedKeys(cfg.users) {
		if out, err := exec.Command("prosodyctl", "--config", confPath, "register", u, cfg.domain, cfg.users[u]).CombinedOutput(); err != nil {
			t.Fatalf("prosodyctl register %s@%s: %v %s", u, cfg.domain, err, out)
		}
	}
	cmd := f.ns.command("prosody", "--config", confPath, "-F")
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tailOnFailure(t, p)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); out.Close() })
	for _, addr := range []string{p.c2s, p.s2s} {
		if err := f.ns.waitListen(addr, 15*time.Second); err != nil {
			o, _ := os.ReadFile(out.Name())
			t.Fatalf("prosody: %v\n%s", err, o)
		}
	}
	return p
}

// startEjabberd runs Debian's ejabberd in the namespace for cfg, its
// Erlang node (and epmd) alone there, so another ejabberd on the machine
// is no matter. Accounts are made with ejabberdctl once it listens.
// ejabberd resolves other domains with Erlang's resolver: its inetrc (in
// the config directory) reads the namespace's hosts file.
func (f *federation) startEjabberd(t *testing.T, cfg peerConfig) *peer {
	t.Helper()
	needPeer(t, installed("ejabberdctl"), "ejabberd", "ejabberd")
	dir := filepath.Join(f.dir, "ejabberd-"+cfg.domain)
	for _, d := range []string{"spool", "logs"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	names := []string{cfg.domain}
	if cfg.muc != "" {
		names = append(names, cfg.muc)
	}
	cert, key := f.ca.issue(t, names...)
	writeFile(t, filepath.Join(dir, "server.pem"), append(cert, key...), 0o600)
	trust := f.ca.file
	if cfg.dialback {
		trust = f.stranger.file
	}
	trustData, err := os.ReadFile(trust)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "trust.pem"), trustData, 0o644)
	p := &peer{kind: "ejabberd", domain: cfg.domain, muc: cfg.muc, c2s: cfg.addr + ":5222", s2s: cfg.addr + ":5269",
		log: filepath.Join(dir, "logs", "ejabberd.log")}
	conf := fmt.Sprintf(`hosts: [%[1]q]
loglevel: info
certfiles: [%[2]q]
s2s_use_starttls: required
s2s_cafile: %[3]q
# SRV fails at once in the namespace; bound it all the same.
s2s_dns_timeout: 2
s2s_dns_retries: 1
outgoing_s2s_families: [ipv4]
# Its streams come from its own address, as a real server's would (and
# count against another server's per-address caps apart from Prosody's,
# which come from 127.0.0.1: Prosody 0.12 cannot choose).
outgoing_s2s_ipv4_address: %[4]q
listen:
  - port: 5222
    ip: %[4]q
    module: ejabberd_c2s
    starttls_required: true
  - port: 5269
    ip: %[4]q
    module: ejabberd_s2s_in
auth_method: internal
modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
  mod_s2s_dialback: {}
`, cfg.domain, filepath.Join(dir, "server.pem"), filepath.Join(dir, "trust.pem"), cfg.addr)
	if cfg.muc != "" {
		conf += fmt.Sprintf("  mod_muc:\n    host: %q\n", cfg.muc)
	}
	writeFile(t, filepath.Join(dir, "ejabberd.yml"), []byte(conf), 0o644)
	writeFile(t, filepath.Join(dir, "inetrc"), []byte(fmt.Sprintf(
		"{lookup,[\"file\",\"native\"]}.\n{hosts_file, %q}.\n{resolv_conf, %q}.\n", f.ns.hosts, f.ns.resolv)), 0o644)
	// ejabberdctl sources it; the namespace has its own epmd, so the
	// default node name is free.
	writeFile(t, filepath.Join(dir, "ejabberdctl.cfg"), []byte("ERLANG_NODE=ejabberd@localhost\n"), 0o644)
	if out, err := exec.Command("chown", "-R", "ejabberd:ejabberd", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	// ejabberdctl drops its flags when it re-runs itself as the ejabberd
	// user, but keeps the environment.
	env := append(os.Environ(), "CONFIG_DIR="+dir, "EJABBERD_CONFIG_PATH="+filepath.Join(dir, "ejabberd.yml"),
		"SPOOL_DIR="+filepath.Join(dir, "spool"), "LOGS_DIR="+filepath.Join(dir, "logs"))
	cmd := f.ns.command("ejabberdctl", "foreground")
	cmd.Env = env
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tailOnFailure(t, p)
	// The Erlang VM runs as the ejabberd user under su, out of reach of
	// a signal to ejabberdctl: the namespace's removal kills it.
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); out.Close() })
	for _, addr := range []string{p.c2s, p.s2s} {
		if err := f.ns.waitListen(addr, 30*time.Second); err != nil {
			o, _ := os.ReadFile(out.Name())
			t.Fatalf("ejabberd: %v\n%s", err, o)
		}
	}
	for _, u := range sortedKeys(cfg.users) {
		// ejabberd may still be starting parts of itself: a few tries.
		var err error
		var out []byte
		for try := 0; try < 5; try++ {
			ctl := f.ns.command("ejabberdctl", "register", u, cfg.domain, cfg.users[u])
			ctl.Env = env
			if out, err = ctl.CombinedOutput(); err == nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("ejabberdctl register %s@%s: %v %s", u, cfg.domain, err, out)
		}
	}
	return p
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// slixPeers runs clients/slix_peers.py inside the namespace: scenario
// between a and b, then extra arguments.
func (f *federation) slixPeers(t *testing.T, scenario string, a, b account, extra ...string) []result {
	t.Helper()
	args := append([]string{"netns", "exec", f.ns.name, "/usr/bin/python3", "clients/slix_peers.py", scenario}, a.args()...)
	return runDriver(t, "ip", append(append(args, b.args()...), extra...)...)
}

// directTLSPorts is Prosody's setting for cfg.directTLS.
func directTLSPorts(cfg peerConfig) string {
	if !cfg.directTLS {
		return ""
	}
	return "s2s_direct_tls_ports = { 5270 }"
}

// luaStrings is ss as the items of a Lua table: "a"; "b".
func luaStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, "; ")
}
