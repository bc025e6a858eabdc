// Package version tells the server's software name and version (XEP-0092)
// to whoever asks the server.
package version

import (
	"context"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
)

// NS is XEP-0092's namespace.
const NS = "jabber:iq:version"

// Register answers software version requests to the server on m with
// name and version. No operating system is told: it helps attackers more
// than users (XEP-0092 §2 makes it optional).
func Register(m *mux.Mux, name, version string) {
	payload := "<query xmlns='" + NS + "'><name>" + stanza.Escape(name) + "</name><version>" + stanza.Escape(version) + "</version></query>"
	m.Handle(mux.Server, NS, func(_ context.Context, iq *mux.IQ) error {
		if iq.Type() != "get" {
			return stanza.Errorf("bad-request", "a version request is an IQ get")
		}
		iq.Result(payload)
		return nil
	}, NS)
}
