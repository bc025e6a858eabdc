package s2s

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// selfSigned is a certificate for domain that no one trusts: these tests
// authenticate with dialback, not with certificates.
func selfSigned(t *testing.T, domain string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: domain}, DNSNames: []string{domain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// logBuffer keeps a server's log lines for a test to look for.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type delivered struct {
	from, to jid.JID
	e        *stanza.Element
}

// peer is a federating server for the tests: its config and listener,
// what it delivered, how many dialback keys it had verified, its log.
type peer struct {
	cfg      Config
	addr     string
	got      chan delivered
	verifies atomic.Int32
	log      *logBuffer
}

// startPeer serves domain with secret; verifyAt says where the
// authoritative servers of other domains listen; tweaks change the
// config before the server starts.
func startPeer(t *testing.T, domain, secret string, verifyAt func(domain string) string, tweaks ...func(*Config)) *peer {
	t.Helper()
	p := &peer{got: make(chan delivered, 8), log: &logBuffer{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.cfg = Config{
		Domains:   []string{domain},
		Secret:    []byte(secret),
		TLS:       &tls.Config{Certificates: []tls.Certificate{selfSigned(t, domain)}, MinVersion: tls.VersionTLS12},
		ClientTLS: func(string) *tls.Config { return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} },
		Deliver:   func(from, to jid.JID, e *stanza.Element) { p.got <- delivered{from, to, e} },
		Timeout:   5 * time.Second,
		Log:       slog.New(slog.NewTextHandler(p.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	p.cfg.Verify = func(ctx context.Context, receiving, originating, id, key string) (bool, error) {
		p.verifies.Add(1)
		return p.cfg.VerifyKey(ctx, verifyAt(originating), receiving, originating, id, key)
	}
	for _, tweak := range tweaks {
		tweak(&p.cfg)
	}
	srv, err := NewServer(p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// Two servers federate with dialback: capulet dials montague, montague
// asks capulet's authoritative listener whether the key is capulet's, and
// a message goes through; a key made with another secret is refused, and
// a stanza from a domain the stream did not authenticate ends it.
func TestDialbackBetweenTwoServers(t *testing.T) {
	addrs := map[string]string{}
	at := func(d string) string { return addrs[d] }
	capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", at)
	montague := startPeer(t, "montague.example", "d14lb4ck43v3r-montague", at)
	addrs["capulet.example"], addrs["montague.example"] = capulet.addr, montague.addr
	ctx := context.Background()

	out, err := capulet.cfg.Dial(ctx, montague.addr, "capulet.example", "montague.example")
	if err != nil {
		t.Fatalf("dialback: %v", err)
	}
	if err := out.Send("<message xmlns='jabber:server' from='juliet@capulet.example/balcony' to='romeo@montague.example' type='chat'><body>wherefore</body></message>"); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-montague.got:
		if d.from.String() != "juliet@capulet.example/balcony" || d.to.String() != "romeo@montague.example" || !strings.Contains(string(d.e.Inner), "wherefore") {
			t.Errorf("delivered %v -> %v: %s", d.from, d.to, d.e.Inner)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message never arrived")
	}
	// A spoofed from ends the stream: nothing is delivered.
	out.Send("<message xmlns='jabber:server' from='tybalt@verona.example' to='romeo@montague.example'><body>spoof</body></message>")
	out.Send("<message xmlns='jabber:server' from='juliet@capulet.example/balcony' to='romeo@montague.example'><body>after</body></message>")
	select {
	case d := <-montague.got:
		t.Errorf("delivered after a spoofed from: %s", d.e.Inner)
	case <-time.After(500 * time.Millisecond):
	}
	out.Close()

	// An impostor for capulet.example with another secret: its key is not
	// the one capulet's authoritative server makes.
	impostor := capulet.cfg
	impostor.Secret = []byte("not-capulets-secret-at-all")
	if _, err := impostor.Dial(ctx, montague.addr, "capulet.example", "montague.example"); err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Fatalf("a key made with another secret: %v, want invalid", err)
	}
	// The authoritative server itself: its own key is valid, another not.
	key := DialbackKey(capulet.cfg.Secret, "montague.example", "capulet.example", "s1")
	for k, want := range map[string]bool{key: true, DialbackKey(impostor.Secret, "montague.example", "capulet.example", "s1"): false} {
		if ok, err := montague.cfg.VerifyKey(ctx, capulet.addr, "montague.example", "capulet.example", "s1", k); err != nil || ok != want {
			t.Errorf("verify %s…: %v %v, want %v", k[:8], ok, err, want)
		}
	}
	// Claiming montague's own domain, or a domain it does not serve.
	if _, err := capulet.cfg.Dial(ctx, montague.addr, "montague.example", "montague.example"); err == nil || !strings.Contains(err.Error(), "unexpected error") {
		t.Errorf("a peer claiming the receiving server's own domain: %v, want a stream error", err)
	}
	if _, err := capulet.cfg.Dial(ctx, montague.addr, "capulet.example", "verona.example"); err == nil || !strings.Contains(err.Error(), "no stream features") {
		t.Errorf("a stream to a domain the server does not serve: %v, want a stream error", err)
	}
}
