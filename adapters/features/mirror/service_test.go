package mirror

import (
	"context"
	"io"
	"log/slog"
	"strings"
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
	st  map[string]mirror.State
	ids *event.IDs
}

func (r *replicas) Do(_ context.Context, room string, c any) (mirror.State, []event.Envelope, error) {
	st := r.st[room]
	evs, err := mirror.Decide(st, c, r.ids, time.Now(), "test")
	if err != nil {
		return st, nil, err
	}
	for i, e := range evs {
		e.Stream, e.Version = mirror.Stream(room), st.Version+uint64(i)+1
		if st, err = mirror.Evolve(st, e); err != nil {
			return st, nil, err
		}
	}
	r.st[room] = st
	return st, evs, nil
}

// told records what the service handed the accounts here.
type told struct{ got []string }

func (h *told) FromMirror(from jid.JID, e *stanza.Element) {
	h.got = append(h.got, from.String()+" "+string(e.Inner))
}

// What a peer sends the mirror service, hostile or not: only a mirrored
// service's rooms are heard (anything else gets not-allowed and changes
// nothing); a stanza without its sequence, or with one already applied,
// reaches no account; a malformed roster gets bad-request; a good one
// and the next sequence are applied and handed on once.
func TestHandle(t *testing.T) {
	reps := &replicas{st: map[string]mirror.State{}, ids: event.NewIDs()}
	host := &told{}
	s, err := New(Config{Domain: "mirror.montague.example", MirrorOf: []string{"conference.capulet.example"}, Replicas: reps,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, host)
	if err != nil {
		t.Fatal(err)
	}
	me := jid.MustParse("mirror.montague.example")
	send := func(from, in string) *muxtest.Session {
		t.Helper()
		e, err := muxtest.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		sess := &muxtest.Session{Full: jid.MustParse(from)}
		if err := s.Handle(context.Background(), sess, e, me); err != nil {
			t.Fatal(err)
		}
		return sess
	}
	msg := func(seq, body string) string {
		return "<message type='groupchat' from='hall@conference.capulet.example/J'><body>" + body + "</body><dmuc xmlns='urn:xmpp:dmuc:0' seq='" + seq + "'/></message>"
	}
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
	if len(host.got) != 0 || len(reps.st) != 0 {
		t.Fatalf("refused stanzas changed something: told %v, replicas %v", host.got, reps.st)
	}
	if sess := send("hall@conference.capulet.example", "<iq type='set' id='r'><roster xmlns='urn:xmpp:dmuc:0' seq='4'><item name='J'/></roster></iq>"); len(sess.Sent) != 1 || !strings.Contains(sess.Sent[0], "type='result'") {
		t.Fatalf("a good roster: %v", sess.Sent)
	}
	send("hall@conference.capulet.example/J", msg("5", "one"))
	send("hall@conference.capulet.example/J", msg("5", "one")) // repeated
	send("hall@conference.capulet.example/J", msg("3", "old")) // from the past
	if len(host.got) != 1 || strings.Contains(host.got[0], "dmuc") || !strings.Contains(host.got[0], "<body>one</body>") {
		t.Fatalf("told %v; want the one new message, once, without its sequence", host.got)
	}
	if st := reps.st["hall@conference.capulet.example"]; st.Seq != 5 || len(st.Occupants) != 1 {
		t.Fatalf("replica %+v", st)
	}
}
