package e2e

import (
	"crypto/tls"
	"net"
	"strconv"
	"testing"
	"time"
)

// TestHostileTLSDowngrade (issue 10, item 9): the real server refuses a
// client that offers only CBC suites with TLS 1.2, or only TLS 1.1, after
// STARTTLS; an ordinary client logs in beside it.
func TestHostileTLSDowngrade(t *testing.T) {
	s := startServer(t, map[string]string{"bob@localhost": "b-pw"})
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	cbc := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	}
	for name, cfg := range map[string]*tls.Config{
		"TLS 1.2 with CBC suites only": {MaxVersion: tls.VersionTLS12, CipherSuites: cbc},
		"TLS 1.1":                      {MaxVersion: tls.VersionTLS11},
	} {
		if err := startTLSWith(addr, cfg); err == nil {
			t.Errorf("%s: the handshake succeeded", name)
		}
	}
	if err := startTLSWith(addr, &tls.Config{MaxVersion: tls.VersionTLS12}); err != nil {
		t.Errorf("TLS 1.2 with Go's default suites: %v", err)
	}
	bob, err := dialLogin(addr, "localhost", "bob", "b-pw", "desk")
	if err != nil {
		t.Fatalf("an ordinary login: %v", err)
	}
	bob.close()
}

// startTLSWith opens a stream, asks for STARTTLS and runs the handshake
// with cfg.
func startTLSWith(addr string, cfg *tls.Config) error {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &loadClient{nc: nc}
	if err := c.open("localhost"); err != nil {
		return err
	}
	if err := c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		return err
	}
	if _, _, err := c.next(); err != nil {
		return err
	}
	cfg.InsecureSkipVerify, cfg.ServerName = true, "localhost"
	return tls.Client(nc, cfg).Handshake()
}
