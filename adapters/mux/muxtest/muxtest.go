// Package muxtest helps feature packages test their handlers: a session
// that keeps what is sent to it, and a way to ask a mux as the session
// core would.
package muxtest

import (
	"context"
	"fmt"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/wellformed"
)

// Session is a mux.Session that keeps what it is sent.
type Session struct {
	Full jid.JID
	Sent []string
}

func (s *Session) JID() jid.JID       { return s.Full }
func (s *Session) Send(stanza string) { s.Sent = append(s.Sent, stanza) }

// SendAll keeps each stanza as Send does.
func (s *Session) SendAll(stanzas []string) { s.Sent = append(s.Sent, stanzas...) }

// Deliver keeps what is delivered with what is sent, in order.
func (s *Session) Deliver(stanza string, _ bool) { s.Sent = append(s.Sent, stanza) }

// Ask sends the IQ serialized in iq from session s to d on m, as the core
// would (answered from `from`), and returns what the session was sent.
// handled is false when no handler took it.
func Ask(m *mux.Mux, d mux.Dest, s *Session, from, iq string) (answer string, handled bool, err error) {
	e, err := Parse(iq)
	if err != nil {
		return "", false, err
	}
	payload, _ := e.Child()
	s.Sent = nil
	handled, err = m.Serve(context.Background(), d, &mux.IQ{Stanza: e, Payload: payload, Session: s, From: from})
	if len(s.Sent) > 1 {
		return "", handled, fmt.Errorf("muxtest: %d answers: %q", len(s.Sent), s.Sent)
	}
	if len(s.Sent) == 1 {
		answer = s.Sent[0]
	}
	return answer, handled, err
}

// Parse reads one stanza as a client stream's reader would.
func Parse(x string) (*stanza.Element, error) {
	return stanza.Parse([]byte(x), wellformed.DefaultMaxDepth)
}
