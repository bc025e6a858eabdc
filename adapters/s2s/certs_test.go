package s2s

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a certificate authority a test makes and trusts, or not.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool // trusting it alone
}

var serials atomic.Int64

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serials.Add(1)), Subject: pkix.Name{CommonName: name},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue signs a certificate naming domain (a DNS-ID), for serverAuth and
// clientAuth, valid for an hour around now; edit changes it first.
func (ca *testCA) issue(t *testing.T, domain string, edit func(*x509.Certificate)) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serials.Add(1)), Subject: pkix.Name{CommonName: domain}, DNSNames: []string{domain},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// intermediate is a CA that ca signed.
func (ca *testCA) intermediate(t *testing.T, name string) *testCA {
	t.Helper()
	c := ca.issue(t, name, func(c *x509.Certificate) {
		c.DNSNames, c.IsCA, c.BasicConstraintsValid, c.KeyUsage = nil, true, true, x509.KeyUsageCertSign
	})
	cert, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: c.PrivateKey.(*ecdsa.PrivateKey)}
}

func chainOf(t *testing.T, certs ...tls.Certificate) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, c := range certs {
		for _, der := range c.Certificate {
			x, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, x)
		}
	}
	return out
}

// A certificate authenticates a domain only if its chain verifies
// against our roots, for serverAuth or clientAuth, and a DNS-ID names
// the domain.
func TestCertificateNames(t *testing.T) {
	ca, other := newCA(t, "Verona CA"), newCA(t, "Mantua CA")
	inter := ca.intermediate(t, "Verona Intermediate")
	interCert := tls.Certificate{Certificate: [][]byte{inter.cert.Raw}}
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
		want  string // in the error; "" for none
	}{
		{"right domain", chainOf(t, ca.issue(t, "capulet.example", nil)), ""},
		{"serverAuth only", chainOf(t, ca.issue(t, "capulet.example", func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		})), ""},
		{"wildcard", chainOf(t, ca.issue(t, "*.example", nil)), ""},
		{"through an intermediate", chainOf(t, inter.issue(t, "capulet.example", nil), interCert), ""},
		{"intermediate not sent", chainOf(t, inter.issue(t, "capulet.example", nil)), "does not verify"},
		{"another domain", chainOf(t, ca.issue(t, "verona.example", nil)), "does not name capulet.example"},
		{"name in CN only", chainOf(t, ca.issue(t, "capulet.example", func(c *x509.Certificate) { c.DNSNames = nil })), "does not name"},
		{"untrusted CA", chainOf(t, other.issue(t, "capulet.example", nil)), "does not verify"},
		{"expired", chainOf(t, ca.issue(t, "capulet.example", func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
		})), "does not verify"},
		{"code signing only", chainOf(t, ca.issue(t, "capulet.example", func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
		})), "does not verify"},
		{"none", nil, "no certificate"},
	} {
		err := certificateNames(tc.chain, ca.pool, "capulet.example", time.Now())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// An outbound stream presents, as its client certificate, the one TLS
// serves the sending domain with.
func TestClientCertificateForDomain(t *testing.T) {
	ca := newCA(t, "Verona CA")
	c1, c2 := ca.issue(t, "capulet.example", nil), ca.issue(t, "rooms.capulet.example", nil)
	cfg := Config{TLS: &tls.Config{Certificates: []tls.Certificate{c1, c2}}}
	for domain, want := range map[string]*tls.Certificate{"capulet.example": &c1, "rooms.capulet.example": &c2, "other.example": &c1} {
		got, err := cfg.clientTLS(domain, "montague.example").GetClientCertificate(nil)
		if err != nil || string(got.Certificate[0]) != string(want.Certificate[0]) {
			t.Errorf("from %s: the wrong certificate (%v)", domain, err)
		}
	}
}
