package mirror

// The mirror's side of the link to each master (docs/dmuc.md, "Link
// loss"): it pings the masters whose rooms its users are in, takes a
// master that stops answering for lost (its users see everyone else
// leave, and keep talking to each other), and when the master answers
// again catches each room up, joins its users again and sends what they
// said meanwhile.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/mirror"
)

// DefaultTimeout is how long a master may leave the mirror's pings
// unanswered before its link is taken for lost; the mirror pings every
// third of it.
const DefaultTimeout = 30 * time.Second

// maxResyncPages bounds the resend answers one catch-up asks for: past
// it the room waits for the next gap or reconnection.
const maxResyncPages = 10000

// masterLink is what the mirror knows of its link to one master.
type masterLink struct {
	up    bool
	heard time.Time // its last stanza
}

// heardFrom notes a stanza from master; it reports whether the link was
// down until now (the caller resyncs).
func (s *Service) heardFrom(master string, now time.Time) (wasDown bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.linkLocked(master, now)
	l.heard = now
	wasDown = !l.up
	l.up = true
	return wasDown
}

func (s *Service) linkLocked(master string, now time.Time) *masterLink {
	l, ok := s.links[master]
	if !ok {
		// A master not heard from yet gets a whole timeout's grace.
		l = &masterLink{up: true, heard: now}
		s.links[master] = l
	}
	return l
}

// Up reports whether the link to the master of room is up (or not known
// to be down).
func (s *Service) Up(room jid.JID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.links[room.Domainpart()]
	return !ok || l.up
}

// down takes the link to master for lost, once.
func (s *Service) down(master, why string) {
	s.mu.Lock()
	l := s.linkLocked(master, time.Now())
	was := l.up
	l.up = false
	s.mu.Unlock()
	if !was {
		return
	}
	rooms := s.roomsAt(master)
	s.cfg.Log.Warn("mirror: the link to a master is lost; its rooms go on here", "master", master, "rooms", len(rooms), "why", why)
	for _, r := range rooms {
		s.linked(r, false, why)
		s.partition(r)
	}
}

// linked records in room r's stream that the link to its master went
// down or came back (annals mirror list shows it).
func (s *Service) linked(r jid.JID, up bool, why string) {
	if _, _, err := s.cfg.Replicas.Do(s.serverCtx(), r.String(), mirror.Link{Linked: mirror.Linked{Up: up, Why: why}}); err != nil {
		s.cfg.Log.Error("mirror: recording the link's state", "room", r.String(), "up", up, "err", err)
	}
}

// roomsAt returns the rooms of master that accounts here are in.
func (s *Service) roomsAt(master string) []jid.JID {
	var out []jid.JID
	for _, r := range s.host.MirroredRooms() {
		if j, err := jid.Parse(r); err == nil && j.Domainpart() == master {
			out = append(out, j)
		}
	}
	return out
}

// partition shows the accounts here in room everyone who is not theirs
// leaving (ProtoXEP §3.5: "it will appear to a user as if other users
// have left the room"), with status 333: an error took them out.
func (s *Service) partition(r jid.JID) {
	st, err := s.cfg.Replicas.Get(context.Background(), r.String())
	if err != nil {
		s.cfg.Log.Error("mirror: reading a replica at a link loss", "room", r.String(), "err", err)
		return
	}
	local := s.host.LocalNicks(r.String())
	for nick, o := range st.Occupants {
		if local[nick] != "" {
			continue
		}
		from, err := r.WithResource(nick)
		if err != nil {
			continue
		}
		x := "<presence xmlns='" + stanza.NSClient + "' type='unavailable' from='" + stanza.Escape(from.String()) + "'><x xmlns='" + nsMUCUser +
			"'><item affiliation='" + stanza.Escape(o.Affiliation) + "' role='none'/><status code='333'/></x><status>the link to the room's server was lost</status></presence>"
		e, err := stanza.Parse([]byte(x), 8)
		if err != nil {
			continue
		}
		s.host.FromMirror(from, e)
	}
}

// Run pings the masters whose rooms accounts here are in, every third of
// the timeout, and takes one silent for the whole timeout for lost,
// until ctx ends.
func (s *Service) Run(ctx context.Context) {
	s.mu.Lock()
	s.base = ctx
	s.mu.Unlock()
	tick := time.NewTicker(s.cfg.Timeout / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			masters := map[string]bool{}
			for _, r := range s.host.MirroredRooms() {
				if j, err := jid.Parse(r); err == nil {
					masters[j.Domainpart()] = true
				}
			}
			s.retryBehind()
			for m := range masters {
				s.mu.Lock()
				l := s.linkLocked(m, now)
				silent := l.up && now.Sub(l.heard) > s.cfg.Timeout
				s.mu.Unlock()
				if silent {
					s.down(m, "no answer for "+s.cfg.Timeout.String())
				}
				s.send(m, "<iq xmlns='"+stanza.NSClient+"' type='get' id='"+pingPrefix+stanza.NewID()+"' from='"+stanza.Escape(s.cfg.Domain)+
					"' to='"+stanza.Escape(m)+"'><ping xmlns='urn:xmpp:ping'/></iq>")
			}
		}
	}
}

// retryBehind starts a resync of each room a catch-up failed for.
func (s *Service) retryBehind() {
	s.mu.Lock()
	var rooms []string
	for room := range s.failed {
		rooms = append(rooms, room)
		delete(s.failed, room)
	}
	ctx := s.base
	s.mu.Unlock()
	for _, room := range rooms {
		if r, err := jid.Parse(room); err == nil {
			s.resync(ctx, r, false)
		}
	}
}

// checkBoot reads which run of the master answered a ping: after a
// restart, however short, the master has swept the accounts here out of
// its rooms (332) and forgotten this mirror, so each room catches up and
// the accounts join again.
func (s *Service) checkBoot(master string, e *stanza.Element) {
	d, ok := e.Named(nsDMUC0, "dmuc")
	if !ok || d.Attr("boot") == "" {
		return
	}
	s.mu.Lock()
	was := s.boots[master]
	s.boots[master] = d.Attr("boot")
	s.mu.Unlock()
	if was == "" || was == d.Attr("boot") {
		return
	}
	s.cfg.Log.Info("mirror: the master restarted; its rooms catch up and the accounts here join again", "master", master)
	for _, r := range s.roomsAt(master) {
		s.resync(s.serverCtx(), r, true)
	}
}

// pingPrefix begins the ids of the mirror's pings.
const pingPrefix = "dmuc-ping-"

// send sends x from the mirror service to to.
func (s *Service) send(to, x string) {
	from, err1 := jid.Parse(s.cfg.Domain)
	t, err2 := jid.Parse(to)
	if err1 != nil || err2 != nil {
		return
	}
	s.cfg.Send(from, t, x)
}

// ask sends the IQ x (whose id is id) and waits for its answer, or
// returns an error after the timeout.
func (s *Service) ask(ctx context.Context, to, id, x string) (*stanza.Element, error) {
	ch := make(chan *stanza.Element, 1)
	s.mu.Lock()
	s.waits[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waits, id)
		s.mu.Unlock()
	}()
	s.send(to, x)
	select {
	case e := <-ch:
		return e, nil
	case <-time.After(s.cfg.Timeout):
		return nil, errors.New("mirror: no answer")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// answered hands an IQ answer to the ask waiting for it; false: none is.
func (s *Service) answered(e *stanza.Element) bool {
	s.mu.Lock()
	ch, ok := s.waits[e.Attr("id")]
	s.mu.Unlock()
	if ok {
		select {
		case ch <- e:
		default:
		}
	}
	return ok
}

// resync catches room r up with its master, one resend page after
// another, until the replica holds the master's last sequence; after a
// link loss (rejoin) it then joins the accounts here again and sends
// what they said meanwhile, in order. One resync per room runs at a
// time; one asked for meanwhile runs after it.
func (s *Service) resync(ctx context.Context, r jid.JID, rejoin bool) {
	room := r.String()
	s.mu.Lock()
	if sy, ok := s.syncing[room]; ok {
		// One runs: it catches up again after this round, and joins
		// again unless this round is about to.
		sy.again = true
		sy.rejoin = sy.rejoin || rejoin && !sy.willRejoin
		s.mu.Unlock()
		return
	}
	if !rejoin && time.Since(s.failed[room]) < s.cfg.Timeout/3 {
		// The last one failed a moment ago: Run tries again.
		s.mu.Unlock()
		return
	}
	sy := &syncState{willRejoin: rejoin}
	s.syncing[room] = sy
	s.mu.Unlock()
	go func() {
		for {
			err := s.catchUp(ctx, r)
			s.mu.Lock()
			sy.willRejoin = false
			if err != nil {
				s.failed[room] = time.Now()
			} else {
				delete(s.failed, room)
			}
			s.mu.Unlock()
			if err != nil {
				s.cfg.Log.Warn("mirror: catching a room up", "room", room, "err", err)
			} else if rejoin {
				s.rejoin(ctx, r)
			}
			s.mu.Lock()
			again := sy.again
			rejoin, sy.again, sy.rejoin = sy.rejoin, false, false
			sy.willRejoin = rejoin
			if !again {
				delete(s.syncing, room)
			}
			s.mu.Unlock()
			if !again {
				return
			}
		}
	}()
}

// syncState is a room's resync in progress: again, another round after
// this one (rejoin: with a join); willRejoin, this round joins yet.
type syncState struct{ again, rejoin, willRejoin bool }

// catchUp asks the master for what follows the replica's last sequence
// until it says that was all and nothing later was seen.
func (s *Service) catchUp(ctx context.Context, r jid.JID) error {
	room := r.String()
	for range maxResyncPages {
		st, err := s.cfg.Replicas.Get(ctx, room)
		if err != nil {
			return err
		}
		after := st.Seq
		if st.More {
			after-- // a sequence that came in part is asked for whole
		}
		id := stanza.NewID()
		answer, err := s.ask(ctx, room, id, "<iq xmlns='"+stanza.NSClient+"' type='get' id='"+id+"' from='"+stanza.Escape(s.cfg.Domain)+
			"' to='"+stanza.Escape(room)+"'><room xmlns='"+nsDMUC0+"' after='"+strconv.FormatUint(after, 10)+"'/></iq>")
		if err != nil {
			return err
		}
		if answer.Attr("type") == "error" {
			if x, ok := answer.Named(stanza.NSClient, "error"); ok && x.Attr("type") == "wait" {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return fmt.Errorf("mirror: the master refused a resend after %d", after)
		}
		q, _ := answer.Named(nsDMUC0, "room")
		before := st
		st, err = s.cfg.Replicas.Get(ctx, room)
		if err != nil {
			return err
		}
		s.mu.Lock()
		seen := s.seen[room]
		s.mu.Unlock()
		switch complete := q.Attr("complete") == "true"; {
		case complete && seen <= st.Seq && !st.More:
			return nil
		case st.Seq == before.Seq && st.Part == before.Part:
			// The answer moved nothing: asking again would ask the same.
			return fmt.Errorf("mirror: the master's resend after %d (last %s) filled nothing", after, q.Attr("last"))
		}
	}
	return fmt.Errorf("mirror: still behind after %d resends", maxResyncPages)
}

// rejoin joins the accounts here in room r again (their presence, as the
// ProtoXEP's §3.5 asks of the mirror), then sends the messages they
// posted that the master has not accepted, in posting order.
func (s *Service) rejoin(ctx context.Context, r jid.JID) {
	s.host.Rejoin(r.String())
	st, err := s.cfg.Replicas.Get(ctx, r.String())
	if err != nil {
		s.cfg.Log.Error("mirror: reading what waits for the master", "room", r.String(), "err", err)
		return
	}
	if len(st.Pending) > 0 {
		s.cfg.Log.Info("mirror: messages said while the link was lost go to the master", "room", r.String(), "count", len(st.Pending))
	}
	for i, p := range st.Pending {
		if i > 0 && p.Account != st.Pending[i-1].Account {
			// The master orders each sender's stanzas, not two senders'
			// (s2s.Ordered): the next account's waits for the last one's
			// to be accepted, so that the master takes them in the order
			// the accounts here saw them.
			s.waitAccepted(ctx, r.String(), st.Pending[i-1].LocalID)
		}
		s.sendPost(r, p)
	}
}

// waitAccepted waits, up to the timeout, until the master accepted the
// post localID.
func (s *Service) waitAccepted(ctx context.Context, room, localID string) {
	deadline := time.Now().Add(s.cfg.Timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		st, err := s.cfg.Replicas.Get(ctx, room)
		if err != nil || !st.IsPending(localID) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.cfg.Log.Warn("mirror: a post the master did not accept in time; the next goes anyway", "room", room, "local_id", localID)
}

// sendPost sends the post p to the master of room r, from its occupant.
func (s *Service) sendPost(r jid.JID, p mirror.Posted) {
	e, err := stanza.Parse([]byte(p.Stanza), 32)
	if err != nil {
		return
	}
	from, err := jid.Parse(e.Attr("from"))
	if err != nil {
		return
	}
	s.cfg.Send(from, r, p.Stanza)
}
