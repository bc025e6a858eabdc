package e2e

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/s2s"
	"annals.im/annals/adapters/stanza"
)

// attacker is a server of another domain that federates with the real
// Annals to attack it: its authoritative side (which answers Annals'
// dialback checks) listens on 127.0.0.3, and it dials Annals as any peer
// would. It is built from this project's own s2s package: an attack
// test, not interop.
type attacker struct {
	domain string
	cfg    s2s.Config
	addr   string
	log    *lockedBuffer
}

// startAttacker serves domain on 127.0.0.3 with a certificate from ca for
// certNames (the domain itself, or another to lie about it).
func startAttacker(t *testing.T, ca *testCA, domain string, certNames ...string) *attacker {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, certNames...)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	a := &attacker{domain: domain, log: &lockedBuffer{}}
	a.cfg = s2s.Config{
		Domains:  []string{domain},
		Secret:   []byte("the attacker's own dialback secret: " + domain),
		TLS:      &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Insecure: func(string) bool { return true }, // it checks nobody's certificate
		Verify:   func(context.Context, string, string, string, string) (bool, error) { return false, nil },
		// Set, so that its streams ask for bidi and read what Annals
		// answers (stream errors included), into the log.
		Deliver: func(jid.JID, jid.JID, *stanza.Element) {},
		Timeout: 10 * time.Second,
		Log:     slog.New(slog.NewTextHandler(a.log, nil)),
	}
	srv, err := s2s.NewServer(a.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.3:0")
	if err != nil {
		t.Skipf("no loopback address 127.0.0.3: %v", err)
	}
	a.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// dial opens an authenticated stream to Annals at addr, as the attacker's
// domain, with secret (nil: its own) as the dialback secret.
func (a *attacker) dial(t *testing.T, addr, to string, secret []byte) (*s2s.Outbound, error) {
	t.Helper()
	cfg := a.cfg
	if secret != nil {
		cfg.Secret = secret
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return cfg.Dial(ctx, addr, a.domain, to)
}

// endedWith waits for Annals to end o and returns what the attacker's
// log says it ended with.
func (a *attacker) endedWith(t *testing.T, o *s2s.Outbound) string {
	t.Helper()
	select {
	case <-o.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("Annals did not end the attacker's stream")
	}
	time.Sleep(50 * time.Millisecond) // the reader logs as it returns
	return grepLines(a.log.String(), "stream ended")
}

// Other servers attack the real annals serve: a spoofed from domain, a
// wrong dialback key, a certificate for another domain, an oversized
// stanza and a flood. Each is refused with its error; afterwards another
// Annals and the local users chat as if nothing happened, and nothing of
// the attacks reached an archive.
func TestHostileS2SPeers(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, t.TempDir(), "Attackers' CA")
	evil := startAttacker(t, ca, "evil.test", "evil.test")
	liar := startAttacker(t, ca, "liar.test", "other.test") // its certificate names another domain
	a, b := startFederated(t, func(self, peer *fedServer) []string {
		flags := dialback(self, peer)
		if self.domain == "capulet.test" {
			flags = append(flags, "--s2s-ca", ca.file, "--s2s-route", "evil.test="+evil.addr, "--s2s-route", "liar.test="+liar.addr,
				"--s2s-max-stanza", "8192", "--s2s-max-stanza-rate", "20", "--s2s-stanza-burst", "50")
		}
		return flags
	})
	target := a.s2s()

	t.Run("spoofed from", func(t *testing.T) {
		o, err := evil.dial(t, target, a.domain, nil)
		if err != nil {
			t.Fatalf("the attacker could not authenticate its own domain: %v", err)
		}
		o.Send("<message xmlns='jabber:server' from='romeo@" + b.domain + "/x' to='juliet@" + a.domain + "' type='chat'><body>spoofed</body></message>")
		if got := evil.endedWith(t, o); !strings.Contains(got, "invalid-from") {
			t.Errorf("a stanza from a domain the stream did not authenticate: %s; want invalid-from", got)
		}
	})
	t.Run("wrong dialback key", func(t *testing.T) {
		_, err := evil.dial(t, target, a.domain, []byte("a secret evil.test's authoritative server does not have"))
		if err == nil || !strings.Contains(err.Error(), "invalid") {
			t.Errorf("a key its authoritative server did not make: %v; want the key found invalid", err)
		}
	})
	t.Run("certificate for another domain", func(t *testing.T) {
		o, err := liar.dial(t, target, a.domain, nil)
		if err == nil {
			o.Close()
			t.Fatalf("a server whose certificate names another domain authenticated (%s)", o.Auth)
		}
		if logs := a.logs.String(); !strings.Contains(logs, "liar.test") || !strings.Contains(logs, "certificate") {
			t.Errorf("nothing in Annals' log says why liar.test was refused:\n%s", grepLines(logs, "liar.test"))
		}
	})
	t.Run("oversized stanza", func(t *testing.T) {
		o, err := evil.dial(t, target, a.domain, nil)
		if err != nil {
			t.Fatal(err)
		}
		o.Send("<message xmlns='jabber:server' from='tybalt@evil.test/x' to='juliet@" + a.domain + "' type='chat'><body>" + strings.Repeat("x", 16<<10) + "</body></message>")
		if got := evil.endedWith(t, o); !strings.Contains(got, "policy-violation") {
			t.Errorf("a stanza over --s2s-max-stanza: %s; want policy-violation", got)
		}
	})
	t.Run("flood", func(t *testing.T) {
		o, err := evil.dial(t, target, a.domain, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 500 {
			if o.Send("<presence xmlns='jabber:server' from='tybalt@evil.test/x' to='juliet@"+a.domain+"' id='f"+strconv.Itoa(i)+"'/>") != nil {
				break
			}
		}
		if got := evil.endedWith(t, o); !strings.Contains(got, "policy-violation") {
			t.Errorf("a flood past --s2s-max-stanza-rate: %s; want policy-violation", got)
		}
	})
	// Another server and the local users are served as before; juliet's
	// archive holds the two messages of this chat and no spoofed one.
	rs := fedDriver(t, "chat", a, b, "juliet", "romeo")
	checkFederatedChat(t, rs, "juliet@"+a.domain, "romeo@"+b.domain)
	if t.Failed() {
		t.Logf("attackers' logs:\n%s\n%s", evil.log, liar.log)
	}
}
