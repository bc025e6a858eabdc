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
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The load shape: 200 accounts, logins at concurrency 50 (SCRAM-SHA-256
// over STARTTLS), and 1:1 messages between 100 connected pairs.
const (
	benchAccounts    = 200
	benchConcurrency = 50
	benchLogins      = 2000
	benchPerSender   = 100
	// benchReceiveTimeout bounds the wait for a receiver's messages: one
	// lost fails the benchmark after it.
	benchReceiveTimeout = 2 * time.Minute
)

// BenchmarkXMPP measures Annals and, when they are installed (Debian's
// prosody and lua-dbi-sqlite3, ejabberd and erlang-p1-sqlite3), Prosody and
// ejabberd on the same machine in the same run, with the same client,
// accounts and load; then prints the ratios. The peers archive messages
// (MAM on SQLite) and offer carbons and stream management, which this
// client does not use; BenchmarkChat measures with them.
func BenchmarkXMPP(b *testing.B) {
	type peer struct {
		name string
		addr string
	}
	var peers []peer
	data := b.TempDir()
	s, cmd := serveOnB(b, data, "--registration", "--registrations-per-address", "0")
	defer cmd.Process.Kill()
	peers = append(peers, peer{"annals", "127.0.0.1:" + strconv.Itoa(s.port)})
	if addr, stop, err := startProsody(b.TempDir()); err == nil {
		defer stop()
		peers = append(peers, peer{"prosody", addr})
	} else {
		b.Logf("prosody not measured: %v", err)
	}
	if addr, stop, err := startEjabberd(); err == nil {
		defer stop()
		peers = append(peers, peer{"ejabberd", addr})
	} else {
		b.Logf("ejabberd not measured: %v", err)
	}
	results := map[string]float64{}
	for _, p := range peers {
		if err := makeAccounts(p.addr); err != nil {
			b.Fatalf("%s: %v", p.name, err)
		}
		b.Run(p.name+"/logins", func(b *testing.B) {
			r := benchLoginRate(b, p.addr)
			b.ReportMetric(r, "logins/s")
			results[p.name+" logins/s"] = r
		})
		b.Run(p.name+"/messages", func(b *testing.B) {
			r := benchMessageRate(b, p.addr)
			b.ReportMetric(r, "messages/s")
			results[p.name+" messages/s"] = r
		})
	}
	for _, m := range []string{"logins/s", "messages/s"} {
		line := fmt.Sprintf("%-11s annals %9.0f", m, results["annals "+m])
		for _, p := range peers[1:] {
			line += fmt.Sprintf("   %s %9.0f   annals/%s %.2f", p.name, results[p.name+" "+m], p.name, results["annals "+m]/results[p.name+" "+m])
		}
		fmt.Println(line)
	}
}

func makeAccounts(addr string) error { return makeAccountsN(addr, benchAccounts) }

// makeAccountsN registers u0..u(n-1) (password pwN) in-band, 16 at a time.
func makeAccountsN(addr string, n int) error {
	// One account alone first: ejabberd starts parts of itself on first use
	// and fails requests that race that start.
	var err error
	for try := 0; try < 5; try++ {
		if err = registerAccount(addr, "localhost", "u0", "pw0"); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := 1; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := registerAccount(addr, "localhost", fmt.Sprintf("u%d", i), "pw"+strconv.Itoa(i)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func benchLoginRate(b *testing.B, addr string) float64 {
	var next, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < benchConcurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= benchLogins {
					return
				}
				u := int(i) % benchAccounts
				c, err := dialLogin(addr, "localhost", fmt.Sprintf("u%d", u), "pw"+strconv.Itoa(u), "r"+strconv.Itoa(int(i)))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				c.close()
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%d of %d logins failed: %v", failed.Load(), benchLogins, firstErr.Load())
	}
	return float64(benchLogins) / time.Since(start).Seconds()
}

func benchMessageRate(b *testing.B, addr string) float64 {
	pairs := benchAccounts / 2
	senders := make([]*loadClient, pairs)
	receivers := make([]*loadClient, pairs)
	for i := 0; i < pairs; i++ {
		var err error
		if senders[i], err = dialLogin(addr, "localhost", fmt.Sprintf("u%d", 2*i), "pw"+strconv.Itoa(2*i), "send"); err != nil {
			b.Fatal(err)
		}
		if receivers[i], err = dialLogin(addr, "localhost", fmt.Sprintf("u%d", 2*i+1), "pw"+strconv.Itoa(2*i+1), "recv"); err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		for i := range senders {
			senders[i].close()
			receivers[i].close()
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	var got atomic.Int64
	for i := 0; i < pairs; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			to, ns := receivers[i].jid, senders[i].clientNS()
			stanzas := make([]string, benchPerSender)
			for k := range stanzas {
				stanzas[k] = fmt.Sprintf("<message%s to='%s' type='chat' id='m%d'><body>message %d of the benchmark</body></message>", ns, to, k, k)
			}
			if err := senders[i].sendStanzas(stanzas); err != nil {
				b.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			receivers[i].nc.SetReadDeadline(time.Now().Add(benchReceiveTimeout))
			// Each message arrives once, in the order sent (RFC 6120
			// §10.1), from its sender.
			from := senders[i].jid
			for k := 0; k < benchPerSender; {
				st, _, err := receivers[i].next()
				if err != nil {
					b.Errorf("%s: after %d of %d messages: %v", receivers[i].jid, k, benchPerSender, err)
					return
				}
				if st.Name.Local == "message" {
					if id := attr(st, "id"); id != "m"+strconv.Itoa(k) || attr(st, "from") != from {
						b.Errorf("%s: message %d is %q from %s, want m%d from %s", receivers[i].jid, k, id, attr(st, "from"), k, from)
						return
					}
					got.Add(1)
					k++
				}
			}
		}()
	}
	wg.Wait()
	return float64(got.Load()) / time.Since(start).Seconds()
}

// startProsody runs Debian's Prosody on a free loopback port with an
// equivalent setup: STARTTLS required, SCRAM (internal_hashed), SQLite
// storage, in-band registration for the benchmark accounts, MAM on SQLite
// archiving every message forever (both sides), carbons and stream
// management (mod_smacks, in Prosody since 0.12). Its database is
// dir/prosody.sqlite; starting it again on the same dir keeps the data.
func startProsody(dir string) (addr string, stop func(), err error) {
	return startProsodyWeb(dir, 0)
}

// startProsodyWeb is startProsody, and with httpsPort > 0 also serves
// XMPP over WebSocket (mod_websocket, RFC 7395) over HTTPS on that
// loopback port, at wss://127.0.0.1:httpsPort/xmpp-websocket, with the
// same certificate.
func startProsodyWeb(dir string, httpsPort int) (addr string, stop func(), err error) {
	if _, err := exec.LookPath("prosody"); err != nil {
		return "", nil, fmt.Errorf("not installed (apt-get install prosody lua-dbi-sqlite3)")
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return "", nil, err
	}
	os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)
	os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	var webModule, web string
	if httpsPort > 0 {
		// mod_http would also listen on 5280 (plain): not here. Requests
		// for 127.0.0.1 go to the host localhost; wss counts as secure, as
		// STARTTLS does (c2s_require_encryption).
		webModule = `; "websocket"`
		web = fmt.Sprintf(`http_ports = { }
https_ports = { %d }
https_interfaces = { "127.0.0.1" }
https_ssl = { certificate = %q; key = %q }
http_default_host = "localhost"
`, httpsPort, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	}
	cfg := fmt.Sprintf(`run_as_root = true
pidfile = %[1]q
data_path = %[2]q
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "mam"; "carbons"; "smacks"; "register"; "posix"%[9]s }
allow_registration = true
min_seconds_between_registrations = 0
registration_throttle_max = 1000000
c2s_ports = { %[3]d }
s2s_ports = { }
interfaces = { "127.0.0.1" }
storage = "sql"
sql = { driver = "SQLite3", database = %[4]q }
authentication = "internal_hashed"
c2s_require_encryption = true
default_archive_policy = true
archive_expires_after = "never"
limits = { c2s = { rate = "100mb/s" } }
-- TCP_NODELAY, as Annals (Go's default) and ejabberd have: with Nagle on,
-- a reply written in several TLS records waits for the client's delayed
-- ACK (40 ms on loopback) between them.
network_settings = { nagle = false }
log = { warn = %[5]q }
%[8]sVirtualHost "localhost"
  ssl = { certificate = %[6]q; key = %[7]q }
-- MUC with every room archived (BenchmarkMUC), as Annals' conference.localhost.
Component "conference.localhost" "muc"
  modules_enabled = { "muc_mam" }
  muc_log_all_rooms = true
  muc_log_expires_after = "never"
  muc_room_default_persistent = true
`, filepath.Join(dir, "prosody.pid"), filepath.Join(dir, "data"), port, filepath.Join(dir, "prosody.sqlite"),
		filepath.Join(dir, "prosody.log"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), web, webModule)
	cfgPath := filepath.Join(dir, "prosody.cfg.lua")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.Command("prosody", "--config", cfgPath, "-F")
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	addr = "127.0.0.1:" + strconv.Itoa(port)
	wait := []string{addr}
	if httpsPort > 0 {
		wait = append(wait, "127.0.0.1:"+strconv.Itoa(httpsPort))
	}
	for _, a := range wait {
		if err := waitListen(a, 15*time.Second); err != nil {
			stop()
			return "", nil, fmt.Errorf("prosody: %w", err)
		}
	}
	return addr, stop, nil
}

// startEjabberd runs startEjabberdIn on a new directory, removed by stop
// unless ANNALS_BENCH_KEEP is set.
func startEjabberd() (addr string, stop func(), err error) {
	return startEjabberdWeb(0)
}

// startEjabberdWeb is startEjabberd, and with httpsPort > 0 also serves
// XMPP over WebSocket (ejabberd_http_ws, RFC 7395) over HTTPS on that
// loopback port, at wss://127.0.0.1:httpsPort/xmpp-websocket, with the
// same certificate.
func startEjabberdWeb(httpsPort int) (addr string, stop func(), err error) {
	if _, err := exec.LookPath("ejabberdctl"); err != nil {
		return "", nil, fmt.Errorf("not installed (apt-get install ejabberd)")
	}
	dir, err := os.MkdirTemp("", "annals-ejabberd")
	if err != nil {
		return "", nil, err
	}
	addr, stopVM, err := startEjabberdListen(dir, httpsPort)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return addr, func() {
		stopVM()
		if os.Getenv("ANNALS_BENCH_KEEP") == "" {
			os.RemoveAll(dir)
		}
	}, nil
}

// startEjabberdIn runs Debian's ejabberd on a free loopback port with an
// equivalent setup: STARTTLS required, SCRAM-SHA-256 stored keys, SQLite,
// in-band registration, MAM on SQLite archiving every message (both
// sides), carbons and stream management. ejabberdctl runs the server as the
// ejabberd user, so dir is handed to that user. Its database is
// dir/ejabberd.db; starting it again on the same dir keeps the data.
func startEjabberdIn(dir string) (addr string, stop func(), err error) {
	return startEjabberdListen(dir, 0)
}

// startEjabberdListen is startEjabberdIn with, for httpsPort > 0, the
// WebSocket listener of startEjabberdWeb.
func startEjabberdListen(dir string, httpsPort int) (addr string, stop func(), err error) {
	if _, err := exec.LookPath("ejabberdctl"); err != nil {
		return "", nil, fmt.Errorf("not installed (apt-get install ejabberd)")
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return "", nil, err
	}
	os.MkdirAll(filepath.Join(dir, "spool"), 0o755)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	os.WriteFile(filepath.Join(dir, "server.pem"), append(certPEM, keyPEM...), 0o600)
	os.WriteFile(filepath.Join(dir, "ejabberdctl.cfg"), nil, 0o644)
	if inetrc, err := os.ReadFile("/etc/ejabberd/inetrc"); err == nil {
		os.WriteFile(filepath.Join(dir, "inetrc"), inetrc, 0o644)
	}
	var web string
	if httpsPort > 0 {
		web = fmt.Sprintf(`  - port: %d
    ip: "127.0.0.1"
    module: ejabberd_http
    tls: true
    request_handlers:
      /xmpp-websocket: ejabberd_http_ws
`, httpsPort)
	}
	cfg := fmt.Sprintf(`hosts: ["localhost"]
loglevel: warning
certfiles: [%[1]q]
listen:
  - port: %[2]d
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
    max_stanza_size: 262144
    shaper: none
%[4]sdefault_db: sql
sql_type: sqlite
sql_database: %[3]q
auth_method: sql
auth_password_format: scram
auth_scram_hash: sha256
registration_timeout: infinity
access_rules:
  register:
    allow: all
shaper_rules:
  c2s_shaper: none
  max_user_sessions: 1000
modules:
  mod_register:
    ip_access: all
    access: register
  mod_roster: {}
  mod_mam:
    default: always
    db_type: sql
  mod_carboncopy: {}
  mod_stream_mgmt: {}
  mod_ping: {}
  mod_disco: {}
  mod_muc:
    host: "conference.localhost"
    default_room_options:
      mam: true
      persistent: true
`, filepath.Join(dir, "server.pem"), port, filepath.Join(dir, "ejabberd.db"), web)
	os.WriteFile(filepath.Join(dir, "ejabberd.yml"), []byte(cfg), 0o644)
	if out, err := exec.Command("chown", "-R", "ejabberd:ejabberd", dir).CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("chown: %v %s", err, out)
	}
	os.Chmod(dir, 0o755)
	cmd := exec.Command("ejabberdctl", "foreground")
	// ejabberdctl drops its flags when it re-runs itself as the ejabberd
	// user, but keeps the environment.
	cmd.Env = append(os.Environ(), "CONFIG_DIR="+dir, "EJABBERD_CONFIG_PATH="+filepath.Join(dir, "ejabberd.yml"),
		"SPOOL_DIR="+filepath.Join(dir, "spool"), "LOGS_DIR="+filepath.Join(dir, "logs"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		// The Erlang VM runs as the ejabberd user, outside our process
		// group, and under its own node name whatever ERLANG_NODE says.
		exec.Command("pkill", "-KILL", "-u", "ejabberd", "beam.smp").Run()
		cmd.Wait()
		// Gone before a restart on the same node name and database.
		for i := 0; i < 100 && exec.Command("pgrep", "-u", "ejabberd", "beam.smp").Run() == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	addr = "127.0.0.1:" + strconv.Itoa(port)
	wait := []string{addr}
	if httpsPort > 0 {
		wait = append(wait, "127.0.0.1:"+strconv.Itoa(httpsPort))
	}
	for _, a := range wait {
		if err := waitListen(a, 60*time.Second); err != nil {
			stop()
			return "", nil, fmt.Errorf("ejabberd: %w", err)
		}
	}
	return addr, stop, nil
}

// freePort asks the kernel for a loopback port nobody listens on.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitListen waits until something accepts connections on addr.
func waitListen(addr string, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("nothing listens on %s after %v", addr, timeout)
}

func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// serveOnB is serveOn for benchmarks.
func serveOnB(b *testing.B, data string, flags ...string) (*server, *exec.Cmd) {
	cmd := exec.Command(bin, append([]string{"serve", "--data", data, "--c2s", "127.0.0.1:0"}, flags...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	var seen strings.Builder
	for !strings.Contains(seen.String(), " on 127.0.0.1:") || !strings.Contains(seen.String(), "Stop with") {
		n, err := stdout.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			b.Fatalf("serve: %v\n%s", err, seen.String())
		}
	}
	text := seen.String()
	i := strings.Index(text, " on 127.0.0.1:") + len(" on 127.0.0.1:")
	j := i
	for j < len(text) && text[j] >= '0' && text[j] <= '9' {
		j++
	}
	port, _ := strconv.Atoi(text[i:j])
	go func() {
		for {
			if _, err := stdout.Read(buf); err != nil {
				return
			}
		}
	}()
	return &server{port: port, data: data}, cmd
}
