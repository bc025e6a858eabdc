package c2s

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/blocking"
	"annals.im/annals/domain/event"
)

// memBlocking keeps the block lists as the account streams do, in
// memory: Block decides with the domain's rules, appends, and hands the
// events to the server's Publish in order, after the answer, as the log
// follower does. reads counts what would be reads of the log.
type memBlocking struct {
	mu      sync.Mutex
	streams map[string][]event.Envelope
	ids     *event.IDs
	log     chan []event.Envelope
	reads   atomic.Int64
}

func newMemBlocking() *memBlocking {
	return &memBlocking{streams: make(map[string][]event.Envelope), ids: event.NewIDs(), log: make(chan []event.Envelope, 64)}
}

// follow publishes what Block appends to srv, until the test ends.
func (m *memBlocking) follow(t *testing.T, srv *Server) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case batch := <-m.log:
				srv.Publish(ctx, batch)
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func (m *memBlocking) fold(acct string) blocking.State {
	var st blocking.State
	for _, e := range m.streams[acct] {
		st, _ = blocking.Evolve(st, e)
	}
	return st
}

func (m *memBlocking) Blocklist(_ context.Context, acct string) (blocking.State, error) {
	m.reads.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fold(acct), nil
}

func (m *memBlocking) Block(_ context.Context, acct string, cmd blocking.Command) (before, after blocking.State, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	before = m.fold(acct)
	evs, err := blocking.Decide(before, cmd, m.ids, time.Now(), "test")
	if err != nil {
		return before, before, err
	}
	for i := range evs {
		evs[i].Stream, evs[i].Version = account.StreamOf(acct), uint64(len(m.streams[acct])+1)
		m.streams[acct] = append(m.streams[acct], evs[i])
	}
	if len(evs) > 0 {
		m.log <- evs
	}
	return before, m.fold(acct), nil
}

// tape reads a raw client's stream and finds things in it in order.
type tape struct {
	c   *rawClient
	buf string
	pos int
}

// next reads until want comes after what was found last, and returns
// what came in between, want included.
func (t *tape) next(want string) string {
	t.c.t.Helper()
	chunk := make([]byte, 4096)
	for {
		if i := strings.Index(t.buf[t.pos:], want); i >= 0 {
			got := t.buf[t.pos : t.pos+i+len(want)]
			t.pos += i + len(want)
			return got
		}
		n, err := t.c.r.Read(chunk)
		t.buf += string(chunk[:n])
		if err != nil {
			t.c.t.Fatalf("waiting for %q: %v; after the last find: %q", want, err, t.buf[t.pos:])
		}
	}
}

// all reads until each of wants comes after what was found last, in any
// order, and returns what came up to the last of them.
func (t *tape) all(wants ...string) string {
	t.c.t.Helper()
	start, end := t.pos, t.pos
	for _, w := range wants {
		t.pos = start
		t.next(w)
		end = max(end, t.pos)
	}
	t.pos = end
	return t.buf[start:end]
}

// ping asks the server and returns what came before its answer.
func (t *tape) ping(id string) string {
	t.c.t.Helper()
	t.c.send("<iq type='get' id='" + id + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	return t.next("id='" + id + "'")
}

func login(t *testing.T, addr, user, res string) *tape {
	t.Helper()
	c := dial(t, addr)
	c.nc.SetDeadline(time.Now().Add(20 * time.Second))
	c.loginAs(user, res)
	return &tape{c: c}
}

// XEP-0191 end to end in the session core, Juliet blocking Romeo (each
// sees the other's presence): the list, its pushes to the sessions that
// asked for it, presence on block and unblock, and every kind of stanza
// stopped both ways, without a read of the log per stanza.
func TestBlocking(t *testing.T) {
	mem := newMemBlocking()
	var srv *Server
	addr := serverMounting(t, func(cfg *Config) { cfg.Accounts, cfg.Blocking, cfg.MaxBlockedJIDs = lovers{}, mem, 3 },
		func(s *Server) { srv = s })
	mem.follow(t, srv)

	balcony, garden := login(t, addr, "juliet", "balcony"), login(t, addr, "juliet", "garden")
	orchard := login(t, addr, "romeo", "orchard")
	for _, c := range []*tape{balcony, garden, orchard} {
		c.c.send("<presence/>")
	}
	orchard.all("from='juliet@localhost/balcony'", "from='juliet@localhost/garden'")
	balcony.next("from='romeo@localhost/orchard'")
	garden.next("from='romeo@localhost/orchard'")

	balcony.c.send("<iq type='get' id='l1'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	if got := balcony.next("id='l1'"); !strings.Contains(balcony.next("</iq>"), "<blocklist xmlns='urn:xmpp:blocking'></blocklist>") {
		t.Fatalf("the empty list: %q", got)
	}
	balcony.c.send("<iq type='set' id='b0'><block xmlns='urn:xmpp:blocking'/></iq>")
	if got := balcony.next("</iq>"); !strings.Contains(got, "id='b0'") || !strings.Contains(got, "<bad-request") {
		t.Fatalf("a block without items: %q", got)
	}
	balcony.c.send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='Romeo@localhost'/></block></iq>")
	// The answer, the push to the session that asked (from the log: before
	// or after the answer); Romeo no longer sees her, nor she him.
	if got := balcony.all("type='result' id='b1'", "<block xmlns='urn:xmpp:blocking'><item jid='romeo@localhost'/></block></iq>",
		"type='unavailable' from='romeo@localhost/orchard'"); strings.Contains(got, "id='b1'><error") {
		t.Fatalf("block: %q", got)
	}
	orchard.all("type='unavailable' from='juliet@localhost/balcony'", "type='unavailable' from='juliet@localhost/garden'")
	garden.next("type='unavailable' from='romeo@localhost/orchard'")
	if got := garden.ping("g1"); strings.Contains(got, "urn:xmpp:blocking") {
		t.Fatalf("a push to a session that never asked for the list: %q", got)
	}

	// What Romeo sends her is refused or dropped.
	orchard.c.send("<message to='juliet@localhost' type='chat' id='m1'><body>hear me</body></message>")
	if got := orchard.next("id='m1'"); !strings.Contains(orchard.next("</message>"), "<service-unavailable") {
		t.Fatalf("a blocked chat message: %q", got)
	}
	orchard.c.send("<message to='juliet@localhost/garden' type='headline' id='m2'><body>news</body></message>")
	orchard.c.send("<presence to='juliet@localhost/garden'><status>directed</status></presence>")
	orchard.c.send("<presence><status>to all</status></presence>")
	orchard.c.send("<presence to='juliet@localhost' type='subscribe'/>")
	orchard.c.send("<iq type='get' id='q1' to='juliet@localhost/garden'><query xmlns='jabber:iq:version'/></iq>")
	if got := orchard.next("id='q1'"); !strings.Contains(orchard.next("</iq>"), "<service-unavailable") {
		t.Fatalf("a blocked IQ: %q", got)
	}
	orchard.c.send("<iq type='get' id='q2' to='juliet@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if got := orchard.next("</iq>"); !strings.Contains(got, "id='q2'") || !strings.Contains(got, "<service-unavailable") {
		t.Fatalf("a blocked IQ to her bare JID: %q", got)
	}
	if got := orchard.ping("o1"); strings.Contains(got, "id='m2'") || strings.Contains(got, "juliet@localhost") {
		t.Fatalf("a headline or presence answered: %q", got)
	}
	for _, c := range []*tape{balcony, garden} {
		if got := c.ping("j1"); strings.Contains(got, "romeo@localhost") {
			t.Fatalf("Juliet got something from Romeo: %q", got)
		}
	}

	// What she sends him is refused, saying why.
	garden.c.send("<message to='romeo@localhost' type='chat' id='m3'><body>wherefore</body></message>")
	got := garden.next("id='m3'") + garden.next("</message>")
	if !strings.Contains(got, "<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>") || !strings.Contains(got, "<blocked xmlns='urn:xmpp:blocking:errors'/>") {
		t.Fatalf("a message to a blocked JID: %q", got)
	}
	garden.c.send("<iq type='get' id='q3' to='romeo@localhost/orchard'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := garden.next("id='q3'") + garden.next("</iq>"); !strings.Contains(got, "<blocked xmlns='urn:xmpp:blocking:errors'/>") {
		t.Fatalf("an IQ to a blocked JID: %q", got)
	}
	// Her own resources are never blocked from each other, whatever she blocks.
	balcony.c.send("<iq type='set' id='b2'><block xmlns='urn:xmpp:blocking'><item jid='localhost'/></block></iq>")
	balcony.all("type='result' id='b2'", "<item jid='localhost'/></block></iq>")
	garden.c.send("<message to='juliet@localhost/balcony' type='chat' id='m4'><body>note</body></message>")
	if got := balcony.next("id='m4'"); strings.Contains(got, "type='error'") {
		t.Fatalf("her own message: %q", got)
	}
	balcony.c.send("<iq type='set' id='b3'><block xmlns='urn:xmpp:blocking'><item jid='a@localhost'/><item jid='b@localhost'/></block></iq>")
	if got := balcony.next("id='b3'") + balcony.next("</iq>"); !strings.Contains(got, "<resource-constraint") {
		t.Fatalf("past --max-blocked-jids: %q", got)
	}

	// Unblocking all: he sees her again, she him, and his message goes through.
	balcony.c.send("<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'/></iq>")
	balcony.all("type='result' id='u1'", "<unblock xmlns='urn:xmpp:blocking'></unblock></iq>", "<status>to all</status>")
	orchard.all("from='juliet@localhost/balcony'", "from='juliet@localhost/garden'")
	garden.next("<status>to all</status>")
	orchard.c.send("<message to='juliet@localhost' type='chat' id='m5'><body>again</body></message>")
	if got := garden.next("<body>again</body>"); strings.Contains(got, "type='error'") {
		t.Fatalf("after the unblock: %q", got)
	}
	balcony.c.send("<iq type='get' id='l2'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	if got := balcony.next("id='l2'") + balcony.next("</iq>"); !strings.Contains(got, "<blocklist xmlns='urn:xmpp:blocking'></blocklist>") {
		t.Fatalf("the list after unblocking all: %q", got)
	}
	// Two accounts' lists, each read once: never per stanza.
	if n := mem.reads.Load(); n > 2 {
		t.Fatalf("%d reads of the block lists for a few dozen stanzas", n)
	}
}

// offlineArchive holds messages that waited for Juliet, and records how
// far their delivery went.
type offlineArchive struct {
	mu        sync.Mutex
	waiting   []archive.Entry
	delivered string
}

func (a *offlineArchive) Exists(context.Context, string) (bool, error) { return true, nil }
func (a *offlineArchive) Record(context.Context, archive.Send) (archive.MessageSent, error) {
	return archive.MessageSent{}, nil
}

func (a *offlineArchive) Offline(context.Context, string, int) ([]archive.Entry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, m := range a.waiting {
		if m.ID == a.delivered {
			return a.waiting[i+1:], nil
		}
	}
	return a.waiting, nil
}

func (a *offlineArchive) Delivered(_ context.Context, _, through string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.delivered = through
	return nil
}

// A message that waited offline from a JID blocked since is not handed
// over (XEP-0191 §3.3: nothing from it after the block), and counts as
// delivered with the rest.
func TestBlockedOfflineMessages(t *testing.T) {
	mem := newMemBlocking()
	msg := func(from, id string) archive.Entry {
		return archive.Entry{ID: id, At: time.Now(), Stanza: "<message xmlns='jabber:client' from='" + from + "' to='juliet@localhost' type='chat' id='" + id + "'><body>" + id + "</body></message>"}
	}
	arch := &offlineArchive{waiting: []archive.Entry{msg("romeo@localhost/orchard", "r1"), msg("nurse@localhost/chamber", "n1"), msg("romeo@localhost/orchard", "r2")}}
	var srv *Server
	addr := serverMounting(t, func(cfg *Config) { cfg.Accounts, cfg.Blocking, cfg.Archive = lovers{}, mem, arch }, func(s *Server) { srv = s })
	mem.follow(t, srv)
	j := login(t, addr, "juliet", "balcony")
	j.c.send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='romeo@localhost'/></block></iq>")
	j.next("type='result' id='b1'")
	j.c.send("<presence/>")
	if got := j.next("<body>n1</body>"); strings.Contains(got, "<body>r1</body>") {
		t.Fatalf("a blocked JID's message that waited: %q", got)
	}
	if got := j.ping("p1"); strings.Contains(got, "<body>r2</body>") {
		t.Fatalf("a blocked JID's message that waited: %q", got)
	}
	arch.mu.Lock()
	defer arch.mu.Unlock()
	if arch.delivered != "r2" {
		t.Fatalf("delivered through %q, want r2", arch.delivered)
	}
}

// What a user at another server sends an account that blocks its domain
// is refused (a chat message, an IQ get) or dropped (presence, a
// subscription, a probe, an IQ answer) before anything is recorded or
// delivered; what the account sends there is refused with <blocked/>
// and never leaves.
func TestBlockingFederated(t *testing.T) {
	mem := newMemBlocking()
	remote := &sentRemote{}
	var srv *Server
	addr := serverMounting(t, func(cfg *Config) { cfg.Accounts, cfg.Blocking, cfg.Remote = lovers{}, mem, remote },
		func(s *Server) { srv = s })
	mem.follow(t, srv)
	j := login(t, addr, "juliet", "balcony")
	j.c.send("<presence/>")
	j.next("from='juliet@localhost/balcony'")
	j.c.send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='montague.example'/></block></iq>")
	j.next("type='result' id='b1'")

	from, to := jid.MustParse("romeo@montague.example/orchard"), jid.MustParse("juliet@localhost")
	ctx := context.Background()
	for _, in := range []string{
		"<message xmlns='jabber:server' type='chat' id='m1'><body>from afar</body></message>",
		"<iq xmlns='jabber:server' type='get' id='q1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
		"<presence xmlns='jabber:server'><status>afar</status></presence>",
		"<presence xmlns='jabber:server' type='subscribe'/>",
		"<presence xmlns='jabber:server' type='probe'/>",
		"<iq xmlns='jabber:server' type='result' id='q2'/>",
		"<message xmlns='jabber:server' type='headline' id='m2'><body>news</body></message>",
	} {
		e, err := stanza.Parse([]byte(in), 8)
		if err != nil {
			t.Fatal(err)
		}
		srv.FromRemote(ctx, from, to, e)
	}
	remote.mu.Lock()
	sent := strings.Join(remote.sent, "\n")
	remote.mu.Unlock()
	for _, id := range []string{"m1", "q1"} {
		if !strings.Contains(sent, "id='"+id+"'") {
			t.Errorf("%s was not refused: %q", id, sent)
		}
	}
	if n := strings.Count(sent, "<service-unavailable"); n != 2 || strings.Contains(sent, "<presence") || strings.Contains(sent, "id='m2'") {
		t.Errorf("what went back: %q", sent)
	}
	if got := j.ping("p1"); strings.Contains(got, "montague.example") {
		t.Fatalf("Juliet got something from a blocked domain: %q", got)
	}
	j.c.send("<message to='romeo@montague.example' type='chat' id='m3'><body>to afar</body></message>")
	if got := j.next("id='m3'") + j.next("</message>"); !strings.Contains(got, "<blocked xmlns='urn:xmpp:blocking:errors'/>") {
		t.Fatalf("a message to a blocked domain: %q", got)
	}
	if n := remote.count(); n != 2 {
		t.Fatalf("%d stanzas went to other servers, want the 2 errors", n)
	}
}
