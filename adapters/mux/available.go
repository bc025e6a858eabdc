package mux

import "context"

// Capable is a Session that knows what its client can do (XEP-0115
// entity capabilities, as the core learned them from its presence).
type Capable interface {
	// Notifies reports whether the client asked for events of node
	// (node+"+notify", XEP-0163 §4.1); known is false while the core does
	// not know the client's features (it sent no caps, or the answer to
	// the core's question has not come).
	Notifies(node string) (yes, known bool)
}

// OnAvailable makes f be told of each session that becomes available
// (its initial presence, once its capabilities are known or found
// unknowable), for what a feature sends a client that comes online (the
// last item of each PEP node it asks events of, XEP-0163 §4.3).
// Registered while wiring, before serving.
func (m *Mux) OnAvailable(f func(ctx context.Context, s Session)) {
	m.available = append(m.available, f)
}

// SessionAvailable tells what OnAvailable registered that s became
// available.
func (m *Mux) SessionAvailable(ctx context.Context, s Session) {
	for _, f := range m.available {
		f(ctx, s)
	}
}
