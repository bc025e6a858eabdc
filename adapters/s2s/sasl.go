package s2s

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// SASL EXTERNAL between servers (RFC 6120 §6, XEP-0178 §3): after TLS, a
// peer whose certificate names the domain of its stream header's from
// authenticates that domain with <auth mechanism='EXTERNAL'/>, without
// dialback.

const nsSASL = "urn:ietf:params:xml:ns:xmpp-sasl"

// Bounds on SASL from a peer.
const (
	// maxSASLFailures ends the stream with policy-violation at the third
	// failed <auth/> (RFC 6120 §6.4.5: allow at least 2 tries, at most 5).
	maxSASLFailures = 3
	// maxAuthzid64 is the longest authzid taken, in base64: that of a
	// domain of 1023 bytes (RFC 7622 §3.2). Longer is malformed-request,
	// before any decoding.
	maxAuthzid64 = (1023 + 2) / 3 * 4
)

// Method names as Outbound.Auth says them.
const (
	AuthExternal = "EXTERNAL"
	AuthDialback = "dialback"
)

// mechanisms is the feature offering EXTERNAL.
const mechanisms = "<mechanisms xmlns='" + nsSASL + "'><mechanism>EXTERNAL</mechanism></mechanisms>"

func saslFailure(cond string) string {
	return "<failure xmlns='" + nsSASL + "'><" + cond + "/></failure>"
}

// clip cuts what a peer sent to n bytes for a log line.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// errSASLRestart: SASL succeeded, a new stream follows.
var errSASLRestart = errors.New("s2s: SASL done, restart the stream")

// auth handles <auth/> on a secured inbound stream. It returns
// errSASLRestart on success, a stream error past maxSASLFailures, and
// nil after a failure the peer may follow with another try or dialback.
func (s *Server) auth(c *conn, in *inbound, e *stanza.Element) error {
	remote := c.nc.RemoteAddr().String()
	if in.sasl {
		return &streamError{cond: "policy-violation", text: "SASL is done on this stream"}
	}
	fail := func(cond string, err error) error {
		s.cfg.Log.Info("s2s EXTERNAL refused", "remote", remote, "domain", in.from, "condition", cond, "err", err)
		if err := c.send(saslFailure(cond)); err != nil {
			return err
		}
		if in.saslFailures++; in.saslFailures >= maxSASLFailures {
			return &streamError{cond: "policy-violation", text: fmt.Sprintf("%d failed SASL attempts", in.saslFailures)}
		}
		return nil
	}
	if len(in.handed) > 0 {
		// The stream restarts on success, and our pool already sends on
		// it (bidi): a stanza could fall between the two streams.
		return fail("not-authorized", errors.New("SASL after dialback on a bidi stream"))
	}
	if mech := e.Attr("mechanism"); mech != "EXTERNAL" {
		return fail("invalid-mechanism", fmt.Errorf("mechanism %q", clip(mech, 32)))
	}
	if in.certErr != nil {
		return fail("not-authorized", in.certErr)
	}
	data := strings.TrimSpace(e.Text())
	if data == "" {
		// No initial response: an empty challenge asks for it (RFC 6120
		// §6.4.2, RFC 4422 §3.3).
		if err := c.send("<challenge xmlns='" + nsSASL + "'/>"); err != nil {
			return err
		}
		r, err := c.next(time.Now().Add(s.cfg.Timeout))
		switch {
		case err != nil:
			return err
		case r.XMLName.Space == nsSASL && r.XMLName.Local == "abort":
			return fail("aborted", errors.New("the peer aborted"))
		case r.XMLName.Space != nsSASL || r.XMLName.Local != "response":
			return &streamError{cond: "not-authorized", text: "expected a SASL response"}
		}
		data = strings.TrimSpace(r.Text())
	}
	if len(data) > maxAuthzid64 {
		return fail("malformed-request", fmt.Errorf("an authzid of %d bytes of base64", len(data)))
	}
	authzid := in.from // "=" (or nothing): the identity the certificate proved
	if data != "=" && data != "" {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return fail("incorrect-encoding", err)
		}
		authzid = string(b)
	}
	if a, err := jid.Parse(authzid); err != nil || a.Localpart() != "" || a.Resourcepart() != "" || a.Domainpart() != in.from {
		return fail("invalid-authzid", fmt.Errorf("authzid %q is not the stream's domain", clip(authzid, 64)))
	}
	if len(in.verified) >= maxDomainsPerStream && !in.verified[in.from] {
		return &streamError{cond: "policy-violation", text: fmt.Sprintf("at most %d domains per stream", maxDomainsPerStream)}
	}
	if err := c.send("<success xmlns='" + nsSASL + "'/>"); err != nil {
		return err
	}
	in.verified[in.from], in.sasl = true, true
	in.pairs[pair{in.domain, in.from}] = AuthExternal
	s.cfg.Log.Info("s2s peer authenticated", "remote", remote, "domain", in.from, "to", in.domain, "method", AuthExternal)
	c.reset()
	return errSASLRestart
}

// external reports whether the secured stream's peer may authenticate
// the domain of its header's from with EXTERNAL, and keeps why not in
// in.certErr for an <auth/> that comes anyway.
func (s *Server) external(c *conn, in *inbound) bool {
	remote := c.nc.RemoteAddr().String()
	switch {
	case in.from == "":
		in.certErr = errNoFrom
	case slices.Contains(s.cfg.Domains, in.from):
		in.certErr = fmt.Errorf("s2s: the peer claims our own domain %s", in.from)
	case s.cfg.insecure(in.from):
		in.certErr = errInsecure
		s.cfg.Log.Warn("s2s: insecure domain (--s2s-insecure-domain): its certificate is not taken, dialback is needed", "remote", remote, "domain", in.from)
		return false
	default:
		in.certErr = certificateNames(in.chain, s.cfg.Roots, in.from, time.Now())
	}
	switch {
	case in.certErr == nil:
		return true
	case errors.Is(in.certErr, errNoCertificate):
		s.cfg.Log.Debug("s2s: no client certificate; dialback is needed", "remote", remote, "domain", in.from)
	default:
		s.cfg.Log.Info("s2s: the certificate does not authenticate the peer; EXTERNAL not offered, dialback is needed", "remote", remote, "domain", in.from, "err", in.certErr)
	}
	return false
}

// offersExternal reports whether stream features offer SASL EXTERNAL.
func offersExternal(features *stanza.Element) bool {
	m, ok := features.Named(nsSASL, "mechanisms")
	if !ok {
		return false
	}
	for _, ch := range m.Children() {
		if ch.XMLName.Local == "mechanism" && strings.TrimSpace(ch.Text()) == "EXTERNAL" {
			return true
		}
	}
	return false
}

// external authenticates from to the peer with SASL EXTERNAL on a
// secured outbound stream, its authzid our domain (XEP-0178 §3), and
// restarts the stream. ok false with no error: the peer refused, the
// stream goes on (dialback may follow).
func (cfg *Config) external(o *opened, from, to string) (ok bool, err error) {
	c := o.c
	deadline := time.Now().Add(cfg.Timeout)
	if err := c.send("<auth xmlns='" + nsSASL + "' mechanism='EXTERNAL'>" + base64.StdEncoding.EncodeToString([]byte(from)) + "</auth>"); err != nil {
		return false, err
	}
	r, err := c.next(deadline)
	switch {
	case err != nil:
		return false, err
	case r.XMLName.Space == nsSASL && r.XMLName.Local == "failure":
		cond := "?"
		if ch, ok := r.Child(); ok {
			cond = ch.XMLName.Local
		}
		cfg.Log.Info("s2s: the peer refused EXTERNAL; trying dialback", "domain", to, "condition", cond)
		return false, nil
	case r.XMLName.Space != nsSASL || r.XMLName.Local != "success":
		return false, fmt.Errorf("SASL: unexpected %s", r.XMLName.Local)
	}
	c.reset()
	if err := c.header(from, to, ""); err != nil {
		return false, err
	}
	if _, _, o.id, err = c.readHeader(deadline); err != nil {
		return false, err
	}
	if o.features, err = c.next(deadline); err != nil || o.features.XMLName.Local != "features" {
		return false, fmt.Errorf("no stream features after SASL (%v)", err)
	}
	return true, nil
}
