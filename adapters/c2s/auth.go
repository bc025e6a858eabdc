package c2s

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"net"
	"strings"

	"annals.im/annals/adapters/credentials"
	"annals.im/annals/adapters/sasl"
)

// authenticate runs one SASL exchange (RFC 6120 §6.4). ok reports success.
func (c *conn) authenticate(ctx context.Context, auth *element) (ok bool, err error) {
	fail := func(cond string) (bool, error) {
		return false, c.write("<failure xmlns='" + nsSASL + "'><" + cond + "/></failure>")
	}
	if !c.secure && !c.srv.cfg.Plaintext {
		return fail("encryption-required")
	}
	lookup := func(ctx context.Context, user string) (credentials.Credentials, error) {
		return c.srv.cfg.Credentials(ctx, user+"@"+c.domain)
	}
	// Failures count per address, except from loopback: there every
	// client is the same address (tests, a TLS proxy on the host), and one
	// user's typos would lock out everyone. The per-account limit holds.
	ip := "ip:" + remoteHost(c.nc)
	if h := net.ParseIP(remoteHost(c.nc)); h != nil && h.IsLoopback() {
		ip = ""
	}
	if ip != "" && c.srv.throttle.blocked(ip, c.srv.cfg.FailuresPerIP) {
		c.log.Warn("login refused: too many failures from this address")
		return fail("temporary-auth-failure")
	}
	x, err := sasl.Start(auth.attr("mechanism"), lookup, c.srv.cfg.FakeSaltKey)
	if err != nil {
		return fail("invalid-mechanism")
	}
	account := func() string { return "account:" + x.User() + "@" + c.domain }
	in := strings.TrimSpace(string(auth.Inner))
	for {
		data, err := decode64(in)
		if err != nil {
			return fail("incorrect-encoding")
		}
		reply, done, err := x.Next(ctx, data)
		switch {
		case errors.Is(err, sasl.ErrNotAuthorized):
			c.log.Info("login failed", "user", x.User()+"@"+c.domain, "mechanism", auth.attr("mechanism"))
			if ip != "" {
				c.srv.throttle.fail(ip)
			}
			c.srv.throttle.fail(account())
			return fail("not-authorized")
		case errors.Is(err, sasl.ErrInvalidAuthzid):
			return fail("invalid-authzid")
		case errors.Is(err, sasl.ErrMalformedRequest):
			return fail("malformed-request")
		case err != nil:
			c.log.Error("login failed: credentials store", "err", err)
			return fail("temporary-auth-failure")
		case done && c.srv.throttle.blocked(account(), c.srv.cfg.FailuresPerAccount):
			// Even the right password waits: otherwise guessing never stops.
			c.log.Warn("login refused: too many failures for this account", "account", x.User()+"@"+c.domain)
			return fail("temporary-auth-failure")
		case done:
			c.user = x.User()
			c.log.Info("logged in", "account", c.user+"@"+c.domain, "mechanism", auth.attr("mechanism"))
			if err := c.write("<success xmlns='" + nsSASL + "'>" + encode64(reply) + "</success>"); err != nil {
				return false, err
			}
			c.restart()
			return true, nil
		}
		if err := c.write("<challenge xmlns='" + nsSASL + "'>" + encode64(reply) + "</challenge>"); err != nil {
			return false, err
		}
		resp, err := c.next()
		if err != nil {
			return false, err
		}
		switch resp.XMLName {
		case xml.Name{Space: nsSASL, Local: "response"}:
			in = strings.TrimSpace(string(resp.Inner))
		case xml.Name{Space: nsSASL, Local: "abort"}:
			return fail("aborted")
		default:
			return false, &streamError{cond: "not-authorized", text: "expected a SASL response"}
		}
	}
}

// decode64 reads SASL data: "=" is an empty message (RFC 6120 §6.4.2).
func decode64(s string) ([]byte, error) {
	if s == "=" || s == "" {
		return nil, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

func encode64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}
