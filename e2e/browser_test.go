package e2e

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"annals.im/annals/adapters/websocket"
)

// The browser test (issue 15): Converse.js (npm converse.js, pinned in
// clients/browser/package-lock.json), served by the test from a local
// page, runs in Debian's chromium, headless, driven by puppeteer-core
// (clients/browser/converse.mjs). Its user logs in over WebSocket, types
// a message that a slixmpp client (clients/slix_browser.py) receives,
// sees the reply, opens a room and sees what was said there before, and
// uploads a picture (XEP-0363) that the slixmpp client downloads byte for
// byte. The screenshots are written to the test's artifact directory
// (go test -artifacts -outputdir DIR keeps them).
//
// TestBrowserHarnessProsody runs the same against Debian's Prosody
// (mod_websocket, mod_http_file_share): it proves the harness, so that a
// failure against Annals is Annals'.

const (
	browserUser, browserPassword = "romeo@localhost", "montague"
	peerUser, peerPassword       = "juliet@localhost", "capulet"
	browserRoom                  = "lobby@conference.localhost"
)

// browserDir is the browser driver's directory, once make tools has
// installed what it needs: Debian's chromium and the pinned npm packages.
func browserDir(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs("clients/browser")
	for _, need := range []string{"/usr/bin/chromium", filepath.Join(dir, "node_modules/puppeteer-core"),
		filepath.Join(dir, "node_modules/converse.js/dist/converse.min.js")} {
		if _, err := os.Stat(need); err != nil {
			t.Fatalf("%s is missing: make tools installs chromium (apt) and runs npm ci in e2e/clients/browser", need)
		}
	}
	return dir
}

// servePage serves the test's page and Converse.js's dist (the npm
// package's, as it ships) on a loopback port, and returns its URL.
func servePage(t *testing.T, dir string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(dir, "index.html"))
	})
	mux.Handle("GET /dist/", http.StripPrefix("/dist/", http.FileServer(http.Dir(filepath.Join(dir, "node_modules/converse.js/dist")))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// noisePNG is a picture of random pixels: a file no one else uploads, and
// one Converse shows inline.
func noisePNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 120, 80))
	for i := range img.Pix {
		img.Pix[i] = byte(rand.IntN(256))
	}
	for y := range 80 {
		for x := range 120 {
			img.Pix[img.PixOffset(x, y)+3] = 0xff
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// browserRun is the scenario against a server whose c2s listens on
// c2sPort (for the slixmpp peer) and whose WebSocket endpoint is ws;
// spki, when not "", pins the HTTPS listener's key for chromium. It checks
// what both clients said and returns the browser's facts.
func browserRun(t *testing.T, c2sPort int, ws, spki string) []result {
	dir := browserDir(t)
	out := t.ArtifactDir()
	nonce := strconv.FormatUint(rand.Uint64(), 36)
	message := "But soft, what light through yonder window breaks? " + nonce
	reply := "It is the east, and Juliet is the sun. " + nonce
	history := []string{"O Romeo, Romeo, wherefore art thou Romeo? " + nonce, "Deny thy father and refuse thy name. " + nonce}
	file := filepath.Join(out, "balcony-"+nonce+".png")
	picture := noisePNG(t)
	if err := os.WriteFile(file, picture, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(picture)

	// slixmpp's client is in the room, and has said what the room's
	// history will show, before the browser starts.
	_, peer := startDriver(t, "/usr/bin/python3", append([]string{"clients/slix_browser.py", strconv.Itoa(c2sPort), "peer",
		peerUser, peerPassword, browserUser, browserRoom, "juliet", reply}, history...)...)

	settings, _ := json.Marshal(map[string]any{
		"page": servePage(t, dir), "websocket": ws, "jid": browserUser, "password": browserPassword,
		"peer": peerUser, "message": message, "reply": reply, "room": browserRoom, "nick": "romeo",
		"history": history, "file": file, "outdir": out, "spki": spki,
	})
	start := time.Now()
	conv := runDriver(t, "node", filepath.Join(dir, "converse.mjs"), string(settings))
	t.Logf("Converse.js ran its scenario in %v; screenshots in %s", time.Since(start).Round(time.Millisecond), out)
	peerSaid := peer()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, r := range all(conv, "page-errors") {
			t.Logf("the page's console errors (Converse's own, not verdicts): %v", r["errors"])
		}
		for _, r := range all(conv, "refused") {
			t.Logf("requests off this machine, refused: %v", r["urls"])
		}
	})

	// Logged in, over the WebSocket named, with the xmpp subprotocol.
	login := find(t, conv, "login")
	if bare, _, _ := strings.Cut(str(login["jid"]), "/"); login["ok"] != true || bare != browserUser {
		t.Fatalf("login: %v", login)
	}
	sockets := all(conv, "websocket")
	socks, _ := sockets[len(sockets)-1]["sockets"].([]any)
	if len(socks) != 1 {
		t.Fatalf("the page opened %d WebSockets, want 1: %v", len(socks), socks)
	}
	sock, _ := socks[0].(map[string]any)
	if sock["url"] != ws || sock["protocol"] != "xmpp" || sock["status"] != 101.0 || sock["sent"].(float64) < 10 || sock["received"].(float64) < 10 {
		t.Errorf("the WebSocket: %v, want %s upgraded (101) with the xmpp subprotocol, carrying the session", sock, ws)
	}

	// The typed message reached slixmpp as a chat message from the
	// browser's session, and slixmpp's reply shows in the page.
	got := find(t, peerSaid, "received")
	if got["body"] != message || got["type"] != "chat" || got["sender"] != login["jid"] {
		t.Errorf("slixmpp received %v, want %q from %v", got, message, login["jid"])
	}
	if !shows(find(t, conv, "chat"), peerUser, reply) {
		t.Errorf("the chat does not show the reply %q from %s: %v", reply, peerUser, find(t, conv, "chat"))
	}

	// The room shows what was said before the browser joined, from the
	// occupant who said it.
	room := find(t, conv, "room")
	for _, h := range history {
		if !shows(room, browserRoom+"/juliet", h) {
			t.Errorf("the room does not show its history %q from juliet: %v", h, room)
		}
	}

	// The file: Converse's message names the GET URL; slixmpp found it
	// there (out-of-band data) and downloaded the same bytes.
	up := find(t, conv, "upload")
	msg, _ := up["message"].(map[string]any)
	links := strs(msg["links"])
	if bare, _, _ := strings.Cut(str(msg["from"]), "/"); bare != browserUser {
		t.Errorf("the page shows the file as sent by %v, want %s", msg["from"], browserUser)
	}
	fm := find(t, peerSaid, "file-message")
	if len(links) == 0 || fm["url"] != links[0] || fm["url_in"] != "oob" {
		t.Errorf("the upload: the page shows %v, slixmpp got %v", msg, fm)
	}
	dl := find(t, peerSaid, "download")
	if dl["status"] != 200.0 || dl["size"] != float64(len(picture)) || dl["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("slixmpp downloaded %v, want %d bytes with sha256 %x", dl, len(picture), sum)
	}
	if ct := str(dl["content_type"]); !strings.HasPrefix(ct, "image/png") {
		t.Errorf("the file was served as %q, want image/png", ct)
	}

	// The screenshots are pictures of the page: full size, not blank.
	for _, r := range all(conv, "screenshot") {
		checkScreenshot(t, str(r["path"]))
	}
	if n := len(all(conv, "screenshot")); n != 2 {
		t.Errorf("%d screenshots, want 2 (room, conversation)", n)
	}
	return conv
}

// shows reports whether the page's messages in fact r include text from
// a sender whose JID is (or starts with) who.
func shows(r result, who, text string) bool {
	msgs, _ := r["messages"].([]any)
	for _, m := range msgs {
		m, _ := m.(map[string]any)
		from := str(m["from"])
		if m["text"] == text && (from == who || strings.HasPrefix(from, who+"/")) {
			return true
		}
	}
	return false
}

func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Errorf("screenshot %s: %v", path, err)
		return
	}
	colors := map[color.Color]bool{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y += 7 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 7 {
			colors[img.At(x, y)] = true
		}
	}
	if img.Bounds().Dx() != 1280 || img.Bounds().Dy() != 900 || len(colors) < 20 {
		t.Errorf("screenshot %s: %v with %d colours sampled, want 1280x900 showing something", path, img.Bounds(), len(colors))
	}
}

// startProsodyBrowser runs Debian's Prosody on loopback with what the browser
// scenario needs: c2s (STARTTLS, for slixmpp), plain HTTP on loopback
// with mod_websocket (considered secure, as behind a proxy: Annals'
// --http-plaintext), MUC, HTTP File Upload (mod_http_file_share), and
// the PEP and blocking (XEP-0191) that Converse.js asks for. It returns
// the c2s port and the HTTP address.
func startProsodyBrowser(t *testing.T, users map[string]string) (int, string) {
	t.Helper()
	needPeer(t, installed("prosody"), "prosody", "prosody")
	dir := t.TempDir()
	c2s, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	httpPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "cert.pem"), cert, 0o600)
	writeFile(t, filepath.Join(dir, "key.pem"), key, 0o600)
	os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	httpAddr := "127.0.0.1:" + strconv.Itoa(httpPort)
	conf := fmt.Sprintf(`run_as_root = true
pidfile = %[1]q
data_path = %[2]q
certificates = %[3]q
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "carbons"; "smacks"; "mam"; "pep"; "blocklist"; "websocket"; "posix" }
c2s_ports = { %[4]d }
c2s_interfaces = { "127.0.0.1" }
s2s_ports = { }
component_ports = { }
https_ports = { }
http_ports = { %[5]d }
http_interfaces = { "127.0.0.1" }
-- Every HTTP app on one host and port, named as the browser reaches it.
http_host = "127.0.0.1"
http_external_url = "http://%[6]s/"
consider_websocket_secure = true
authentication = "internal_hashed"
c2s_require_encryption = true
log = { debug = %[7]q }
VirtualHost "localhost"
  ssl = { certificate = %[8]q; key = %[9]q }
Component "conference.localhost" "muc"
  modules_enabled = { "muc_mam" }
Component "upload.localhost" "http_file_share"
`, filepath.Join(dir, "prosody.pid"), filepath.Join(dir, "data"), dir, c2s, httpPort, httpAddr,
		filepath.Join(dir, "prosody.log"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	confPath := filepath.Join(dir, "prosody.cfg.lua")
	writeFile(t, confPath, []byte(conf), 0o600)
	for _, j := range sortedKeys(users) {
		user, domain, _ := strings.Cut(j, "@")
		if out, err := exec.Command("prosodyctl", "--config", confPath, "register", user, domain, users[j]).CombinedOutput(); err != nil {
			t.Fatalf("prosodyctl register %s: %v %s", j, err, out)
		}
	}
	cmd := exec.Command("prosody", "--config", confPath, "-F")
	var stdout lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prosody.log"))
			t.Logf("prosody log, last 48 KiB:\n%s\n%s", tail(string(b), 48<<10), stdout.String())
		}
	})
	for _, addr := range []string{"127.0.0.1:" + strconv.Itoa(c2s), httpAddr} {
		if err := waitListen(addr, 15*time.Second); err != nil {
			t.Fatalf("prosody: %v\n%s", err, stdout.String())
		}
	}
	return c2s, httpAddr
}

// The harness against Prosody: if this fails, the browser test is broken,
// not Annals. The browser tests do not run in parallel with the others: a
// chromium beside them on 2 cores slows all.
func TestBrowserHarnessProsody(t *testing.T) {
	users := map[string]string{browserUser: browserPassword, peerUser: peerPassword}
	c2s, httpAddr := startProsodyBrowser(t, users)
	browserRun(t, c2s, "ws://"+httpAddr+"/xmpp-websocket", "")
}

// Converse.js against Annals, over each HTTP listener, which also serves
// the upload service upload.localhost (its URLs on that listener):
// plain text on loopback (--http-plaintext, as behind a proxy), and TLS
// (--http, the c2s certificate: the test's own, whose key alone chromium
// trusts).
func TestBrowserConverse(t *testing.T) {
	users := map[string]string{browserUser: browserPassword, peerUser: peerPassword}
	t.Run("plaintext", func(t *testing.T) {
		addr := browserListener(t)
		s := browserServer(t, users, addr, "--http-plaintext", addr)
		browserRun(t, s.port, "ws://"+addr+websocket.Path, "")
	})
	t.Run("tls", func(t *testing.T) {
		dir := t.TempDir()
		certPEM, keyPEM, err := selfSigned()
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "cert.pem"), certPEM, 0o600)
		writeFile(t, filepath.Join(dir, "key.pem"), keyPEM, 0o600)
		block, _ := pem.Decode(certPEM)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
		addr := browserListener(t)
		s := browserServer(t, users, addr, "--http", addr, "--tls-cert", filepath.Join(dir, "cert.pem"), "--tls-key", filepath.Join(dir, "key.pem"))
		_, port, _ := net.SplitHostPort(addr)
		// The certificate names localhost, as the upload URLs do
		// (https://<first domain>:<port>).
		browserRun(t, s.port, "wss://localhost:"+port+websocket.Path, base64.StdEncoding.EncodeToString(spki[:]))
	})
}

// browserServer starts Annals with users and flags, once its HTTP
// listener on addr takes connections.
func browserServer(t *testing.T, users map[string]string, addr string, flags ...string) *server {
	t.Helper()
	data := t.TempDir()
	addUsers(t, data, users)
	s, _ := serveOn(t, data, flags...)
	if err := waitListen(addr, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return s
}

// browserListener is a free loopback address for an HTTP listener.
func browserListener(t *testing.T) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}
