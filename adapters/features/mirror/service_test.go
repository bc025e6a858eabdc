package mirror

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux/muxtest"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/mirror"
)

// replicas keeps replicas in memory with the domain's own rules.
type replicas struct {
	mu  sync.Mutex
	st  map[string]mirror.State
	ids *event.IDs
}

func (r *replicas) Do(_ context.Context, room string, c any) (mirror.State, []event.Envelope, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st[room]
	evs, err := mirror.Decide(st, c, r.ids, time.Now(), "test")
	if err != nil {
		return st, nil, err
	}
	for i := range evs {
		evs[i].Stream, evs[i].Version = mirror.Stream(room), st.Version+uint64(i)+1
		if st, err = mirror.Evolve(st, evs[i]); err != nil {
			return st, nil, err
		}
	}
	r.st[room] = st
	return st, evs, nil
}

func (r *replicas) Get(_ context.Context, room string) (mirror.State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st[room], nil
}

func (r *replicas) get(room string) mirror.State {
	st, _ := r.Get(context.Background(), room)
	return st
}

// told records what the service handed the accounts here; local are
// their nicks in every room.
type told struct {
	mu      sync.Mutex
	got     []string
	local   []string
	rejoins int
}

func (h *told) FromMirror(from jid.JID, e *stanza.Element) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, from.String()+" "+string(e.Inner))
}

func (h *told) MirroredRooms() []string { return []string{hall} }

func (h *told) LocalNicks(string) map[string]string {
	out := map[string]string{}
	for _, n := range h.local {
		out[n] = strings.ToLower(n) + "@montague.example"
	}
	return out
}

func (h *told) Rejoin(string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rejoins++
}

func (h *told) ToOccupant(user, from jid.JID, e *stanza.Element) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if user.Domainpart() != "montague.example" {
		return false
	}
	h.got = append(h.got, "to "+user.String()+" from "+from.String()+" "+string(e.Inner))
	return true
}

func (h *told) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// wire records what the service sends other servers.
type wire struct {
	mu   sync.Mutex
	sent []string
}

func (w *wire) Send(from, to jid.JID, x string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sent = append(w.sent, from.String()+" -> "+to.String()+" "+x)
}

// waitFor waits for a stanza sent that contains want, and returns it.
func (w *wire) waitFor(t *testing.T, want string) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		w.mu.Lock()
		for _, x := range w.sent {
			if strings.Contains(x, want) {
				w.mu.Unlock()
				return x
			}
		}
		w.mu.Unlock()
	}
	t.Fatalf("nothing sent with %q; sent %v", want, w.sent)
	return ""
}

// newService returns a mirror service of conference.capulet.example
// with replicas, host and wire of the test's.
func newService(t *testing.T, reps *replicas, host *told, w *wire) *Service {
	t.Helper()
	s, err := New(Config{Domain: "mirror.montague.example", MirrorOf: []string{"conference.capulet.example"}, Replicas: reps, Send: w.Send,
		Timeout: time.Minute, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, host)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// handle hands s what from sends, and returns what s answered.
func handle(t *testing.T, s *Service, from, in string) *muxtest.Session {
	t.Helper()
	e, err := muxtest.Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	sess := &muxtest.Session{Full: jid.MustParse(from)}
	if err := s.Handle(context.Background(), sess, e, jid.MustParse("mirror.montague.example")); err != nil {
		t.Fatal(err)
	}
	return sess
}

func roomMsg(seq, nick, body string) string {
	return "<message type='groupchat' from='" + hall + "/" + nick + "'><body>" + body + "</body><dmuc xmlns='urn:xmpp:dmuc:0' seq='" + seq + "'/></message>"
}

// What a peer sends the mirror service, hostile or not: only a mirrored
// service's rooms are heard (anything else gets not-allowed and changes
// nothing); a stanza without its sequence, or with one already applied,
// reaches no account; a malformed roster gets bad-request; a good one
// and the next sequence are applied and handed on once.
func TestHandle(t *testing.T) {
	reps := &replicas{st: map[string]mirror.State{}, ids: event.NewIDs()}
	host := &told{local: []string{"R"}}
	s := newService(t, reps, host, &wire{})
	send := func(from, in string) *muxtest.Session { t.Helper(); return handle(t, s, from, in) }
	msg := func(seq, body string) string { return roomMsg(seq, "J", body) }
	if sess := send("hall@conference.evil.example/X", msg("1", "spoofed")); len(sess.Sent) != 1 || !strings.Contains(sess.Sent[0], "not-allowed") {
		t.Errorf("a room of a service not mirrored: %v", sess.Sent)
	}
	if sess := send("hall@conference.evil.example", "<iq type='set' id='r'><roster xmlns='urn:xmpp:dmuc:0' seq='9'/></iq>"); len(sess.Sent) != 1 || !strings.Contains(sess.Sent[0], "not-allowed") {
		t.Errorf("a roster from a service not mirrored: %v", sess.Sent)
	}
	if sess := send("hall@conference.capulet.example", "<iq type='set' id='r'><roster xmlns='urn:xmpp:dmuc:0'/></iq>"); len(sess.Sent) != 1 || !strings.Contains(sess.Sent[0], "bad-request") {
		t.Errorf("a roster without its sequence: %v", sess.Sent)
	}
	send("hall@conference.capulet.example/J", "<message type='groupchat' from='hall@conference.capulet.example/J'><body>no sequence</body></message>")
	if len(host.all()) != 0 || len(reps.st) != 0 {
		t.Fatalf("refused stanzas changed something: told %v, replicas %v", host.all(), reps.st)
	}
	if sess := send("hall@conference.capulet.example", "<iq type='set' id='r'><roster xmlns='urn:xmpp:dmuc:0' seq='4'><item name='J'/></roster></iq>"); len(sess.Sent) != 1 || !strings.Contains(sess.Sent[0], "type='result'") {
		t.Fatalf("a good roster: %v", sess.Sent)
	}
	send("hall@conference.capulet.example/J", msg("5", "one"))
	send("hall@conference.capulet.example/J", msg("5", "one")) // repeated
	send("hall@conference.capulet.example/J", msg("3", "old")) // from the past
	if got := host.all(); len(got) != 1 || strings.Contains(got[0], "dmuc") || !strings.Contains(got[0], "<body>one</body>") {
		t.Fatalf("told %v; want the one new message, once, without its sequence", got)
	}
	if st := reps.get(hall); st.Seq != 5 || len(st.Occupants) != 1 {
		t.Fatalf("replica %+v", st)
	}
}

// A gap: what came after it waits; the mirror asks the master for what
// follows its last sequence, applies and tells the resend in order, each
// once, and asks again only when the answer says more follows.
func TestResyncAfterGap(t *testing.T) {
	reps := &replicas{st: map[string]mirror.State{}, ids: event.NewIDs()}
	host, w := &told{local: []string{"R"}}, &wire{}
	s := newService(t, reps, host, w)
	handle(t, s, hall, "<iq type='set' id='r'><roster xmlns='urn:xmpp:dmuc:0' seq='4'><item name='J'/></roster></iq>")
	handle(t, s, hall+"/J", roomMsg("5", "J", "five"))
	handle(t, s, hall+"/J", roomMsg("8", "J", "eight")) // 6 and 7 were lost
	ask := w.waitFor(t, "<room xmlns='urn:xmpp:dmuc:0' after='5'/>")
	if got := host.all(); len(got) != 1 {
		t.Fatalf("told %v before the resend; want only five", got)
	}
	id := between(ask, "id='", "'")
	for _, n := range []string{"6", "7", "8"} {
		handle(t, s, hall+"/J", roomMsg(n, "J", "m"+n))
	}
	handle(t, s, hall, "<iq type='result' id='"+id+"'><room xmlns='urn:xmpp:dmuc:0' last='8' complete='true'/></iq>")
	time.Sleep(50 * time.Millisecond)
	got := host.all()
	if len(got) != 4 || !strings.Contains(got[1], "m6") || !strings.Contains(got[2], "m7") || !strings.Contains(got[3], "m8") {
		t.Fatalf("told %v; want five, then 6, 7, 8 once each", got)
	}
	if st := reps.get(hall); st.Seq != 8 {
		t.Fatalf("replica at %d, want 8", st.Seq)
	}
	w.mu.Lock()
	asks := 0
	for _, x := range w.sent {
		if strings.Contains(x, "<room ") {
			asks++
		}
	}
	w.mu.Unlock()
	if asks != 1 {
		t.Fatalf("asked %d times; want once", asks)
	}
}

// A link loss: the accounts here see everyone else leave (333) and keep
// talking, told at once; when the master answers again the room catches
// up, the accounts join again, and what they said goes to the master,
// whose copy is not told again.
func TestPartition(t *testing.T) {
	reps := &replicas{st: map[string]mirror.State{}, ids: event.NewIDs()}
	host, w := &told{local: []string{"R"}}, &wire{}
	s := newService(t, reps, host, w)
	handle(t, s, hall, "<iq type='set' id='r'><roster xmlns='urn:xmpp:dmuc:0' seq='4'><item name='J' affiliation='owner'/><item name='R'/></roster></iq>")
	s.down("conference.capulet.example", "test")
	if !reps.get(hall).Down {
		t.Fatal("the link loss is not in the replica's stream")
	}
	got := host.all()
	if len(got) != 1 || !strings.HasPrefix(got[0], hall+"/J ") || !strings.Contains(got[0], "code='333'") || !strings.Contains(got[0], "type='unavailable'") && !strings.Contains(got[0], "role='none'") {
		t.Fatalf("told %v at the link loss; want J leaving with 333, and nobody else", got)
	}
	wire := "<message xmlns='jabber:client' type='groupchat' from='romeo@montague.example/annals-rooms' to='" + hall + "'><body>alone</body></message>"
	if err := s.Post(context.Background(), jid.MustParse(hall), "romeo@montague.example", "R", wire); err != nil {
		t.Fatal(err)
	}
	got = host.all()
	if len(got) != 2 || !strings.HasPrefix(got[1], hall+"/R ") || !strings.Contains(got[1], "alone") || !strings.Contains(got[1], "origin-id") {
		t.Fatalf("told %v; want the post at once, from the room", got)
	}
	st := reps.get(hall)
	if len(st.Pending) != 1 || !st.Pending[0].Partitioned {
		t.Fatalf("pending %+v", st.Pending)
	}
	localID := st.Pending[0].LocalID
	if err := s.Post(context.Background(), jid.MustParse(hall), "romeo@montague.example", "R",
		"<message xmlns='jabber:client' type='groupchat' from='romeo@montague.example/annals-rooms' to='"+hall+"'><body>again</body><origin-id xmlns='urn:xmpp:sid:0' id='"+localID+"'/></message>"); err == nil {
		t.Fatal("a post with an origin-id that waits already was taken")
	}

	// The master answers a ping: the link is back.
	handle(t, s, "conference.capulet.example", "<iq type='result' id='"+pingPrefix+"1'/>")
	ask := w.waitFor(t, "after='4'")
	if reps.get(hall).Down {
		t.Fatal("the link's return is not in the replica's stream")
	}
	handle(t, s, hall+"/J", roomMsg("5", "J", "meanwhile"))
	handle(t, s, hall, "<iq type='result' id='"+between(ask, "id='", "'")+"'><room xmlns='urn:xmpp:dmuc:0' last='5' complete='true'/></iq>")
	w.waitFor(t, "<body>alone</body>")
	host.mu.Lock()
	rejoins := host.rejoins
	host.mu.Unlock()
	if rejoins != 1 {
		t.Fatalf("%d rejoins; want 1", rejoins)
	}
	handle(t, s, hall+"/R", "<message type='groupchat' from='"+hall+"/R'><body>alone</body><origin-id xmlns='urn:xmpp:sid:0' id='"+localID+"'/><dmuc xmlns='urn:xmpp:dmuc:0' seq='6'/></message>")
	got = host.all()
	if len(got) != 3 || !strings.Contains(got[2], "meanwhile") {
		t.Fatalf("told %v; want the master's message of the partition, and the post not again", got)
	}
	if st := reps.get(hall); len(st.Pending) != 0 || st.Seq != 6 {
		t.Fatalf("replica %+v; want the post accepted at 6", st)
	}
}

// between is the text of s between the first before and the after that follows.
func between(s, before, after string) string {
	_, rest, _ := strings.Cut(s, before)
	out, _, _ := strings.Cut(rest, after)
	return out
}

// A stanza for one user (a join refused, ProtoXEP §3.2.2) comes to the
// user's escaped JID at the mirror: it reaches that user, and only an
// account of this server's occupant JID; it changes no replica.
func TestForOneUser(t *testing.T) {
	reps := &replicas{st: map[string]mirror.State{}, ids: event.NewIDs()}
	host := &told{}
	s := newService(t, reps, host, &wire{})
	refusal := func(to string) {
		e, err := muxtest.Parse("<presence type='error' from='" + hall + "/Nurse'><x xmlns='http://jabber.org/protocol/muc'/>" +
			"<error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Handle(context.Background(), &muxtest.Session{Full: jid.MustParse(hall + "/Nurse")}, e, jid.MustParse(to)); err != nil {
			t.Fatal(err)
		}
	}
	refusal(`romeo\40montague.example\2fannals-rooms@mirror.montague.example`)
	refusal(`tybalt\40evil.example\2fx@mirror.montague.example`)
	got := host.all()
	if len(got) != 1 || !strings.HasPrefix(got[0], "to romeo@montague.example/annals-rooms from "+hall+"/Nurse ") || !strings.Contains(got[0], "conflict") {
		t.Fatalf("told %v; want the refusal for romeo, once", got)
	}
	if len(reps.st) != 0 {
		t.Fatalf("replicas %v", reps.st)
	}
}

// The master refuses a post (its sender was banned while the link was
// lost): the post the refusal's id names, of that account, waits no more;
// another account's post with the same id is not touched.
func TestRefused(t *testing.T) {
	reps := &replicas{st: map[string]mirror.State{}, ids: event.NewIDs()}
	s := newService(t, reps, &told{local: []string{"R", "B"}}, &wire{})
	s.down("conference.capulet.example", "test")
	ctx := context.Background()
	for _, p := range []struct{ acct, nick, id string }{{"romeo@montague.example", "R", "m1"}, {"benvolio@montague.example", "B", "m1"}, {"romeo@montague.example", "R", "m2"}} {
		wire := "<message xmlns='jabber:client' type='groupchat' id='" + p.id + "' from='" + p.acct + "/annals-rooms' to='" + hall + "'><body>" + p.id + "</body></message>"
		if err := s.Post(ctx, jid.MustParse(hall), p.acct, p.nick, wire); err != nil {
			t.Fatal(err)
		}
	}
	s.Refused(ctx, jid.MustParse(hall), "romeo@montague.example", "m1", "forbidden")
	s.Refused(ctx, jid.MustParse(hall), "romeo@montague.example", "", "forbidden") // names nothing
	st := reps.get(hall)
	var left []string
	for _, p := range st.Pending {
		left = append(left, p.Account+" "+between(p.Stanza, "id='", "'"))
	}
	if !slices.Equal(left, []string{"benvolio@montague.example m1", "romeo@montague.example m2"}) {
		t.Fatalf("pending %v", left)
	}
}

// A master may not make the mirror keep a replica of a room no account
// here is in: its roster gets not-acceptable and its stanzas are
// dropped, nothing applied.
func TestRoomNobodyIsIn(t *testing.T) {
	reps := &replicas{st: map[string]mirror.State{}, ids: event.NewIDs()}
	host := &told{}
	s := newService(t, reps, host, &wire{})
	if sess := handle(t, s, hall, "<iq type='set' id='r'><roster xmlns='urn:xmpp:dmuc:0' seq='4'><item name='J'/></roster></iq>"); len(sess.Sent) != 1 ||
		!strings.Contains(sess.Sent[0], "not-acceptable") {
		t.Fatalf("a roster of a room nobody here is in: %v", sess.Sent)
	}
	handle(t, s, hall+"/J", roomMsg("5", "J", "unasked"))
	if len(reps.st) != 0 || len(host.all()) != 0 {
		t.Fatalf("replicas %v, told %v", reps.st, host.all())
	}
}
