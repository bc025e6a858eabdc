package s2s

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Certificates between servers (RFC 6120 §13.7.1.2, RFC 6125): a peer's
// certificate authenticates a domain when its chain verifies against our
// roots and it names the domain. Both roles present the certificate they
// serve the domain with: as a server certificate on an inbound stream,
// and as a client certificate on an outbound one, which the peer checks
// for SASL EXTERNAL (XEP-0178 §3).

var (
	errNoCertificate = errors.New("s2s: the peer presented no certificate")
	errInsecure      = errors.New("s2s: the domain is insecure (--s2s-insecure-domain): its certificates never authenticate it")
	errNoFrom        = errors.New("s2s: the stream header names no domain to authenticate")
)

// certificateNames checks that chain (the peer's certificate first, then
// the intermediates it sent) verifies against roots (nil: the system's)
// at now and names domain.
//
// NOTSPEC(RFC 6125 §6, XEP-0178 §3): only the DNS-ID (a subjectAltName
// dNSName, wildcards as crypto/x509 matches them) is checked; an SRV-ID
// or XmppAddr alone does not authenticate a domain. Public CAs issue
// DNS-IDs, and XEP-0178 accepts them.
func certificateNames(chain []*x509.Certificate, roots *x509.CertPool, domain string, now time.Time) error {
	if len(chain) == 0 {
		return errNoCertificate
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	// A server presents its server certificate as a client certificate:
	// serverAuth is accepted besides clientAuth, since public CAs are
	// dropping clientAuth from server certificates.
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("s2s: the certificate does not verify: %w", err)
	}
	if err := chain[0].VerifyHostname(domain); err != nil {
		return fmt.Errorf("s2s: the certificate does not name %s: %w", domain, err)
	}
	return nil
}

// insecure reports whether domain is one whose certificates are not
// checked.
func (cfg *Config) insecure(domain string) bool {
	return cfg.Insecure != nil && cfg.Insecure(domain)
}

// serverTLS is the TLS configuration of inbound streams: cfg.TLS, asking
// for a client certificate without requiring or verifying it during the
// handshake, so that a peer without one, or with one we do not trust,
// still connects and authenticates with dialback.
func (cfg *Config) serverTLS() *tls.Config {
	t := cfg.TLS.Clone()
	if t.ClientAuth == tls.NoClientCert {
		t.ClientAuth = tls.RequestClientCert
	}
	return t
}

// clientTLS is the TLS configuration of an outbound stream from our
// domain from to the peer's domain to: ClientTLS(to), or by default the
// peer verified against Roots; ServerName is to, and the client
// certificate is the one we serve from with, unless ClientTLS chose one.
func (cfg *Config) clientTLS(from, to string) *tls.Config {
	var t *tls.Config
	switch {
	case cfg.ClientTLS != nil:
		t = cfg.ClientTLS(to).Clone()
	case cfg.insecure(to):
		cfg.Log.Warn("s2s: not verifying the certificate of an insecure domain (--s2s-insecure-domain)", "domain", to)
		t = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	default:
		t = &tls.Config{RootCAs: cfg.Roots, MinVersion: tls.VersionTLS12}
	}
	t.ServerName = to
	if len(t.Certificates) == 0 && t.GetClientCertificate == nil && cfg.TLS != nil {
		t.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cfg.certificateFor(from), nil
		}
	}
	return t
}

// certificateFor returns the certificate cfg.TLS serves domain with, for
// an outbound stream's client certificate: GetCertificate's for that
// server name, else the first of Certificates that names domain, else
// the first. An empty one (none is sent) if there is none.
func (cfg *Config) certificateFor(domain string) *tls.Certificate {
	if cfg.TLS.GetCertificate != nil {
		if c, err := cfg.TLS.GetCertificate(&tls.ClientHelloInfo{ServerName: domain}); err == nil && c != nil {
			return c
		}
	}
	for i := range cfg.TLS.Certificates {
		c := &cfg.TLS.Certificates[i]
		leaf := c.Leaf
		if leaf == nil && len(c.Certificate) > 0 {
			leaf, _ = x509.ParseCertificate(c.Certificate[0])
		}
		if leaf != nil && leaf.VerifyHostname(domain) == nil {
			return c
		}
	}
	if len(cfg.TLS.Certificates) > 0 {
		return &cfg.TLS.Certificates[0]
	}
	return &tls.Certificate{}
}
