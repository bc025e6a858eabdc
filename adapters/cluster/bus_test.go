package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"annals.im/annals/adapters/cluster"
)

func natsURL(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

// recorder is a Handler that remembers what it was handed.
type recorder struct {
	mu       sync.Mutex
	got      []string // "to|wire"
	gone     []string // full JIDs
	detached []string // "room acct"
}

func (r *recorder) Replaced(full string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, "replaced|"+full)
}

func (r *recorder) AttachmentGone(room, acct string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.detached = append(r.detached, room+" "+acct)
}

func (r *recorder) FromPeer(to, wire string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, to+"|"+wire)
}

func (r *recorder) PeerGone(full, presence string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gone = append(r.gone, full)
}

func (r *recorder) snapshot() (got, gone []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...), append([]string(nil), r.gone...)
}

type node struct {
	*cluster.Bus
	nc  *nats.Conn
	rec *recorder
}

func join(t *testing.T, url, name string, tune func(*cluster.Options)) *node {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	opts := cluster.Options{Node: name, Heartbeat: 50 * time.Millisecond, Missed: 3}
	if tune != nil {
		tune(&opts)
	}
	b, err := cluster.New(nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if err := b.Start(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return &node{b, nc, rec}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sessions(n *node, bare string) string {
	var parts []string
	for _, s := range n.Sessions(bare) {
		parts = append(parts, s.Node+":"+s.JID+"="+s.Presence)
	}
	return strings.Join(parts, " ")
}

func TestSessionsAndDelivery(t *testing.T) {
	url := natsURL(t)
	a := join(t, url, "a", nil)
	// Sessions announced before b joins reach it by sync.
	a.Announce("alice@example.com/phone", true, "<presence from='alice@example.com/phone'/>")
	a.Announce("alice@example.com/laptop", true, "")
	b := join(t, url, "b", nil)
	want := "a:alice@example.com/laptop= a:alice@example.com/phone=<presence from='alice@example.com/phone'/>"
	eventually(t, "b to learn a's sessions", func() bool { return sessions(b, "alice@example.com") == want })
	a.Announce("alice@example.com/laptop", true, "<presence from='alice@example.com/laptop'><show>away</show></presence>")
	a.Announce("alice@example.com/phone", false, "")
	want = "a:alice@example.com/laptop=<presence from='alice@example.com/laptop'><show>away</show></presence>"
	eventually(t, "b to follow a's changes", func() bool { return sessions(b, "alice@example.com") == want })
	if s := sessions(a, "alice@example.com"); s != "" {
		t.Fatalf("a lists its own sessions as another node's: %s", s)
	}

	b.Send("a", "alice@example.com/laptop", "<iq type='get' id='1'/>")
	eventually(t, "a to be handed b's stanza", func() bool {
		got, _ := a.rec.snapshot()
		return len(got) == 1 && got[0] == "alice@example.com/laptop|<iq type='get' id='1'/>"
	})
	b.Replace("a", "alice@example.com/laptop")
	eventually(t, "a to be asked to end its session", func() bool {
		got, _ := a.rec.snapshot()
		return len(got) == 2 && got[1] == "replaced|alice@example.com/laptop"
	})
	if n := b.Nodes(); n["a"] != 1 || len(n) != 1 {
		t.Fatalf("b's nodes: %v", n)
	}
}

// A node that stops cleanly takes its sessions along without their being
// reported lost; one that stops answering has its available ones reported
// gone within the missed heartbeats; a restarted node's old sessions are
// gone too.
func TestNodeLoss(t *testing.T) {
	url := natsURL(t)
	a := join(t, url, "a", nil)
	b := join(t, url, "b", nil)
	b.Announce("bob@example.com/x", true, "<presence/>")
	b.Announce("bob@example.com/y", true, "") // bound, never available
	eventually(t, "a to see b's sessions", func() bool { return len(a.Sessions("bob@example.com")) == 2 })
	b.Close()
	eventually(t, "a to forget b", func() bool { return len(a.Sessions("bob@example.com")) == 0 })
	if _, gone := a.rec.snapshot(); len(gone) != 0 {
		t.Fatalf("a clean stop reported sessions gone: %v", gone)
	}

	c := join(t, url, "c", nil)
	c.Announce("carol@example.com/x", true, "<presence/>")
	c.Announce("carol@example.com/y", true, "")
	eventually(t, "a to see c's sessions", func() bool { return len(a.Sessions("carol@example.com")) == 2 })
	start := time.Now()
	c.nc.Close() // dies: no goodbye, no heartbeats
	eventually(t, "a to report c's session gone", func() bool { _, gone := a.rec.snapshot(); return len(gone) == 1 })
	if _, gone := a.rec.snapshot(); gone[0] != "carol@example.com/x" {
		t.Fatalf("gone: %v, want only the available session", gone)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("loss noticed after %v; 3 missed heartbeats of 50ms should take ~150-200ms", took)
	}
	if len(a.Sessions("carol@example.com")) != 0 {
		t.Fatal("a lost node's sessions are still listed")
	}
}

func TestNodeNamesAreUnique(t *testing.T) {
	url := natsURL(t)
	join(t, url, "a", nil)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b, err := cluster.New(nc, cluster.Options{Node: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background(), &recorder{}); err == nil || !strings.Contains(err.Error(), "another node") {
		t.Fatalf("a second node named a: %v", err)
	}
	for _, bad := range []string{"", "a.b", "a*", "a b", strings.Repeat("x", 65)} {
		if _, err := cluster.New(nc, cluster.Options{Node: bad}); err == nil {
			t.Errorf("node name %q accepted", bad)
		}
	}
}

// Every table is bounded: a node follows at most MaxSessions of another's,
// keeps presences up to MaxPresence, forwards stanzas up to MaxStanza.
func TestBounds(t *testing.T) {
	url := natsURL(t)
	a := join(t, url, "a", func(o *cluster.Options) { o.MaxSessions = 3; o.MaxPresence = 64; o.MaxStanza = 100 })
	b := join(t, url, "b", func(o *cluster.Options) { o.MaxSessions = 10; o.MaxPresence = 64 })
	for i := range 5 {
		b.Announce(fmt.Sprintf("u@example.com/%d", i), true, "")
	}
	b.Announce("v@example.com/big", true, "<presence>"+strings.Repeat("x", 100)+"</presence>")
	time.Sleep(300 * time.Millisecond) // several heartbeats, resyncs included
	if n := len(a.Sessions("u@example.com")) + len(a.Sessions("v@example.com")); n != 3 {
		t.Fatalf("a follows %d of b's sessions, want its bound of 3", n)
	}
	a.Announce("w@example.com/big", true, "<presence>"+strings.Repeat("x", 100)+"</presence>")
	eventually(t, "b to see a's session", func() bool { return len(b.Sessions("w@example.com")) == 1 })
	if p := b.Sessions("w@example.com")[0].Presence; p != "<presence from='w@example.com/big'/>" {
		t.Fatalf("an oversized presence kept as %q", p)
	}
	b.Send("a", "w@example.com/big", strings.Repeat("y", 200))
	b.Send("a", "w@example.com/big", "<message/>")
	eventually(t, "a to get the small stanza", func() bool { got, _ := a.rec.snapshot(); return len(got) == 1 })
	if got, _ := a.rec.snapshot(); got[0] != "w@example.com/big|<message/>" {
		t.Fatalf("a got %v", got)
	}
}

// Watch hears every live node's heartbeat, with what it says.
func TestWatch(t *testing.T) {
	url := natsURL(t)
	a := join(t, url, "a", func(o *cluster.Options) { o.Position = func() uint64 { return 42 } })
	join(t, url, "b", nil)
	a.Announce("alice@example.com/x", true, "")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	st, err := cluster.Watch(context.Background(), nc, "", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Node != "a" || st[0].Sessions != 1 || st[0].Position != 42 || st[1].Node != "b" || st[1].Sessions != 0 {
		t.Fatalf("watched %+v", st)
	}
}

// An account's attachments to rooms on one node are known on the others,
// by best show, until they end, the node says goodbye or dies.
func TestAttachments(t *testing.T) {
	url := natsURL(t)
	a := join(t, url, "a", nil)
	b := join(t, url, "b", nil)
	c := join(t, url, "c", nil)
	rank := func(s string) int { return map[string]int{"chat": 0, "": 1, "away": 2, "xa": 4}[s] }
	shows := func(n *node) string {
		show, ok := n.Attached("lounge@conference.example.com", "alice@example.com", rank)
		return fmt.Sprintf("%s %v", show, ok)
	}
	a.Attach("lounge@conference.example.com", "alice@example.com", "away", true)
	eventually(t, "b to see a's attachment", func() bool { return shows(b) == "away true" })
	c.Attach("lounge@conference.example.com", "alice@example.com", "", true)
	eventually(t, "b to see the best show of a's and c's", func() bool { return shows(b) == " true" })
	if got := shows(a); got != " true" {
		t.Fatalf("a sees %q of the others' attachments, want c's", got)
	}
	if len(b.Sessions("alice@example.com")) != 0 {
		t.Fatal("an attachment is listed as a session")
	}
	c.Attach("lounge@conference.example.com", "alice@example.com", "", false)
	eventually(t, "c's detachment", func() bool { return shows(b) == "away true" })
	a.nc.Close() // a dies
	eventually(t, "a's attachments to go with it", func() bool { return shows(b) == " false" })
	if _, gone := b.rec.snapshot(); len(gone) != 0 {
		t.Fatalf("attachments reported as lost sessions: %v", gone)
	}
	eventually(t, "b to be told of the attachment lost", func() bool {
		b.rec.mu.Lock()
		defer b.rec.mu.Unlock()
		return len(b.rec.detached) == 1 && b.rec.detached[0] == "lounge@conference.example.com alice@example.com"
	})
}

// What a peer (or anything else on the bus) sends that is not what a node
// sends is dropped: unreadable announcements, a claim to be this node,
// oversized or unaddressed stanzas, unreadable sync requests. Nothing is
// kept of them and the node keeps working.
func TestHostilePeer(t *testing.T) {
	url := natsURL(t)
	a := join(t, url, "a", func(o *cluster.Options) { o.MaxStanza = 1000 })
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, bad := range []string{"", "not json", `{"node":""}`, `{"node":"a","inc":"forged","seq":1,"jid":"x@example.com/r","bound":true}`, strings.Repeat("[", 1<<16)} {
		if err := nc.Publish("annals.bus.sessions", []byte(bad)); err != nil {
			t.Fatal(err)
		}
	}
	m := nats.NewMsg("annals.bus.node.a.deliver")
	m.Data = []byte("<message/>") // no To
	nc.PublishMsg(m)
	big := nats.NewMsg("annals.bus.node.a.deliver")
	big.Header.Set("To", "x@example.com/r")
	big.Data = []byte(strings.Repeat("x", 1001))
	nc.PublishMsg(big)
	if _, err := nc.Request("annals.bus.node.a.sync", []byte("not json"), 200*time.Millisecond); err == nil {
		t.Fatal("an unreadable sync request was answered")
	}
	nc.Flush()
	time.Sleep(200 * time.Millisecond)
	if got, _ := a.rec.snapshot(); len(got) != 0 {
		t.Fatalf("handed on: %d stanzas, the first %.80q", len(got), got[0])
	}
	if len(a.Sessions("x@example.com")) != 0 || len(a.Nodes()) != 0 {
		t.Fatalf("kept: %v %v", a.Sessions("x@example.com"), a.Nodes())
	}
	// Still working: a real node is followed.
	b := join(t, url, "b", nil)
	b.Announce("y@example.com/r", true, "")
	eventually(t, "a to follow b", func() bool { return len(a.Sessions("y@example.com")) == 1 })
}
