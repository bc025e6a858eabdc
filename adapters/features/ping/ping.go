// Package ping answers XMPP pings (XEP-0199) sent to the server or to the
// sender's own account: clients use them to check that their stream is
// alive.
package ping

import (
	"context"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
)

// NS is XEP-0199's namespace.
const NS = "urn:xmpp:ping"

// Register answers pings on m.
func Register(m *mux.Mux) {
	m.Handle(mux.Server, NS, pong, NS)
	m.Handle(mux.Account, NS, pong)
}

func pong(_ context.Context, iq *mux.IQ) error {
	if iq.Type() != "get" {
		return stanza.Errorf("bad-request", "a ping is an IQ get")
	}
	iq.Result("")
	return nil
}
