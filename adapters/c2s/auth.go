package c2s

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/credentials"
	"annals.im/annals/adapters/sasl"
	"annals.im/annals/domain/account"
)

// errThrottled refuses an attempt from a source that queued more attempts
// than the throttle holds; the password is not checked, so the answer is
// the same for a right and a wrong one.
var errThrottled = fmt.Errorf("c2s: too many failed logins from this address: %w", sasl.ErrNotAuthorized)

// accountJID returns the account user@domain in the one normalised form
// (account.ParseJID: PRECIS, as bind produces it) used for credentials,
// throttling and the session, or an error if user is no local part.
func (c *conn) accountJID(user string) (jid.JID, error) {
	if len(user) > sasl.MaxUsername || strings.ContainsAny(user, "@/") {
		return jid.JID{}, fmt.Errorf("%w: %q is no local part", account.ErrJID, clip(user, 64))
	}
	return account.ParseJID(user + "@" + c.domain)
}

// authenticate runs one SASL exchange (RFC 6120 §6.4). ok reports success.
func (c *conn) authenticate(ctx context.Context, auth *element) (ok bool, err error) {
	failAs := func(reason, cond string) (bool, error) {
		c.srv.cfg.Metrics.LoginFailed(c.transport, reason)
		return false, c.write("<failure xmlns='" + nsSASL + "'><" + cond + "/></failure>")
	}
	fail := func(cond string) (bool, error) { return failAs(cond, cond) }
	if !c.secure && !c.srv.cfg.Plaintext {
		return fail("encryption-required")
	}
	th := c.srv.throttle
	// Loopback is throttled like any address: a TLS proxy on the host would
	// otherwise lift the limit for everyone. Operators name such proxies
	// with Config.TrustedProxies.
	tk := ticket{addr: th.addressKey(c.nc.RemoteAddr())}
	var named jid.JID // the account named, normalised, once looked up
	lookup := func(ctx context.Context, user string) (credentials.Credentials, error) {
		j, err := c.accountJID(user)
		if err == nil {
			named = j
			tk.acct = th.accountKey(j.String())
		}
		wait, ok := th.admit(tk)
		if !ok {
			return credentials.Credentials{}, errThrottled
		}
		if wait > 0 {
			// Only this stream waits: no lock is held, and the
			// connection is one of those the server caps.
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return credentials.Credentials{}, ctx.Err()
			}
		}
		if err != nil {
			return credentials.Credentials{}, fmt.Errorf("%w: %w", credentials.ErrNotFound, err)
		}
		return c.srv.cfg.Credentials(ctx, j.String())
	}
	mech := auth.Attr("mechanism")
	x, err := sasl.Start(mech, lookup, c.srv.cfg.Secret)
	if err != nil {
		return fail("invalid-mechanism")
	}
	in := strings.TrimSpace(string(auth.Inner))
	for {
		data, err := decode64(in)
		if err != nil {
			return fail("incorrect-encoding")
		}
		reply, done, err := x.Next(ctx, data)
		switch {
		case errors.Is(err, errThrottled):
			c.log.Info("login refused: too many failures from this address", "user", clip(x.User(), 256), "mechanism", clip(mech, 32))
			return failAs("throttled", "not-authorized")
		case errors.Is(err, sasl.ErrNotAuthorized):
			c.log.Info("login failed", "user", clip(x.User(), 256), "mechanism", clip(mech, 32))
			th.fail(tk)
			return fail("not-authorized")
		case errors.Is(err, sasl.ErrInvalidAuthzid):
			return fail("invalid-authzid")
		case errors.Is(err, sasl.ErrMalformedRequest):
			return fail("malformed-request")
		case err != nil:
			c.log.Error("login failed: credentials store", "err", err)
			return fail("temporary-auth-failure")
		case done:
			th.succeed(tk)
			c.user = named.Localpart()
			c.srv.cfg.Metrics.LoggedIn(c.transport)
			c.log.Info("logged in", "account", named.String(), "mechanism", mech)
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
