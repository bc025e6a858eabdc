package c2s

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoadOrCreateCert(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	c, err := LoadOrCreateCert(dir, []string{"localhost", "example.com"}, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "example.com", "conference.example.com"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("certificate does not cover %s: %v", name, err)
		}
	}
	if leaf.NotAfter.Before(now.AddDate(0, 11, 0)) || leaf.NotBefore.After(now) {
		t.Errorf("validity %v .. %v", leaf.NotBefore, leaf.NotAfter)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	// A second start loads the same certificate instead of making another.
	again, err := LoadOrCreateCert(dir, []string{"other.example"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Certificate[0]) != string(c.Certificate[0]) {
		t.Fatal("a second call made a new certificate")
	}
	// And a client that trusts it completes a handshake for localhost.
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{again}})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	cli := tls.Client(b, &tls.Config{RootCAs: roots, ServerName: "localhost", Time: func() time.Time { return now }})
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if _, err := LoadOrCreateCert(t.TempDir(), nil, now); err == nil {
		t.Fatal("no domains: want an error")
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, CertFile), []byte("junk"), 0o644)
	os.WriteFile(filepath.Join(bad, KeyFile), []byte("junk"), 0o600)
	if _, err := LoadOrCreateCert(bad, []string{"localhost"}, now); err == nil {
		t.Fatal("a corrupt certificate file was silently replaced")
	}
}

func TestCheckPlaintext(t *testing.T) {
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:5222", true},
		{"127.0.0.2:5222", true},
		{"[::1]:5222", true},
		{"localhost:5222", true},
		{":5222", false},
		{"0.0.0.0:5222", false},
		{"192.0.2.1:5222", false},
		{"example.com:5222", false},
		{"no-port", false},
	} {
		err := CheckPlaintext(c.addr)
		if (err == nil) != c.ok {
			t.Errorf("CheckPlaintext(%q) = %v, want ok=%v", c.addr, err, c.ok)
		}
		if err != nil && c.addr != "no-port" && !errors.Is(err, ErrPlaintext) {
			t.Errorf("CheckPlaintext(%q) = %v, want ErrPlaintext", c.addr, err)
		}
	}
}

// TestServerTLSSuites: a TLS 1.2 client that offers only CBC suites (with
// HMAC-SHA1 or SHA-256) fails the handshake; one that offers an AEAD suite
// gets it, and TLS 1.3 still works.
func TestServerTLSSuites(t *testing.T) {
	cert, err := LoadOrCreateCert(t.TempDir(), []string{"localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	handshake := func(cli *tls.Config) (tls.ConnectionState, error) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		srv := tls.Server(a, ServerTLS(cert))
		go srv.Handshake()
		cli.InsecureSkipVerify = true
		c := tls.Client(b, cli)
		err := c.Handshake()
		return c.ConnectionState(), err
	}
	cbc := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	}
	if _, err := handshake(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: cbc}); err == nil {
		t.Error("a TLS 1.2 client offering only CBC suites completed the handshake")
	}
	for _, s := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256} {
		st, err := handshake(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: append(cbc, s)})
		if err != nil || st.CipherSuite != s {
			t.Errorf("TLS 1.2 with %s offered: suite %s, %v", tls.CipherSuiteName(s), tls.CipherSuiteName(st.CipherSuite), err)
		}
	}
	if st, err := handshake(&tls.Config{}); err != nil || st.Version != tls.VersionTLS13 {
		t.Errorf("TLS 1.3: version %x, %v", st.Version, err)
	}
	for _, s := range CipherSuites {
		for _, insecure := range tls.InsecureCipherSuites() {
			if s == insecure.ID {
				t.Errorf("%s is offered", insecure.Name)
			}
		}
	}
}
