package push

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/adapters/stanza/form"
	pushdomain "annals.im/annals/domain/push"
)

// NS is XEP-0357's namespace.
const NS = "urn:xmpp:push:0"

const nsPublishOptions = "http://jabber.org/protocol/pubsub#publish-options"

// maxOptionsBytes bounds the publish-options kept for one registration,
// as serialized.
const maxOptionsBytes = 4096

// Register answers enable and disable on the account's own bare JID and
// lists the feature there (XEP-0357 §4.1).
func (s *Service) Register(m *mux.Mux) {
	m.Handle(mux.Account, NS, s.handle, NS)
}

func (s *Service) handle(ctx context.Context, iq *mux.IQ) error {
	if iq.Type() != "set" {
		return stanza.Errorf("bad-request", "enable and disable are IQ sets")
	}
	acct := iq.Session.JID().Bare().String()
	p := iq.Payload
	svc, err := jid.Parse(p.Attr("jid"))
	if err != nil || p.Attr("jid") == "" {
		return stanza.Errorf("bad-request", "the push service's JID is required ('jid')")
	}
	node := p.Attr("node")
	switch p.XMLName.Local {
	case "enable":
		if s.cfg.Local(svc.Domainpart()) {
			return stanza.Errorf("not-acceptable", "the push service must be at another server: this one serves none")
		}
		options, err := publishOptions(&p)
		if err != nil {
			return err
		}
		r := pushdomain.Registration{Service: svc.String(), Node: node, Resource: iq.Session.JID().Resourcepart(), Options: options != ""}
		// The options first: a registration never names options that are
		// not there. A failed enable leaves old ones replaced, which the
		// client asked for anyway.
		item := optionsItem(r.Service, r.Node)
		if options != "" {
			err = s.cfg.Options.Put(ctx, acct, NS, item, []string{options})
		} else {
			err = s.cfg.Options.Delete(ctx, acct, NS, item)
		}
		if err != nil {
			return fmt.Errorf("push: keeping the publish-options: %w", err)
		}
		st, _, err := s.cfg.Accounts.PushDo(ctx, acct, pushdomain.Enable{Registration: r, Limits: pushdomain.Limits{MaxRegistrations: s.cfg.Limits.Registrations}})
		if err != nil {
			return refusal(err)
		}
		s.known.set(acct, st)
	case "disable":
		st, changed, err := s.disable(ctx, acct, pushdomain.Disable{Service: svc.String(), Node: node})
		if err != nil {
			return refusal(err)
		}
		if changed {
			s.known.set(acct, st)
		}
	default:
		return stanza.Errorf("bad-request", "enable or disable")
	}
	iq.Result("")
	return nil
}

// disable removes registrations and their publish-options.
func (s *Service) disable(ctx context.Context, acct string, cmd pushdomain.Disable) (pushdomain.State, bool, error) {
	before, err := s.cfg.Accounts.Push(ctx, acct)
	if err != nil {
		return before, false, err
	}
	st, changed, err := s.cfg.Accounts.PushDo(ctx, acct, cmd)
	if err != nil || !changed {
		return st, changed, err
	}
	svc, _ := jid.Parse(cmd.Service)
	for _, r := range before.Registrations {
		if r.Service == svc.String() && (cmd.Node == "" || r.Node == cmd.Node) && r.Options {
			if err := s.cfg.Options.Delete(ctx, acct, NS, optionsItem(r.Service, r.Node)); err != nil {
				s.cfg.Log.Error("push: forgetting publish-options", "account", acct, "service", r.Service, "err", err)
			}
		}
	}
	return st, true, nil
}

// optionsItem names a registration's publish-options beside the log.
func optionsItem(service, node string) string { return service + "\n" + node }

// publishOptions returns the enable's publish-options form, checked and
// serialized again as a submit form, or "" without one.
func publishOptions(p *stanza.Element) (string, error) {
	x, ok := p.Named(form.NS, "x")
	if !ok {
		return "", nil
	}
	f, err := form.Parse(x)
	if err != nil {
		return "", stanza.Errorf("bad-request", err.Error())
	}
	if f.FormType != nsPublishOptions {
		return "", stanza.Errorf("bad-request", "the form in an enable is publish-options ("+nsPublishOptions+")")
	}
	var b strings.Builder
	b.WriteString("<x xmlns='" + form.NS + "' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + nsPublishOptions + "</value></field>")
	for _, fl := range f.Fields {
		b.WriteString("<field var='" + stanza.Escape(fl.Var) + "'>")
		for _, v := range fl.Values {
			b.WriteString("<value>" + stanza.Escape(v) + "</value>")
		}
		b.WriteString("</field>")
	}
	b.WriteString("</x>")
	if b.Len() > maxOptionsBytes {
		return "", stanza.Errorf("not-acceptable", fmt.Sprintf("publish-options of more than %d bytes", maxOptionsBytes))
	}
	return b.String(), nil
}

// refusal turns the push rules' errors into stanza errors.
func refusal(err error) error {
	switch {
	case errors.Is(err, pushdomain.ErrFull):
		return &stanza.Error{Type: "wait", Cond: "resource-constraint", Text: strings.TrimPrefix(err.Error(), "push: ")}
	case errors.Is(err, pushdomain.ErrInvalid):
		return stanza.Errorf("bad-request", strings.TrimPrefix(err.Error(), "push: "))
	}
	return err
}
