package mux

import (
	"context"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/event"
)

// TeardownTimeout bounds what a service does for a session that is gone
// (SessionGone) or for a server that stops (Shutdown): their contexts are
// gone with them, and a stuck store must not hold teardown forever.
const TeardownTimeout = 10 * time.Second

// Service is a service mounted on a domain of its own, such as the
// multi-user chat service on conference.<domain>: every stanza a session
// sends to that domain or to a JID on it is the service's to handle and
// answer, whatever its kind.
type Service interface {
	// Handle takes stanza e (an iq, message or presence) from s, sent to
	// to, a JID at the service's domain. It answers s itself, with a
	// stanza error where it refuses; an error it returns is for the log,
	// but a *stanza.StreamError ends the session's stream with it.
	Handle(ctx context.Context, s Session, e *stanza.Element, to jid.JID) error
}

// What the session core tells the services that implement these, besides
// the stanzas sent to them.
type (
	// SessionWatcher is told when a session ends or says it is unavailable
	// (its context is gone: use TeardownTimeout).
	SessionWatcher interface{ SessionGone(s Session) }
	// Stopper is told that the server stops, before the streams end.
	Stopper interface{ Shutdown() }
	// Runner has work of its own while the server serves (watching
	// links, say): Run is started in a goroutine when the server starts
	// serving and returns when ctx ends.
	Runner interface{ Run(ctx context.Context) }
	// LogFollower is given each batch of the log as it commits, whichever
	// process appended it, from one goroutine and in log order: what it
	// delivers from there reaches sessions once the events are durable.
	LogFollower interface {
		Publish(ctx context.Context, batch []event.Envelope)
	}
)

// Mount makes svc the service of domain. A domain mounted twice is a
// wiring mistake and panics.
func (m *Mux) Mount(domain string, svc Service) {
	if m.services == nil {
		m.services = make(map[string]Service)
	}
	if _, dup := m.services[domain]; dup {
		panic(fmt.Sprintf("mux: a service is already mounted on %s", domain))
	}
	m.services[domain] = svc
	m.mounted = append(m.mounted, svc)
}

// Service returns the service mounted on domain.
func (m *Mux) Service(domain string) (Service, bool) {
	svc, ok := m.services[domain]
	return svc, ok
}

// Services returns the mounted services, in the order mounted. The
// core asks on every batch of the log and every session's end: the list
// is kept, not rebuilt.
func (m *Mux) Services() []Service { return m.mounted }
