package mirror

import (
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/mirror"
)

// Replicas keeps the mirrored rooms' replicas (app/mirrors).
type Replicas interface {
	Do(ctx context.Context, room string, c any) (mirror.State, []event.Envelope, error)
	Get(ctx context.Context, room string) (mirror.State, error)
}

// Host is what the service needs from the session core (c2s.Server).
type Host interface {
	// FromMirror hands what a mirrored room said to the accounts here
	// that are in it.
	FromMirror(from jid.JID, e *stanza.Element)
	// MirroredRooms lists the mirrored rooms accounts here are in.
	MirroredRooms() []string
	// LocalNicks are the nicks of the accounts here in room, and whose
	// they are.
	LocalNicks(room string) map[string]string
	// Rejoin sends the master each account's join to room again (after a
	// link loss), asking for no history.
	Rejoin(room string)
	// ToOccupant hands what room occupant from sent one account's
	// occupant JID user, as if the room had sent it there; false: no
	// such account is in the room.
	ToOccupant(user, from jid.JID, e *stanza.Element) bool
}

// Config is what the service needs.
type Config struct {
	Domain   string   // its own, mirror.<domain>
	MirrorOf []string // the MUC services elsewhere it mirrors (--mirror-of)
	Replicas Replicas
	// Send sends a stanza to another server (c2s's Remote).
	Send func(from, to jid.JID, stanza string)
	// Timeout: a master that leaves the pings unanswered that long is
	// taken for lost (DefaultTimeout).
	Timeout time.Duration
	Log     *slog.Logger
}

// Service is the mirror service.
type Service struct {
	cfg  Config
	host Host
	base context.Context // for the resyncs: the server's, from Run

	mu      sync.Mutex
	links   map[string]*masterLink          // master service -> its link
	waits   map[string]chan *stanza.Element // IQ id -> where its answer goes
	syncing map[string]*syncState           // room -> its resync in progress
	seen    map[string]uint64               // room -> the highest sequence the master sent
	failed  map[string]time.Time            // room -> when its last catch-up failed
	quietTo map[string]uint64               // room -> refetched up to here: nobody is told again
	boots   map[string]string               // master -> the run of it its pings last answered from
}

// New returns the service, ready to be mounted on cfg.Domain.
func New(cfg Config, host Host) (*Service, error) {
	if cfg.Domain == "" || cfg.Replicas == nil || cfg.Send == nil || host == nil {
		return nil, errors.New("mirror: a domain, replicas, a sender and a host are needed")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.Timeout = cmp.Or(max(cfg.Timeout, 0), DefaultTimeout)
	return &Service{cfg: cfg, host: host, base: context.Background(), links: map[string]*masterLink{}, waits: map[string]chan *stanza.Element{},
		syncing: map[string]*syncState{}, seen: map[string]uint64{}, failed: map[string]time.Time{},
		quietTo: map[string]uint64{}, boots: map[string]string{}}, nil
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
	master := from.Domainpart()
	if !slices.Contains(s.cfg.MirrorOf, master) {
		if typ == "error" || e.XMLName.Local == "iq" && typ == "result" {
			return nil
		}
		s.cfg.Log.Warn("mirror: a stanza from a service this server does not mirror", "from", from.String())
		return s.fail(sess, e, to, "not-allowed")
	}
	if to.Localpart() != "" {
		// For one user (ProtoXEP §3.2.2: a join refused), named by its
		// escaped JID (XEP-0106): an account of this server's occupant
		// JID, or nobody.
		user, err := jid.Parse(stanza.UnescapeLocal(to.Localpart()))
		if e.XMLName.Local == "iq" || e.Attr("from") != from.String() || err != nil || !s.host.ToOccupant(user, from, e) {
			s.cfg.Log.Warn("mirror: a stanza for a user the mirror does not have", "from", from.String(), "to", to.String())
		}
		return nil
	}
	if typ == "error" {
		if e.XMLName.Local == "iq" && strings.HasPrefix(e.Attr("id"), pingPrefix) && goneError(e) {
			s.down(master, "a ping came back: "+stanza.ErrorCondition(e))
		}
		if e.XMLName.Local == "iq" {
			s.answered(e)
		}
		return nil
	}
	if s.heardFrom(master, time.Now()) {
		// The link is back: each room catches up, and the accounts here
		// join again (ProtoXEP §3.5).
		s.cfg.Log.Info("mirror: the link to a master is back", "master", master)
		for _, r := range s.roomsAt(master) {
			s.linked(r, true, "")
			s.resync(s.serverCtx(), r, true)
		}
	}
	if e.XMLName.Local == "iq" && typ == "result" {
		if strings.HasPrefix(e.Attr("id"), pingPrefix) {
			s.checkBoot(master, e)
		}
		s.answered(e)
		return nil
	}
	if from.Localpart() == "" {
		s.cfg.Log.Warn("mirror: a stanza from a service this server does not mirror", "from", from.String())
		return s.fail(sess, e, to, "not-allowed")
	}
	room := from.Bare().String()
	if !s.inUse(room) {
		// No account here is in the room (or joining it): a master may
		// not make this server keep replicas of rooms nobody here asked
		// for.
		s.cfg.Log.Warn("mirror: a stanza for a room no account here is in", "from", from.String())
		if e.XMLName.Local == "iq" {
			return s.fail(sess, e, to, "not-acceptable")
		}
		return nil
	}
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
			locals := s.host.LocalNicks(room)
			for i := range a.Occupants {
				a.Occupants[i].Local = locals[a.Occupants[i].Nick]
			}
			s.apply(ctx, from.Bare(), a)
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
		lost := false
		if a.Kind == mirror.Presence && !s.refetching(room, a.Seq) {
			acct := s.host.LocalNicks(room)[a.Occupant.Nick]
			// The master took an account here out for no doing of its
			// own: it lost the link to this mirror (333, ProtoXEP §3.5),
			// or it restarted and swept the occupants from elsewhere
			// (332). The account is still in the room here, and joins
			// again; its stay goes on. A kick or a ban is told.
			lost = acct != "" && a.Gone && (hasStatus(e, "333") || hasStatus(e, "332"))
			if !lost {
				a.Occupant.Local = acct
			}
		}
		if !s.apply(ctx, from.Bare(), a) || a.Kind == mirror.Tick {
			return nil
		}
		if lost {
			s.resync(s.serverCtx(), from.Bare(), true)
			return nil
		}
		plain := *e
		plain.Inner = stanza.WithoutChildren(e, xml.Name{Space: nsDMUC0, Local: "dmuc"})
		s.host.FromMirror(from, &plain)
	}
	return nil
}

// apply applies a to the replica of room r; false: nobody is to be told
// (it was applied before, it came after a gap and waits for the resend,
// or the accounts here saw it when they posted it).
func (s *Service) apply(ctx context.Context, r jid.JID, a mirror.Applied) bool {
	room := r.String()
	_, evs, err := s.cfg.Replicas.Do(ctx, room, mirror.Apply{Applied: a})
	var gap *mirror.GapError
	switch {
	case err == nil:
		s.mu.Lock()
		s.seen[room] = max(s.seen[room], a.Seq)
		quiet := a.Seq <= s.quietTo[room]
		s.mu.Unlock()
		var done mirror.Applied
		return len(evs) == 1 && evs[0].Decode(mirror.Schema, &done) == nil && !done.Seen && !quiet
	case errors.Is(err, mirror.ErrStale):
		return false
	case errors.As(err, &gap):
		// Not told now: the resend tells it in order, once.
		s.mu.Lock()
		s.seen[room] = max(s.seen[room], gap.Got)
		s.mu.Unlock()
		s.cfg.Log.Info("mirror: the master skipped sequences; asking for them", "room", room, "after", gap.After, "got", gap.Got)
		s.resync(s.serverCtx(), r, false)
		return false
	default:
		s.cfg.Log.Error("mirror: applying what the master said", "room", room, "err", err)
		return false
	}
}

// inUse reports whether an account here is in room (or joining it), or
// an operator asked for it again (a refetch).
func (s *Service) inUse(room string) bool {
	if len(s.host.LocalNicks(room)) > 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quietTo[room] > 0
}

// serverCtx is the server's context once Run has it.
func (s *Service) serverCtx() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.base
}

// hasStatus reports whether presence e has muc#user status code.
func hasStatus(e *stanza.Element, code string) bool {
	x, _ := e.Named(nsMUCUser, "x")
	for _, st := range x.Children() {
		if st.XMLName.Local == "status" && st.Attr("code") == code {
			return true
		}
	}
	return false
}

// goneConditions are the errors that say the other side is not there.
var goneConditions = map[string]bool{"remote-server-not-found": true, "remote-server-timeout": true, "service-unavailable": true, "gone": true}

// goneError reports whether error stanza e says the master is gone.
func goneError(e *stanza.Element) bool { return goneConditions[stanza.ErrorCondition(e)] }

// fail answers e with an error, from the address it was sent to.
func (s *Service) fail(sess mux.Session, e *stanza.Element, to jid.JID, cond string) error {
	sess.Send("<" + e.XMLName.Local + " xmlns='" + stanza.NSClient + "' type='error' id='" + stanza.Escape(e.Attr("id")) + "' from='" +
		stanza.Escape(to.String()) + "' to='" + stanza.Escape(sess.JID().String()) + "'>" + stanza.Errorf(cond, "").XML() + "</" + e.XMLName.Local + ">")
	return nil
}
