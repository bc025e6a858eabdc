package muc

// The master's side of a DMUC3 link (docs/dmuc.md, "Link loss" and
// "Sequence"): which mirrors it still hears, what it does when one goes
// quiet, and resending what a mirror missed.

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/room"
)

// Defaults of the link's bounds.
const (
	// DefaultMirrorTimeout is how long a mirror may be silent before the
	// master takes the link for lost; a mirror pings every third of it.
	DefaultMirrorTimeout = 30 * time.Second
	// DefaultMirrorResendPage bounds the room events one resend answer
	// renders; maxResendBytes bounds its stanzas.
	DefaultMirrorResendPage = 256
	maxResendBytes          = 1 << 20
	// resendGap is the least time between two resends to one mirror: a
	// mirror that asks in a loop gets resource-constraint in between.
	resendGap = 20 * time.Millisecond
)

// mirrorLinks is what the master knows of each mirror's link: when it
// last heard from it, and when it last resent to it.
type mirrorLinks struct {
	mu      sync.Mutex
	heard   map[string]time.Time // mirror JID -> its last stanza
	resends map[string]time.Time // mirror JID -> the last resend
}

// heardFrom notes that the mirror via said something.
func (l *mirrorLinks) heardFrom(via string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.heard == nil {
		l.heard = map[string]time.Time{}
	}
	l.heard[via] = now
}

// forget drops what is known of via (its link was lost).
func (l *mirrorLinks) forget(via string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.heard, via)
	delete(l.resends, via)
}

// silent returns those of mirrors not heard from since before.
func (l *mirrorLinks) silent(mirrors []string, before time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, via := range mirrors {
		if t, ok := l.heard[via]; !ok || t.Before(before) {
			out = append(out, via)
		}
	}
	return out
}

// allowResend reports whether via may have a resend now.
func (l *mirrorLinks) allowResend(via string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.resends[via]; ok && now.Sub(t) < resendGap {
		return false
	}
	if l.resends == nil {
		l.resends = map[string]time.Time{}
	}
	l.resends[via] = now
	return true
}

// isMirror reports whether j is a mirror service of a server the master
// trusts (mirrorVia's rule).
func (s *Service) isMirror(j jid.JID) bool {
	if j.Localpart() != "" || j.Resourcepart() != "" {
		return false
	}
	d := j.Domainpart()
	return slices.ContainsFunc(s.cfg.MirrorTrust, func(server string) bool { return d == server || strings.HasSuffix(d, "."+server) })
}

// attachedMirrors returns every mirror attached to a room here.
func (a *attachments) attachedMirrors() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, accts := range a.rooms {
		for key := range accts {
			if via, ok := strings.CutPrefix(key, mirrorPrefix); ok && !slices.Contains(out, via) {
				out = append(out, via)
			}
		}
	}
	return out
}

// roomsOf returns the rooms the mirror via is attached to.
func (a *attachments) roomsOf(via string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for r, accts := range a.rooms {
		if _, ok := accts[mirrorKey(via)]; ok {
			out = append(out, r)
		}
	}
	return out
}

// Run watches the mirrors' links until ctx ends: a mirror not heard from
// for MirrorTimeout (it pings every third of it) is taken for lost.
//
// It returns once its sweeps have too: an idle leave appended after the
// server's last catch-up would leave the rooms read model behind its log.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	if s.cfg.IdleLeave > 0 && s.cfg.Occupancies != nil {
		wg.Go(func() { s.runIdle(ctx) })
	}
	if len(s.cfg.MirrorTrust) == 0 {
		return
	}
	tick := time.NewTicker(s.cfg.MirrorTimeout / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			for _, via := range s.links.silent(s.muc.attachedMirrors(), now.Add(-s.cfg.MirrorTimeout)) {
				s.mirrorLost(ctx, via, "silent for "+s.cfg.MirrorTimeout.String())
			}
		}
	}
}

// mirrorLost takes the users of mirror via out of every room here, with
// status 333 (XEP-0045: removed because of an error), as the ProtoXEP's
// §3.5 has the master do: the room's own users see them leave. When the
// link is back the mirror joins them again.
func (s *Service) mirrorLost(ctx context.Context, via, why string) {
	s.links.forget(via)
	rooms := s.muc.roomsOf(via)
	if len(rooms) == 0 {
		return
	}
	s.cfg.Log.Warn("mirror: the link to a mirror is lost; its users leave its rooms", "mirror", via, "rooms", len(rooms), "why", why)
	for _, r := range rooms {
		st, err := s.cfg.Rooms.Get(ctx, r)
		if err != nil {
			s.cfg.Log.Error("mirror: reading a room to take a lost mirror's users out", "room", r, "err", err)
			continue
		}
		for acct, o := range st.Occupants {
			if o.Via != via {
				continue
			}
			_, _, _, err := s.roomDo(ctx, r, func(room.State) any {
				return room.Leave{Account: acct, Cause: "error", Status: "the link to " + via + " was lost"}
			})
			if err != nil && !errors.Is(err, room.ErrNotOccupant) {
				s.cfg.Log.Error("mirror: taking a lost mirror's user out", "room", r, "account", acct, "err", err)
			}
		}
		// The mirror stays attached until its last user's exit is told
		// (publishMirrors): if it still hears, that exit tells it to join
		// its users again.
	}
}

// resendToMirror answers a mirror's <room xmlns='urn:xmpp:dmuc:0'
// after='N'/>: the room's events after N, each rendered as the stanzas
// the mirror would have been told (forMirror) with its sequence, a
// bounded page at a time, then <room last='M' complete='…'/>: the last
// sequence sent, and whether it was the room's last.
// NOTSPEC(ProtoXEP §3.2.1): the ProtoXEP's history request has XEP-0045's
// history attributes; after='N' asks by the master's sequence, which a
// mirror that missed stanzas knows and a timestamp cannot give exactly.
func (c *conn) resendToMirror(ctx context.Context, e *element, q element, st room.State, reply func(string) error, fail func(error) error) error {
	s := c.srv
	via := c.jid.String()
	switch {
	case !s.isMirror(c.jid):
		s.cfg.Log.Warn("mirror: a resend asked by a service this server does not trust", "jid", via, "room", st.JID)
		return fail(room.ErrForbidden)
	}
	// A request that cannot be served is refused as such before it is
	// counted against the gap: the refusal costs nothing, and a mirror
	// must learn that its sequence is wrong, not to wait (TestDMUCMaster…
	// was answered "a moment ago" under load).
	after, err := strconv.ParseUint(q.Attr("after"), 10, 64)
	if err != nil || after > st.Version {
		return c.write(c.errorReplyText(e, "modify", "bad-request", "no such sequence in this room"))
	}
	if !s.links.allowResend(via, time.Now()) {
		return c.write(c.errorReplyText(e, "wait", "resource-constraint", "a resend was answered a moment ago"))
	}
	s.links.heardFrom(via, time.Now())
	evs, err := s.cfg.Rooms.Events(ctx, st.JID, after, s.cfg.MirrorResendPage)
	if err != nil {
		s.cfg.Log.Error("mirror: reading a room's events to resend", "room", st.JID, "err", err)
		return fail(err)
	}
	before, err := s.cfg.Rooms.At(ctx, st.JID, after)
	if err != nil {
		s.cfg.Log.Error("mirror: folding a room to resend", "room", st.JID, "err", err)
		return fail(err)
	}
	before.JID = st.JID
	last, bytes := after, 0
	for _, e := range evs {
		next, err := room.Evolve(before, e)
		if err != nil {
			break
		}
		next.JID = st.JID
		parts := s.forMirror(before, next, e, via)
		for i, p := range parts {
			x := stanza.InsertChild(p.xml, seqXML(e.Version, i, len(parts)))
			bytes += len(x)
			c.write(x)
		}
		before, last = next, e.Version
		if bytes > maxResendBytes {
			break
		}
	}
	return reply("<room xmlns='" + nsDMUC0 + "' last='" + strconv.FormatUint(last, 10) + "' complete='" + strconv.FormatBool(last >= st.Version) + "'/>")
}
