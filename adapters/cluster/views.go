package cluster

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// syncPage bounds the sessions of one sync answer: about 300 bytes each
// keeps a page far below NATS's 1 MiB payload.
const syncPage = 1000

// syncRequest asks a node for its sessions after the JID After.
type syncRequest struct {
	After string `json:"after,omitempty"`
}

// syncPageAnswer is one page of a node's session table.
type syncPageAnswer struct {
	Inc      string            `json:"inc"`
	Seq      uint64            `json:"seq"`
	Sessions map[string]string `json:"sessions"`
	More     bool              `json:"more,omitempty"`
}

func (b *Bus) onAnnouncement(m *nats.Msg) {
	var a announcement
	if err := json.Unmarshal(m.Data, &a); err != nil || a.Node == "" {
		b.opts.Log.Warn("cluster: dropped an unreadable announcement", "bytes", len(m.Data))
		return
	}
	if a.Node == b.opts.Node {
		if a.Inc != b.inc {
			b.opts.Log.Error("cluster: another node announces itself under this node's name", "node", a.Node)
		}
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[a.Node]
	if a.Bye {
		if p != nil && p.inc == a.Inc {
			b.forget(p, false)
		}
		return
	}
	if p == nil {
		if len(b.peers) >= b.opts.MaxNodes {
			b.opts.Log.Warn("cluster: too many nodes to follow", "max", b.opts.MaxNodes, "node", a.Node)
			return
		}
		p = &peer{name: a.Node, inc: a.Inc, sessions: make(map[string]string)}
		b.peers[a.Node] = p
		b.opts.Log.Info("cluster: a node joined", "node", a.Node)
		b.resync(p)
	}
	if p.inc != a.Inc {
		// The node restarted: what it held before is gone.
		b.opts.Log.Info("cluster: a node restarted", "node", a.Node)
		b.dropSessions(p, true)
		p.inc, p.seq = a.Inc, 0
		b.resync(p)
	}
	p.seen = time.Now()
	switch {
	case a.Beat:
		if a.Seq != p.seq || a.Count != len(p.sessions) {
			b.resync(p)
		}
	case a.Seq != p.seq+1 && !p.syncing:
		b.resync(p)
		b.apply(p, a)
	default:
		b.apply(p, a)
	}
	if a.Seq > p.seq {
		p.seq = a.Seq
	}
}

// apply records one session change of p.
func (b *Bus) apply(p *peer, a announcement) {
	if a.JID == "" {
		return
	}
	if !a.Bound {
		b.remove(p, a.JID)
		return
	}
	if _, ok := p.sessions[a.JID]; !ok {
		if len(p.sessions) >= b.opts.MaxSessions {
			b.opts.Log.Warn("cluster: too many sessions on a node to follow", "node", p.name, "max", b.opts.MaxSessions)
			return
		}
		if !isAttachment(a.JID) {
			b.count(bareOf(a.JID), p.name, +1)
		}
	}
	if isAttachment(a.JID) {
		b.setAttached(a.JID, p.name, a.Presence, true)
	}
	if len(a.Presence) > b.opts.MaxPresence {
		a.Presence = bareAvailable(a.JID)
	}
	p.sessions[a.JID] = a.Presence
}

func (b *Bus) remove(p *peer, full string) {
	if _, ok := p.sessions[full]; !ok {
		return
	}
	delete(p.sessions, full)
	if isAttachment(full) {
		b.setAttached(full, p.name, "", false)
	} else {
		b.count(bareOf(full), p.name, -1)
	}
}

func (b *Bus) count(bare, node string, d int) {
	m := b.byBare[bare]
	if m == nil {
		m = make(map[string]int)
		b.byBare[bare] = m
	}
	if m[node] += d; m[node] <= 0 {
		delete(m, node)
		if len(m) == 0 {
			delete(b.byBare, bare)
		}
	}
}

// dropSessions forgets p's sessions; gone reports the available ones to
// the handler as gone without a word.
func (b *Bus) dropSessions(p *peer, gone bool) {
	var lost []Session
	var detached [][2]string
	for full, pres := range p.sessions {
		b.remove(p, full)
		switch {
		case !gone:
		case isAttachment(full):
			room, acct, _ := strings.Cut(full[1:], " ")
			detached = append(detached, [2]string{room, acct})
		case pres != "":
			lost = append(lost, Session{JID: full, Node: p.name, Presence: pres})
		}
	}
	if h := b.handler; h != nil && len(lost)+len(detached) > 0 {
		// Off the lock: the handler broadcasts, appends, and asks
		// Sessions and Attached.
		go func() {
			for _, s := range lost {
				h.PeerGone(s.JID, s.Presence)
			}
			for _, d := range detached {
				h.AttachmentGone(d[0], d[1])
			}
		}()
	}
}

// forget drops p: gone when it stopped answering, not when it said bye
// (its sessions said goodbye themselves).
func (b *Bus) forget(p *peer, gone bool) {
	b.dropSessions(p, gone)
	delete(b.peers, p.name)
}

// resync fetches p's whole table in the background; announcements that
// arrive meanwhile apply on top.
func (b *Bus) resync(p *peer) {
	if p.syncing {
		return
	}
	p.syncing = true
	go b.fetch(p.name, p.inc)
}

func (b *Bus) fetch(node, inc string) {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Heartbeat*time.Duration(b.opts.Missed))
	defer cancel()
	table := make(map[string]string)
	var seq uint64
	after := ""
	ok := false
	for range b.opts.MaxSessions/syncPage + 1 {
		req, _ := json.Marshal(syncRequest{After: after})
		m, err := b.nc.RequestWithContext(ctx, b.subject("node", node, "sync"), req)
		var page syncPageAnswer
		if err == nil {
			err = json.Unmarshal(m.Data, &page)
		}
		if err != nil || page.Inc != inc {
			break
		}
		seq = page.Seq
		maps.Copy(table, page.Sessions)
		if !page.More || len(page.Sessions) == 0 {
			ok = true
			break
		}
		after = slices.Max(slices.Collect(maps.Keys(page.Sessions)))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[node]
	if p == nil || p.inc != inc {
		return
	}
	p.syncing = false
	if !ok {
		return // the next heartbeat asks again
	}
	for full := range p.sessions {
		if _, keep := table[full]; !keep {
			b.remove(p, full)
		}
	}
	for full, pres := range table {
		b.apply(p, announcement{JID: full, Bound: true, Presence: pres})
	}
	if seq > p.seq {
		p.seq = seq
	}
}

// onSync answers a page of this node's table.
func (b *Bus) onSync(m *nats.Msg) {
	var req syncRequest
	if json.Unmarshal(m.Data, &req) != nil {
		return
	}
	b.mu.Lock()
	keys := slices.Sorted(maps.Keys(b.own))
	i, _ := slices.BinarySearch(keys, req.After)
	if i < len(keys) && keys[i] == req.After {
		i++
	}
	page := syncPageAnswer{Inc: b.inc, Seq: b.seq, Sessions: make(map[string]string)}
	for _, k := range keys[i:min(len(keys), i+syncPage)] {
		page.Sessions[k] = b.own[k]
	}
	page.More = i+syncPage < len(keys)
	b.mu.Unlock()
	data, _ := json.Marshal(page)
	m.Respond(data)
}

// beat says this node is alive every Heartbeat and forgets the nodes that
// have not said so for Missed heartbeats.
func (b *Bus) beat() {
	defer b.stopped.Done()
	t := time.NewTicker(b.opts.Heartbeat)
	defer t.Stop()
	for {
		var pos uint64
		if b.opts.Position != nil {
			pos = b.opts.Position() // off the lock: it may read a database
		}
		b.mu.Lock()
		clients := 0
		for k := range b.own {
			if !isAttachment(k) {
				clients++
			}
		}
		a := announcement{Node: b.opts.Node, Inc: b.inc, Seq: b.seq, Beat: true, Count: len(b.own), Clients: clients, Position: pos}
		b.publish(a)
		dead := time.Now().Add(-b.opts.Heartbeat * time.Duration(b.opts.Missed))
		for _, p := range b.peers {
			if p.seen.Before(dead) {
				b.opts.Log.Warn("cluster: a node stopped answering: its sessions are gone", "node", p.name, "sessions", len(p.sessions))
				b.forget(p, true)
			}
		}
		b.mu.Unlock()
		select {
		case <-b.done:
			return
		case <-t.C:
		}
	}
}
