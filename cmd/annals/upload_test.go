package main

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"annals.im/annals/app/accounts"
)

// The upload flags: the service and its URL follow the HTTP listener,
// and every bound is checked.
func TestUploadFlags(t *testing.T) {
	ok := func() uploadFlags {
		return uploadFlags{domain: uploadDefaultDomain, maxSize: 100 << 20, quota: 1 << 30, maxOpen: 16, expiry: 720 * time.Hour, window: 5 * time.Minute, minRate: 16 << 10}
	}
	domains := []string{"example.org", "localhost"}
	for _, c := range []struct {
		name       string
		edit       func(*uploadFlags)
		web        webFlags
		err        bool
		domain, to string
	}{
		{"with --http", func(*uploadFlags) {}, webFlags{addr: ":5443"}, false, "upload.example.org", "https://example.org:5443"},
		{"behind a proxy", func(*uploadFlags) {}, webFlags{plainAddr: "127.0.0.1:5280"}, false, "upload.example.org", "http://127.0.0.1:5280"},
		{"the proxy's URL", func(u *uploadFlags) { u.url = "https://chat.example.org" }, webFlags{plainAddr: "127.0.0.1:5280"}, false,
			"upload.example.org", "https://chat.example.org"},
		{"no HTTP listener: no service", func(*uploadFlags) {}, webFlags{}, false, "", ""},
		{"asked for without a listener", func(u *uploadFlags) { u.domain = "files.example.org" }, webFlags{}, true, "", ""},
		{"off", func(u *uploadFlags) { u.domain = "" }, webFlags{addr: ":5443"}, false, "", ""},
		{"a served domain", func(u *uploadFlags) { u.domain = "localhost" }, webFlags{addr: ":5443"}, true, "", ""},
		{"the MUC's domain", func(u *uploadFlags) { u.domain = "conference.example.org" }, webFlags{addr: ":5443"}, true, "", ""},
		{"plain http elsewhere", func(u *uploadFlags) { u.url = "http://chat.example.org" }, webFlags{addr: ":5443"}, true, "", ""},
		{"no size", func(u *uploadFlags) { u.maxSize = 0 }, webFlags{addr: ":5443"}, true, "", ""},
		{"a quota under the size", func(u *uploadFlags) { u.quota = u.maxSize - 1 }, webFlags{addr: ":5443"}, true, "", ""},
		{"no rate", func(u *uploadFlags) { u.minRate = 0 }, webFlags{addr: ":5443"}, true, "", ""},
		{"no open slots", func(u *uploadFlags) { u.maxOpen = 0 }, webFlags{addr: ":5443"}, true, "", ""},
		{"negative expiry", func(u *uploadFlags) { u.expiry = -time.Second }, webFlags{addr: ":5443"}, true, "", ""},
		{"expiry in the window", func(u *uploadFlags) { u.expiry = time.Minute }, webFlags{addr: ":5443"}, true, "", ""},
		{"kept for ever", func(u *uploadFlags) { u.expiry = 0 }, webFlags{addr: ":5443"}, false, "upload.example.org", "https://example.org:5443"},
	} {
		u := ok()
		c.edit(&u)
		err := u.validate(domains, "conference.example.org", c.web)
		if (err != nil) != c.err || err != nil && !errors.Is(err, errUsage) {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if err == nil && (u.domain != c.domain || u.domain != "" && u.url != c.to) {
			t.Errorf("%s: %q at %q", c.name, u.domain, u.url)
		}
	}
	var b byteSize
	for in, want := range map[string]byteSize{"100MiB": 100 << 20, "1GiB": 1 << 30, "12345": 12345, "4KiB": 4096} {
		if err := b.Set(in); err != nil || b != want {
			t.Errorf("%s: %d %v", in, b, err)
		}
	}
	for _, bad := range []string{"", "1GB", "-1", "lots", "99999999999TiB"} {
		if err := b.Set(bad); err == nil {
			t.Errorf("%s taken", bad)
		}
	}
}

// A URL that follows the listener takes its real port once it listens
// (--http 127.0.0.1:0), the TLS listener's when both are on; a URL
// given stays.
func TestUploadSettle(t *testing.T) {
	lnTLS, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lnTLS.Close()
	lnPlain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lnPlain.Close()
	web := &webServer{servers: []*http.Server{{}, {TLSConfig: &tls.Config{}}}, lns: []net.Listener{lnPlain, lnTLS}}
	_, port, _ := net.SplitHostPort(lnTLS.Addr().String())
	for _, c := range []struct{ given, want string }{{"", "https://example.org:" + port}, {"https://chat.example.org", "https://chat.example.org"}} {
		u := uploadFlags{domain: uploadDefaultDomain, url: c.given, maxSize: 1, quota: 1, maxOpen: 1, window: time.Minute, minRate: 1}
		if err := u.validate([]string{"example.org"}, "", webFlags{addr: "127.0.0.1:0", plainAddr: "127.0.0.1:0"}); err != nil {
			t.Fatal(err)
		}
		svc, err := u.service(t.TempDir(), []string{"example.org"}, &accounts.Service{}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		web.notes = nil
		if err := u.settle(svc, web, "example.org"); err != nil {
			t.Fatal(err)
		}
		if got := svc.URL("t", "a b"); got != c.want+"/upload/t/a%20b" || len(web.notes) != 1 || !strings.Contains(web.notes[0], c.want+"/upload/") {
			t.Errorf("given %q: %s, %q", c.given, got, web.notes)
		}
	}
}
