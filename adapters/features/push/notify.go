package push

import (
	"context"
	"errors"
	"slices"
	"strings"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/event"
	pushdomain "annals.im/annals/domain/push"
)

// Wants implements c2s.Pusher.
func (s *Service) Wants(acct string) bool { return !s.known.none(acct) }

// Message implements c2s.Pusher: the message goes to the queue, or is
// dropped (logged) when the queue is full; it never blocks.
func (s *Service) Message(acct, sender, body string, awake []string) {
	if s.known.none(acct) {
		return
	}
	select {
	case s.queue <- job{acct: acct, sender: sender, body: body, awake: awake}:
	default:
		s.cfg.Log.Warn("push: queue full, a notification dropped", "account", acct, "queue", s.cfg.Limits.Queue)
	}
}

// Run notifies until ctx ends, with Limits.Workers workers.
func (s *Service) Run(ctx context.Context) {
	done := make(chan struct{})
	for range s.cfg.Limits.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-s.queue:
					s.notify(ctx, j)
				}
			}
		}()
	}
	for range s.cfg.Limits.Workers {
		<-done
	}
}

// notify publishes to each registration of the account whose client did
// not take the message itself.
func (s *Service) notify(ctx context.Context, j job) {
	st, err := s.cfg.Accounts.Push(ctx, j.acct)
	if err != nil {
		s.cfg.Log.Error("push: reading registrations", "account", j.acct, "err", err)
		return
	}
	s.known.set(j.acct, st)
	for _, r := range st.Registrations {
		if slices.Contains(j.awake, r.Resource) {
			continue // the client is there and took it
		}
		s.publish(ctx, j, r)
	}
}

// publish sends one notification (XEP-0357 §7) and acts on the answer.
func (s *Service) publish(ctx context.Context, j job, r pushdomain.Registration) {
	options := ""
	if r.Options {
		kept, err := s.cfg.Options.Node(ctx, j.acct, NS)
		if err != nil {
			s.cfg.Log.Error("push: reading publish-options", "account", j.acct, "err", err)
			return
		}
		if v := kept[optionsItem(r.Service, r.Node)]; len(v) == 1 {
			options = "<publish-options>" + v[0] + "</publish-options>"
		}
	}
	from, err1 := jid.Parse(j.acct)
	to, err2 := jid.Parse(r.Service)
	if err1 != nil || err2 != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.Timeout)
	defer cancel()
	answer, err := s.cfg.Sender.AccountIQ(ctx, from, to, "set", s.payload(j, r.Node, options))
	switch {
	case err == nil && answer.Attr("type") == "result":
		s.failed(j.acct, r, nil)
	case err == nil:
		s.failed(j.acct, r, stanza.ParseError(answer))
	case errors.Is(err, context.DeadlineExceeded):
		s.failed(j.acct, r, &stanza.Error{Type: "wait", Cond: "remote-server-timeout", Text: "no answer in " + s.cfg.Limits.Timeout.String()})
	default:
		s.cfg.Log.Warn("push: not sent", "account", j.acct, "service", r.Service, "err", err)
	}
}

// payload is the pubsub publish of a notification.
func (s *Service) payload(j job, node, options string) string {
	var b strings.Builder
	b.WriteString("<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish")
	if node != "" {
		b.WriteString(" node='" + stanza.Escape(node) + "'")
	}
	b.WriteString("><item><notification xmlns='" + NS + "'><x xmlns='jabber:x:data' type='submit'>")
	b.WriteString("<field var='FORM_TYPE'><value>urn:xmpp:push:summary</value></field>")
	// NOTSPEC(XEP-0357 §7): message-count is the one message this
	// notification is for, not a count of those pending: the server
	// cannot tell which the user has read (another client may have shown
	// them), and a count that only grows would be wrong.
	b.WriteString("<field var='message-count'><value>1</value></field>")
	if s.cfg.WithSender {
		b.WriteString("<field var='last-message-sender'><value>" + stanza.Escape(j.sender) + "</value></field>")
	}
	if s.cfg.WithBody && j.body != "" {
		b.WriteString("<field var='last-message-body'><value>" + stanza.Escape(j.body) + "</value></field>")
	}
	b.WriteString("</x></notification></item></publish>" + options + "</pubsub>")
	return b.String()
}

// failed counts a registration's errors in a row (nil: a success ends
// the row) and disables it on an error of type cancel or auth, or on
// MaxErrors in a row (XEP-0357 §7.1).
func (s *Service) failed(acct string, r pushdomain.Registration, se *stanza.Error) {
	k := [3]string{acct, r.Service, r.Node}
	s.errMu.Lock()
	if se == nil {
		delete(s.errors, k)
		s.errMu.Unlock()
		return
	}
	s.errors[k]++
	n := s.errors[k]
	if len(s.errors) > maxKnown {
		clear(s.errors) // bounded: at worst, rows start again
	}
	s.errMu.Unlock()
	s.cfg.Log.Info("push: the app server answered an error", "account", acct, "service", r.Service, "condition", se.Cond, "in_a_row", n)
	if se.Type != "cancel" && se.Type != "auth" && n < s.cfg.Limits.MaxErrors {
		return
	}
	s.errMu.Lock()
	delete(s.errors, k)
	s.errMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Limits.Timeout)
	defer cancel()
	ctx = event.WithCause(ctx, "server:push")
	st, changed, err := s.disable(ctx, acct, pushdomain.Disable{Service: r.Service, Node: r.Node,
		Reason: "the push service answered " + se.Cond})
	if err != nil {
		s.cfg.Log.Error("push: disabling a node that failed", "account", acct, "service", r.Service, "err", err)
		return
	}
	if changed {
		s.known.set(acct, st)
	}
}
