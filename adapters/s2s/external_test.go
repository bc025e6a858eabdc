package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// withCert makes a peer serve (and present as a client) a certificate
// of ca for domain, and verify peers against trust alone, itself
// included (ClientTLS nil: the default from Roots).
func withCert(t *testing.T, ca *testCA, domain string, trust *testCA) func(*Config) {
	cert := ca.issue(t, domain, nil)
	return func(c *Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		c.Roots, c.ClientTLS = trust.pool, nil
	}
}

// expectDelivery sends a message over out and waits for p to deliver it.
func expectDelivery(t *testing.T, out *Outbound, p *peer, from, to string) {
	t.Helper()
	if err := out.Send("<message xmlns='jabber:server' from='" + from + "' to='" + to + "'><body>wherefore</body></message>"); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-p.got:
		if d.from.String() != from || d.to.String() != to || !strings.Contains(string(d.e.Inner), "wherefore") {
			t.Errorf("delivered %v -> %v: %s", d.from, d.to, d.e.Inner)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message never arrived")
	}
}

// nothingDelivered fails if p delivers anything within a moment.
func nothingDelivered(t *testing.T, p *peer) {
	t.Helper()
	select {
	case d := <-p.got:
		t.Errorf("delivered %v -> %v: %s", d.from, d.to, d.e.Inner)
	case <-time.After(200 * time.Millisecond):
	}
}

// saslAnswer sends an <auth/> and returns the local name of what came
// back, and of its first child (a failure's condition).
func saslAnswer(t *testing.T, c *conn, auth string) (string, string) {
	t.Helper()
	if err := c.send(auth); err != nil {
		t.Fatal(err)
	}
	r, err := c.next(time.Now().Add(5 * time.Second))
	if err != nil {
		t.Fatalf("after %s: %v", auth, err)
	}
	cond := ""
	if ch, ok := r.Child(); ok {
		cond = ch.XMLName.Local
	}
	if r.XMLName.Space != nsSASL && r.XMLName.Space != nsStream {
		t.Fatalf("after %s: %s in %s", auth, r.XMLName.Local, r.XMLName.Space)
	}
	return r.XMLName.Local, cond
}

func authEXTERNAL(data string) string {
	return "<auth xmlns='" + nsSASL + "' mechanism='EXTERNAL'>" + data + "</auth>"
}

// Two servers each trusting the other's CA, their certificates naming
// their domains, authenticate with SASL EXTERNAL both ways: no dialback
// key is verified, and messages go through.
func TestExternalBetweenTwoServers(t *testing.T) {
	ca := newCA(t, "Verona CA")
	addrs := map[string]string{}
	at := func(d string) string { return addrs[d] }
	capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", at, withCert(t, ca, "capulet.example", ca))
	montague := startPeer(t, "montague.example", "d14lb4ck43v3r-montague", at, withCert(t, ca, "montague.example", ca))
	addrs["capulet.example"], addrs["montague.example"] = capulet.addr, montague.addr
	ctx := context.Background()

	out, err := capulet.cfg.Dial(ctx, montague.addr, "capulet.example", "montague.example")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if out.Auth != AuthExternal {
		t.Fatalf("capulet -> montague authenticated with %s", out.Auth)
	}
	expectDelivery(t, out, montague, "juliet@capulet.example/balcony", "romeo@montague.example")
	// The stream authenticated capulet.example, and that alone.
	out.Send("<message xmlns='jabber:server' from='tybalt@verona.example' to='romeo@montague.example'><body>spoof</body></message>")
	nothingDelivered(t, montague)

	back, err := montague.cfg.Dial(ctx, capulet.addr, "montague.example", "capulet.example")
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if back.Auth != AuthExternal {
		t.Fatalf("montague -> capulet authenticated with %s", back.Auth)
	}
	expectDelivery(t, back, capulet, "romeo@montague.example/orchard", "juliet@capulet.example")
	if n := capulet.verifies.Load() + montague.verifies.Load(); n != 0 {
		t.Errorf("%d dialback keys verified, want none", n)
	}
	if !strings.Contains(montague.log.String(), "domain=capulet.example to=montague.example method=EXTERNAL") {
		t.Errorf("montague did not log the EXTERNAL authentication:\n%s", montague.log)
	}
}

// A certificate that does not authenticate the peer's domain gets no
// EXTERNAL offer; an <auth/> sent anyway is refused with not-authorized,
// logged with the reason, and the stream does not take the peer's
// stanzas. The peer falls back to dialback on its stream, and its
// stanzas go through once dialback succeeds (our choice: a bad
// certificate is not worse than none, which dialback-only servers have).
// The same over direct TLS (XEP-0368 §3: certificates are validated as
// for STARTTLS).
func TestExternalRefusedFallsBackToDialback(t *testing.T) {
	t.Run("STARTTLS", func(t *testing.T) { testExternalRefused(t, "") })
	t.Run("direct TLS", func(t *testing.T) { testExternalRefused(t, DirectTLS) })
}

func testExternalRefused(t *testing.T, via string) {
	ca, mantua := newCA(t, "Verona CA"), newCA(t, "Mantua CA")
	trustCA := func(c *Config) { c.Roots = ca.pool }
	for _, tc := range []struct {
		name     string
		capulet  func(*Config)
		montague func(*Config)
		why      string // in montague's log
	}{
		{"certificate for another domain", withCert(t, ca, "verona.example", ca), trustCA, "does not name capulet.example"},
		{"untrusted CA", withCert(t, mantua, "capulet.example", mantua), trustCA, "does not verify"},
		{"no client certificate", func(c *Config) {
			c.ClientTLS = func(string) *tls.Config {
				return &tls.Config{InsecureSkipVerify: true, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
					return &tls.Certificate{}, nil
				}}
			}
		}, trustCA, "no client certificate"},
		{"insecure domain", withCert(t, ca, "capulet.example", ca), func(c *Config) {
			c.Roots, c.Insecure = ca.pool, func(d string) bool { return d == "capulet.example" }
		}, "insecure domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addrs := map[string]string{}
			at := func(d string) string { return addrs[d] }
			capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", at, tc.capulet,
				func(c *Config) { // montague's certificate is self-signed
					c.ClientTLS = cmpOr(c.ClientTLS, func(string) *tls.Config { return &tls.Config{InsecureSkipVerify: true} })
				})
			montague := startPeer(t, "montague.example", "d14lb4ck43v3r-montague", at, tc.montague)
			addrs["capulet.example"], addrs["montague.example"] = via+capulet.addr, via+montague.addr
			ctx := context.Background()

			o, err := capulet.cfg.open(ctx, via+montague.addr, "capulet.example", "montague.example")
			if err != nil {
				t.Fatal(err)
			}
			defer o.c.nc.Close()
			if offersExternal(o.features) {
				t.Error("EXTERNAL offered")
			}
			if got, cond := saslAnswer(t, o.c, authEXTERNAL("=")); got != "failure" || cond != "not-authorized" {
				t.Errorf("<auth/> anyway: %s %s", got, cond)
			}
			o.c.send("<message xmlns='jabber:server' from='juliet@capulet.example' to='romeo@montague.example'><body>before dialback</body></message>")
			if got := streamErrorOf(t, o.c); !strings.Contains(got, "invalid-from") {
				t.Errorf("a stanza after the refusal: %s", got)
			}
			nothingDelivered(t, montague)
			log := montague.log.String()
			if !strings.Contains(log, "s2s EXTERNAL refused") || !strings.Contains(log, "condition=not-authorized") || !strings.Contains(log, tc.why) {
				t.Errorf("montague's log does not say why:\n%s", log)
			}

			out, err := capulet.cfg.Dial(ctx, via+montague.addr, "capulet.example", "montague.example")
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			if via != "" && !strings.Contains(montague.log.String(), "s2s direct TLS") {
				t.Errorf("not over direct TLS:\n%s", montague.log)
			}
			if out.Auth != AuthDialback || montague.verifies.Load() != 1 {
				t.Errorf("authenticated with %s after %d verifications, want dialback after 1", out.Auth, montague.verifies.Load())
			}
			expectDelivery(t, out, montague, "juliet@capulet.example/balcony", "romeo@montague.example")
		})
	}
}

func cmpOr[T any](f, g func(string) T) func(string) T {
	if f != nil {
		return f
	}
	return g
}

// A sending server takes EXTERNAL only from a peer whose certificate it
// verified: an insecure domain's server offers EXTERNAL (it trusts our
// certificate), yet we authenticate with dialback, and say why.
func TestExternalNotUsedWithUnverifiedPeer(t *testing.T) {
	ca, mantua := newCA(t, "Verona CA"), newCA(t, "Mantua CA")
	addrs := map[string]string{}
	at := func(d string) string { return addrs[d] }
	capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", at, withCert(t, ca, "capulet.example", ca),
		func(c *Config) { c.Insecure = func(d string) bool { return d == "montague.example" } })
	montague := startPeer(t, "montague.example", "d14lb4ck43v3r-montague", at, withCert(t, mantua, "montague.example", ca))
	addrs["capulet.example"], addrs["montague.example"] = capulet.addr, montague.addr

	o, err := capulet.cfg.open(context.Background(), montague.addr, "capulet.example", "montague.example")
	if err != nil {
		t.Fatal(err)
	}
	o.c.nc.Close()
	if !offersExternal(o.features) || o.verified {
		t.Fatalf("montague offers EXTERNAL: %v, its certificate verified: %v; want true, false", offersExternal(o.features), o.verified)
	}
	out, err := capulet.cfg.Dial(context.Background(), montague.addr, "capulet.example", "montague.example")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if out.Auth != AuthDialback {
		t.Errorf("authenticated with %s, want dialback", out.Auth)
	}
	expectDelivery(t, out, montague, "juliet@capulet.example/balcony", "romeo@montague.example")
	log := capulet.log.String()
	if !strings.Contains(log, "not verifying the certificate of an insecure domain") || !strings.Contains(log, "not using EXTERNAL") {
		t.Errorf("capulet's log does not say so:\n%s", log)
	}
	// Without the insecure domain, montague's certificate fails TLS.
	strict := capulet.cfg
	strict.Insecure = nil
	if _, err := strict.Dial(context.Background(), montague.addr, "capulet.example", "montague.example"); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("an untrusted server certificate: %v, want a TLS error", err)
	}
}

// The authzid must be the stream's domain: another is invalid-authzid
// and the peer may try again; an empty one (after the empty challenge)
// is the stream's domain. After success the stream restarts without
// mechanisms, takes the peer's stanzas, and a second <auth/> ends it.
func TestExternalAuthzid(t *testing.T) {
	ca := newCA(t, "Verona CA")
	nowhere := func(string) string { return "" }
	capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", nowhere, withCert(t, ca, "capulet.example", ca),
		func(c *Config) {
			c.ClientTLS = func(string) *tls.Config { return &tls.Config{InsecureSkipVerify: true} }
		})
	montague := startPeer(t, "montague.example", "d14lb4ck43v3r-montague", nowhere, func(c *Config) { c.Roots = ca.pool })

	o, err := capulet.cfg.open(context.Background(), montague.addr, "capulet.example", "montague.example")
	if err != nil {
		t.Fatal(err)
	}
	c := o.c
	defer c.nc.Close()
	if !offersExternal(o.features) {
		t.Fatal("EXTERNAL not offered")
	}
	for _, authzid := range []string{"verona.example", "juliet@capulet.example"} {
		if got, cond := saslAnswer(t, c, authEXTERNAL(base64.StdEncoding.EncodeToString([]byte(authzid)))); got != "failure" || cond != "invalid-authzid" {
			t.Errorf("authzid %s: %s %s", authzid, got, cond)
		}
	}
	if !strings.Contains(montague.log.String(), "condition=invalid-authzid") {
		t.Errorf("not logged:\n%s", montague.log)
	}
	if got, _ := saslAnswer(t, c, authEXTERNAL("")); got != "challenge" {
		t.Fatalf("no initial response: %s, want an empty challenge", got)
	}
	if got, _ := saslAnswer(t, c, "<response xmlns='"+nsSASL+"'>=</response>"); got != "success" {
		t.Fatalf("the empty authzid: %s", got)
	}
	c.reset()
	c.header("capulet.example", "montague.example", "")
	if _, _, _, err := c.readHeader(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	f, err := c.next(time.Now().Add(5 * time.Second))
	if err != nil || f.XMLName.Local != "features" || offersExternal(f) {
		t.Fatalf("features after SASL: %v %v", f, err)
	}
	c.send("<message xmlns='jabber:server' from='juliet@capulet.example' to='romeo@montague.example'><body>wherefore</body></message>")
	select {
	case d := <-montague.got:
		if !strings.Contains(string(d.e.Inner), "wherefore") {
			t.Errorf("delivered %s", d.e.Inner)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing delivered after SASL")
	}
	c.send(authEXTERNAL("="))
	if got := streamErrorOf(t, c); !strings.Contains(got, "policy-violation") {
		t.Errorf("a second <auth/>: %s", got)
	}
	if montague.verifies.Load() != 0 {
		t.Error("a dialback key was verified")
	}
}

// Hostile SASL: <auth/> before STARTTLS, an unknown mechanism, an
// authzid too long or not base64, and too many failures are each
// refused with their condition, within bounds; none lets a stanza in.
func TestHostileSASL(t *testing.T) {
	ca := newCA(t, "Verona CA")
	log := &logBuffer{}
	delivered := make(chan string, 4)
	target, addr, _ := hostileTarget(t, func(c *Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "montague.example", nil)}, MinVersion: tls.VersionTLS12}
		c.Roots = ca.pool
		c.Log = slog.New(slog.NewTextHandler(log, nil))
		c.Deliver = func(_, _ jid.JID, e *stanza.Element) { delivered <- string(e.Inner) }
	})
	client := target
	client.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "capulet.example", nil)}}
	secured := func(t *testing.T) *conn {
		t.Helper()
		o, err := client.open(context.Background(), addr, "capulet.example", "montague.example")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.c.nc.Close() })
		if !offersExternal(o.features) {
			t.Fatal("EXTERNAL not offered")
		}
		return o.c
	}

	t.Run("before STARTTLS", func(t *testing.T) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		c := newConn(nc, 1<<20)
		c.header("capulet.example", "montague.example", "")
		if _, _, _, err := c.readHeader(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if f, err := c.next(time.Now().Add(5 * time.Second)); err != nil || offersExternal(f) {
			t.Fatalf("features before TLS: %v %v", f, err)
		}
		if got, cond := saslAnswer(t, c, authEXTERNAL("=")); got != "failure" || cond != "encryption-required" {
			t.Errorf("%s %s", got, cond)
		}
		if got := streamErrorOf(t, c); !strings.Contains(got, "policy-violation") {
			t.Errorf("stream error %s", got)
		}
	})
	for _, tc := range []struct{ name, auth, cond string }{
		{"unknown mechanism", "<auth xmlns='" + nsSASL + "' mechanism='X-ROMEO'>=</auth>", "invalid-mechanism"},
		{"no mechanism", "<auth xmlns='" + nsSASL + "'>=</auth>", "invalid-mechanism"},
		{"huge authzid", authEXTERNAL(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("capulet.", 16<<10)))), "malformed-request"},
		{"authzid just too long", authEXTERNAL(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("c", 1022) + ".x"))), "malformed-request"},
		{"not base64", authEXTERNAL("!!capulet!!"), "incorrect-encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := secured(t)
			if got, cond := saslAnswer(t, c, tc.auth); got != "failure" || cond != tc.cond {
				t.Errorf("%s %s, want failure %s", got, cond, tc.cond)
			}
			if !strings.Contains(log.String(), "condition="+tc.cond) {
				t.Errorf("not logged:\n%s", log)
			}
			c.send("<message xmlns='jabber:server' from='juliet@capulet.example' to='romeo@montague.example'><body>hi</body></message>")
			if got := streamErrorOf(t, c); !strings.Contains(got, "invalid-from") {
				t.Errorf("a stanza after the failure: %s", got)
			}
		})
	}
	t.Run("too many failures", func(t *testing.T) {
		c := secured(t)
		for i := range maxSASLFailures - 1 {
			if got, cond := saslAnswer(t, c, authEXTERNAL("!")); got != "failure" || cond != "incorrect-encoding" {
				t.Fatalf("failure %d: %s %s", i+1, got, cond)
			}
		}
		c.send(authEXTERNAL("!"))
		if got := streamErrorOf(t, c); !strings.Contains(got, "policy-violation") {
			t.Errorf("failure %d: %s", maxSASLFailures, got)
		}
	})
	t.Run("past MaxStanza", func(t *testing.T) {
		c := secured(t)
		c.send(authEXTERNAL(strings.Repeat("QUFB", 100<<10)))
		if got := streamErrorOf(t, c); !strings.Contains(got, "policy-violation") {
			t.Errorf("an <auth/> of 400 KiB: %s", got)
		}
	})
	select {
	case d := <-delivered:
		t.Errorf("delivered %q", d)
	default:
	}
}
