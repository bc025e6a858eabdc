package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"slices"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/adapters/features/push"
	"annals.im/annals/adapters/stanza"
	pushdomain "annals.im/annals/domain/push"
)

// Push notifications (XEP-0357): the clients' app servers are told, over
// federation, of messages for clients that sleep.
type pushFlags struct {
	on               bool
	maxRegistrations int
	withSender       bool
	withBody         bool
}

func (p *pushFlags) flags(fs *flag.FlagSet) {
	fs.BoolVar(&p.on, "push", true, "publish push notifications (XEP-0357) to the app servers clients enable, over federation (needs --s2s)")
	fs.IntVar(&p.maxRegistrations, "push-max-registrations", pushdomain.DefaultMaxRegistrations, "push registrations an account may hold (one per device and app)")
	fs.BoolVar(&p.withSender, "push-with-sender", false, "tell the app server who sent the message (it is a third party)")
	fs.BoolVar(&p.withBody, "push-with-body", false, "tell the app server the message's body (it is a third party; encrypted messages have none)")
}

func (p *pushFlags) validate() error {
	if p.maxRegistrations < 1 {
		return fmt.Errorf("%w: --push-max-registrations must be 1 or more", errUsage)
	}
	return nil
}

// lateSender is the c2s server, which the push service needs to send and
// which needs the push service to be made: set before anything is sent.
type lateSender struct{ srv *c2s.Server }

func (l *lateSender) AccountIQ(ctx context.Context, from, to jid.JID, typ, payload string) (*stanza.Element, error) {
	return l.srv.AccountIQ(ctx, from, to, typ, payload)
}

// service builds the push service, or nil when it is off or there is no
// federation to reach app servers through.
func (p *pushFlags) service(accts push.Accounts, options push.Options, served []string, log *slog.Logger) (*push.Service, *lateSender) {
	if !p.on {
		return nil, nil
	}
	sender := &lateSender{}
	return push.New(push.Config{Accounts: accts, Options: options, Sender: sender,
		Local:      func(d string) bool { return slices.Contains(served, d) },
		WithSender: p.withSender, WithBody: p.withBody,
		Limits: push.Limits{Registrations: p.maxRegistrations}, Log: log}), sender
}
