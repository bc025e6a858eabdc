package mirror

import (
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"slices"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/mirror"
)

// Replicas keeps the mirrored rooms' replicas (app/mirrors).
type Replicas interface {
	Do(ctx context.Context, room string, c any) (mirror.State, []event.Envelope, error)
}

// Host is what the service needs from the session core: handing what a
// mirrored room said to the accounts here that are in it.
type Host interface {
	FromMirror(from jid.JID, e *stanza.Element)
}

// Config is what the service needs.
type Config struct {
	Domain   string   // its own, mirror.<domain>
	MirrorOf []string // the MUC services elsewhere it mirrors (--mirror-of)
	Replicas Replicas
	Log      *slog.Logger
}

// Service is the mirror service.
type Service struct {
	cfg  Config
	host Host
}

// New returns the service, ready to be mounted on cfg.Domain.
func New(cfg Config, host Host) (*Service, error) {
	if cfg.Domain == "" || cfg.Replicas == nil || host == nil {
		return nil, errors.New("mirror: a domain, replicas and a host are needed")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Service{cfg: cfg, host: host}, nil
}

// Register mounts the service on m.
func (s *Service) Register(m *mux.Mux) { m.Mount(s.cfg.Domain, s) }

// Handle takes what a master sends the mirror: the configuration and
// roster of a room it starts mirroring, and each room event with its
// sequence, applied to the replica (the gap rule) and handed to the
// accounts here in the room. Anything from a service it does not mirror
// is refused.
func (s *Service) Handle(ctx context.Context, sess mux.Session, e *stanza.Element, to jid.JID) error {
	from := sess.JID()
	typ := e.Attr("type")
	if typ == "error" || e.XMLName.Local == "iq" && typ == "result" {
		return nil
	}
	if from.Localpart() == "" || !slices.Contains(s.cfg.MirrorOf, from.Domainpart()) {
		s.cfg.Log.Warn("mirror: a stanza from a service this server does not mirror", "from", from.String())
		return s.fail(sess, e, to, "not-allowed")
	}
	room := from.Bare().String()
	switch e.XMLName.Local {
	case "iq":
		q, ok := e.Child()
		switch {
		case !ok || typ != "set":
			return s.fail(sess, e, to, "bad-request")
		case q.XMLName == xml.Name{Space: nsDMUC0, Local: "config"}:
			// NOTSPEC(ProtoXEP §3.2.1): taken and acknowledged; the mirror
			// enforces nothing of it yet (the master checks every join).
		case q.XMLName == xml.Name{Space: nsDMUC0, Local: "roster"}:
			a, err := ReadRoster(&q)
			if err != nil {
				return s.fail(sess, e, to, "bad-request")
			}
			s.apply(ctx, room, a)
		default:
			return s.fail(sess, e, to, "service-unavailable")
		}
		sess.Send("<iq xmlns='" + stanza.NSClient + "' type='result' id='" + stanza.Escape(e.Attr("id")) + "' from='" + stanza.Escape(to.String()) +
			"' to='" + stanza.Escape(from.String()) + "'/>")
		return nil
	case "presence", "message":
		if e.Attr("from") != from.String() {
			return nil // not what the checks above looked at: nothing to place
		}
		a, err := Read(e)
		if err != nil {
			s.cfg.Log.Warn("mirror: a stanza the master sent cannot be placed", "from", from.String(), "err", err)
			return nil
		}
		if s.apply(ctx, room, a) {
			plain := *e
			plain.Inner = stanza.WithoutChildren(e, xml.Name{Space: nsDMUC0, Local: "dmuc"})
			s.host.FromMirror(from, &plain)
		}
	}
	return nil
}

// apply applies a to the replica of room; false: it was applied before
// (a resend), and nobody is told again.
func (s *Service) apply(ctx context.Context, room string, a mirror.Applied) bool {
	_, _, err := s.cfg.Replicas.Do(ctx, room, mirror.Apply{Applied: a})
	var gap *mirror.GapError
	switch {
	case err == nil:
		return true
	case errors.Is(err, mirror.ErrStale):
		return false
	case errors.As(err, &gap):
		// NOTSPEC(docs/dmuc.md, "Sequence"): the resend request is not
		// built yet; the users still get what came, the replica waits for
		// the next roster.
		s.cfg.Log.Warn("mirror: the master skipped sequences; the replica waits for a resync", "room", room, "after", gap.After, "got", gap.Got)
		return true
	default:
		s.cfg.Log.Error("mirror: applying what the master said", "room", room, "err", err)
		return false
	}
}

// fail answers e with an error, from the address it was sent to.
func (s *Service) fail(sess mux.Session, e *stanza.Element, to jid.JID, cond string) error {
	sess.Send("<" + e.XMLName.Local + " xmlns='" + stanza.NSClient + "' type='error' id='" + stanza.Escape(e.Attr("id")) + "' from='" +
		stanza.Escape(to.String()) + "' to='" + stanza.Escape(sess.JID().String()) + "'>" + stanza.Errorf(cond, "").XML() + "</" + e.XMLName.Local + ">")
	return nil
}
