package c2s

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"annals.im/annals/domain/archive"
)

// fakeNodes stands for the other nodes of a cluster: a fixed table of
// their sessions, and what this node sends them.
type fakeNodes struct {
	mu       sync.Mutex
	sessions map[string][]NodeSession // bare JID -> sessions elsewhere
	sent     []string                 // "node|to|wire"
	replaced []string                 // "node|full"
	told     map[string]string        // full -> presence announced ("-" when unbound)
}

func (f *fakeNodes) Announce(full string, bound bool, presence string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.told == nil {
		f.told = map[string]string{}
	}
	if !bound {
		presence = "-"
	}
	f.told[full] = presence
}

func (f *fakeNodes) Sessions(bare string) []NodeSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]NodeSession(nil), f.sessions[bare]...)
}

func (f *fakeNodes) Send(node, to, wire string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, node+"|"+to+"|"+wire)
}

func (f *fakeNodes) Replace(node, full string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replaced = append(f.replaced, node+"|"+full)
}

func (f *fakeNodes) snapshot() (sent, replaced []string, told map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := map[string]string{}
	for k, v := range f.told {
		t[k] = v
	}
	return append([]string(nil), f.sent...), append([]string(nil), f.replaced...), t
}

// Across nodes the session core announces its sessions, reaches theirs
// over the bus (an IQ to a full JID bound on another node, a presence
// broadcast to the account's other sessions), asks the node holding a
// full JID bound here again to end its session (RFC 6120 §7.7.2.2), and
// ends its own when another node asks.
func TestAcrossNodes(t *testing.T) {
	nodes := &fakeNodes{sessions: map[string][]NodeSession{
		"juliet@localhost": {
			{JID: "juliet@localhost/tomb", Node: "b", Presence: "<presence from='juliet@localhost/tomb'/>"},
			{JID: "juliet@localhost/balcony", Node: "b"},
		},
	}}
	var srv *Server
	addr := serverMounting(t, func(cfg *Config) { cfg.Accounts, cfg.Cluster = lovers{}, nodes }, func(s *Server) { srv = s })

	balcony := login(t, addr, "juliet", "balcony")
	if _, replaced, told := nodes.snapshot(); len(replaced) != 1 || replaced[0] != "b|juliet@localhost/balcony" || told["juliet@localhost/balcony"] != "" {
		t.Fatalf("binding a full JID bound on node b: replaced %v, announced %v", replaced, told)
	}
	balcony.c.send("<presence/>")
	// Its own presence back, and the other node's session's from the probe.
	balcony.all("from='juliet@localhost/balcony'", "from='juliet@localhost/tomb'")
	balcony.c.send("<iq type='get' id='q1' to='juliet@localhost/tomb'><ping xmlns='urn:xmpp:ping'/></iq>")
	balcony.ping("p1")
	sent, _, told := nodes.snapshot()
	all := strings.Join(sent, "\n")
	if !strings.Contains(all, "b|juliet@localhost/tomb|<presence") || !strings.Contains(all, "b|juliet@localhost/tomb|<iq") || !strings.Contains(all, "id='q1'") {
		t.Fatalf("sent to node b:\n%s", all)
	}
	if !strings.HasPrefix(told["juliet@localhost/balcony"], "<presence") {
		t.Fatalf("the available presence was not announced: %v", told)
	}
	srv.NodeReplaced("juliet@localhost/balcony")
	if got := balcony.next("</stream:stream>"); !strings.Contains(got, "<conflict") {
		t.Fatalf("replaced from another node: %q", got)
	}
}

// What a node remembers of the messages it delivered itself is taken once
// by its follower, and bounded: a follower that never comes cannot make
// the set grow past deliveredMax.
func TestDeliveredBound(t *testing.T) {
	var d delivered
	m := archive.MessageSent{SenderID: "s1", RecipientID: "r1"}
	d.remember(m)
	if !d.take(m) || d.take(m) {
		t.Fatal("a remembered message is taken exactly once")
	}
	d.remember(archive.MessageSent{}) // archived nowhere: nothing to remember
	if len(d.ids) != 0 {
		t.Fatalf("%d entries for a message in no archive", len(d.ids))
	}
	for i := range deliveredMax + 10 {
		d.remember(archive.MessageSent{SenderID: strconv.Itoa(i)})
	}
	if n := len(d.ids); n > deliveredMax {
		t.Fatalf("%d entries, bound %d", n, deliveredMax)
	}
}
