package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// HTTP File Upload (XEP-0363) with slixmpp's xep_0363 plugin over the
// HTTPS listener: alice uploads a file, bob downloads it byte for byte
// with his own HTTP client; a slot over the limit is refused with the
// limit; a wrong token is refused; the file is gone once expired; the
// grant is in alice's stream.
func TestUploadSlixmpp(t *testing.T) {
	t.Parallel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	addUsers(t, data, map[string]string{"alice@localhost": "pw", "bob@localhost": "pw"})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	// Files expire after 30 s: long enough for the clients on a loaded
	// machine, short enough to see one go.
	s, _ := serveOn(t, data, "--http", addr, "--upload-max-size", "1MiB", "--upload-expiry", "30s", "--upload-put-window", "20s")
	if err := waitListen(addr, 10e9); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "très cool.jpg")
	content := make([]byte, 300<<10)
	rand.Read(content)
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	started := time.Now()
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_upload.py", "127.0.0.1:"+strconv.Itoa(s.port), filepath.Join(data, "tls-cert.pem"),
		"pw", "alice@localhost", "bob@localhost", file)

	up := find(t, rs, "uploaded")
	url, _ := up["url"].(string)
	want := regexp.MustCompile(`^https://localhost:` + strconv.Itoa(port) + `/upload/([0-9a-f]{32})/tr%C3%A8s%20cool\.jpg$`)
	m := want.FindStringSubmatch(url)
	if m == nil || up["service"] != "upload.localhost" || up["max_file_size"] != float64(1<<20) {
		t.Fatalf("uploaded %v", up)
	}
	got := find(t, rs, "downloaded")
	h, _ := got["headers"].(map[string]any)
	if got["status"] != float64(200) || got["sha256"] != hex.EncodeToString(sum[:]) || got["length"] != float64(len(content)) ||
		h["Content-Type"] != "image/jpeg" || h["Content-Length"] != strconv.Itoa(len(content)) ||
		h["Content-Disposition"] != "inline; filename*=utf-8''tr%C3%A8s%20cool.jpg" || h["X-Content-Type-Options"] != "nosniff" ||
		h["Access-Control-Allow-Origin"] != "*" {
		t.Fatalf("downloaded %v", got)
	}
	tl := find(t, rs, "too-large")
	e, _ := tl["error"].(map[string]any)
	if e["condition"] != "not-acceptable" || tl["max_file_size"] != strconv.Itoa(1<<20) {
		t.Fatalf("too large: %v", tl)
	}

	// A wrong token: refused on PUT, unknown on GET.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	wrong := strings.Replace(url, m[1], strings.Repeat("0", 32), 1)
	req, _ := http.NewRequest("PUT", wrong, strings.NewReader("x"))
	for _, c := range []struct {
		req  *http.Request
		want int
	}{{req, http.StatusForbidden}, {mustGet(wrong), http.StatusNotFound}, {mustGet(url), http.StatusOK}} {
		resp, err := client.Do(c.req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.req.Method, c.req.URL, resp.StatusCode, c.want)
		}
	}
	// Once expired, the file is gone.
	time.Sleep(time.Until(started.Add(31 * time.Second)))
	if st := getStatus(t, client, url); st != http.StatusNotFound {
		t.Errorf("GET after the expiry: %d", st)
	}
	// The grant is alice's, in her stream, for the auditors: the name
	// and size, not the token.
	out, err := exec.Command(bin, "audit", "query", "--json", "--stream", "account-alice@localhost", "--type", "UploadSlotGranted", "--data", data).CombinedOutput()
	if err != nil || strings.Count(string(out), `"UploadSlotGranted"`) != 1 || !strings.Contains(string(out), `"filename":"très cool.jpg"`) ||
		!strings.Contains(string(out), `"size":307200`) || strings.Contains(string(out), m[1]) {
		t.Fatalf("audit: %v\n%s", err, out)
	}
}

// getStatus is the status of a GET of u.
func getStatus(t *testing.T, client *http.Client, u string) int {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func mustGet(u string) *http.Request {
	r, _ := http.NewRequest("GET", u, nil)
	return r
}
