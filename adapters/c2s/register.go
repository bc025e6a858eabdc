package c2s

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/connlimit"
	"annals.im/annals/adapters/credentials"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/account"
)

const (
	nsRegister        = "jabber:iq:register"
	nsRegisterFeature = "http://jabber.org/features/iq-register"
)

// Registrar creates, changes and removes accounts for in-band
// registration (XEP-0077).
type Registrar interface {
	Register(ctx context.Context, bareJID, password string) error
	// SetPassword changes the password; session is the id of the session
	// that asked, whose stream goes on when the account's others end.
	SetPassword(ctx context.Context, bareJID, password, session string) error
	Remove(ctx context.Context, bareJID string) error
}

// fields reads the simple registration fields of a query.
func fields(q element) (username, password string, remove bool) {
	for _, f := range q.Children() {
		switch f.XMLName.Local {
		case "username":
			username = strings.TrimSpace(f.Text())
		case "password":
			password = f.Text()
		case "remove":
			remove = true
		}
	}
	return
}

// register answers jabber:iq:register: before authentication it creates
// accounts; after, it changes the password or removes the account.
// removed reports that the stream must end.
func (c *conn) register(ctx context.Context, e *element, q element) (removed bool, err error) {
	reg := c.srv.cfg.Registrar
	if !c.srv.cfg.Registration || reg == nil {
		return false, c.write(c.errorReply(e, "cancel", "service-unavailable"))
	}
	if !c.secure && !c.srv.cfg.Plaintext {
		return false, c.write(c.errorReply(e, "modify", "not-acceptable"))
	}
	result := fmt.Sprintf(`<iq type='result' id='%s'%s/>`, stanza.Escape(e.Attr("id")), stanza.ToFrom(c.jid.String(), ""))
	if e.Attr("type") == "get" {
		registered := ""
		if c.user != "" {
			registered = "<registered/><username>" + stanza.Escape(c.user) + "</username>"
		}
		return false, c.write(fmt.Sprintf(`<iq type='result' id='%s'%s><query xmlns='%s'><instructions>Choose a username and password.</instructions>%s<username/><password/></query></iq>`,
			stanza.Escape(e.Attr("id")), stanza.ToFrom(c.jid.String(), ""), nsRegister, registered))
	}
	user, password, remove := fields(q)
	// The name is normalised as bind and SASL normalise it: registering
	// "ｙａｎ" makes yan@domain, with credentials under that one name.
	var named jid.JID
	if user != "" {
		j, err := c.accountJID(user)
		if err != nil {
			return false, c.write(c.errorReply(e, "modify", "not-acceptable"))
		}
		named = j
	}
	var opErr error
	switch {
	case remove && c.user != "":
		if opErr = reg.Remove(ctx, c.user+"@"+c.domain); opErr == nil {
			c.log.Info("account removed in-band", "account", c.user+"@"+c.domain)
			c.write(result)
			return true, nil
		}
	case remove:
		return false, c.write(c.errorReply(e, "auth", "registration-required"))
	case user == "" || password == "":
		return false, c.write(c.errorReply(e, "modify", "bad-request"))
	case c.user != "" && named.Localpart() != c.user:
		return false, c.write(c.errorReply(e, "modify", "bad-request"))
	case c.user != "":
		opErr = reg.SetPassword(ctx, c.user+"@"+c.domain, password, c.sid)
	case !c.srv.regs.allow(connlimit.Key(c.nc.RemoteAddr()), time.Now()):
		// NOTSPEC(XEP-0077 §3.1): the XEP's MAY for too many registrations
		// is not-acceptable, which also means "a field is missing or wrong"
		// (type modify), so a client would blame its form. The refusal is
		// resource-constraint of type wait, as ejabberd and MongooseIM
		// answer ("Users are not allowed to register accounts so quickly");
		// Prosody answers policy-violation, also of type wait.
		c.log.Info("in-band registration refused: address over its limit", "limit", c.srv.cfg.RegistrationsPerAddress, "window", c.srv.cfg.RegistrationWindow)
		return false, c.write(c.errorReplyText(e, "wait", "resource-constraint",
			fmt.Sprintf("too many accounts registered from your address: at most %d per %v", c.srv.cfg.RegistrationsPerAddress, c.srv.cfg.RegistrationWindow)))
	default:
		opErr = reg.Register(ctx, named.String(), password)
		if opErr == nil {
			c.log.Info("account registered in-band", "account", named.String())
		}
	}
	switch {
	case opErr == nil:
		return false, c.write(result)
	case errors.Is(opErr, account.ErrExists):
		return false, c.write(c.errorReply(e, "cancel", "conflict"))
	case errors.Is(opErr, account.ErrJID), errors.Is(opErr, credentials.ErrPassword):
		return false, c.write(c.errorReply(e, "modify", "not-acceptable"))
	}
	c.log.Error("in-band registration", "err", opErr)
	return false, c.write(c.errorReply(e, "wait", "internal-server-error"))
}
