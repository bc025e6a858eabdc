package push

import (
	"context"

	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/event"
	pushdomain "annals.im/annals/domain/push"
)

// accounts keeps registrations as the account streams would, through the
// domain's Decide and Evolve, and records each event's cause.
type accounts struct {
	mu     sync.Mutex
	st     map[string]pushdomain.State
	causes []string
	ids    *event.IDs
}

func (a *accounts) Push(_ context.Context, acct string) (pushdomain.State, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st[acct], nil
}

func (a *accounts) PushDo(ctx context.Context, acct string, cmd pushdomain.Command) (pushdomain.State, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	evs, err := pushdomain.Decide(a.st[acct], cmd, a.ids, time.Now(), event.Cause(ctx, "push"))
	if err != nil {
		return a.st[acct], false, err
	}
	for _, e := range evs {
		s, err := pushdomain.Evolve(a.st[acct], e)
		if err != nil {
			return s, false, err
		}
		a.st[acct] = s
		a.causes = append(a.causes, e.Cause)
	}
	return a.st[acct], len(evs) > 0, nil
}

type options map[string][]string

func (o options) Put(_ context.Context, acct, node, item string, v []string) error {
	o[acct+"|"+node+"|"+item] = v
	return nil
}

func (o options) Node(_ context.Context, acct, node string) (map[string][]string, error) {
	out := map[string][]string{}
	for k, v := range o {
		if rest, ok := strings.CutPrefix(k, acct+"|"+node+"|"); ok {
			out[rest] = v
		}
	}
	return out, nil
}

func (o options) Delete(_ context.Context, acct, node, item string) error {
	delete(o, acct+"|"+node+"|"+item)
	return nil
}

// sender records what is published and answers as told.
type sender struct {
	mu     sync.Mutex
	sent   []string // to + " " + payload
	answer string   // "" for a result, else an error's type and condition: "cancel item-not-found"
}

func (s *sender) AccountIQ(_ context.Context, from, to jid.JID, typ, payload string) (*stanza.Element, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, to.String()+" "+payload)
	if s.answer == "" {
		return muxtest.Parse("<iq xmlns='jabber:client' type='result' id='x'/>")
	}
	typ, cond, _ := strings.Cut(s.answer, " ")
	return muxtest.Parse("<iq xmlns='jabber:client' type='error' id='x'><error type='" + typ + "'><" + cond + " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
}

func (s *sender) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sent
	s.sent = nil
	return out
}

func world(t *testing.T, cfg Config) (*Service, *accounts, options, *sender, *mux.Mux) {
	t.Helper()
	a := &accounts{st: map[string]pushdomain.State{}, ids: event.NewIDs()}
	o := options{}
	snd := &sender{}
	cfg.Accounts, cfg.Options, cfg.Sender = a, o, snd
	cfg.Local = func(d string) bool { return d == "localhost" }
	s := New(cfg)
	m := mux.New()
	s.Register(m)
	return s, a, o, snd, m
}

const enable = "<iq type='set' id='e'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n1'/></iq>"

// Enable and disable as XEP-0357 §5 and §6 say, each checked and bounded.
func TestEnableDisable(t *testing.T) {
	s, a, o, _, m := world(t, Config{Limits: Limits{Registrations: 2}})
	phone := &muxtest.Session{Full: jid.MustParse("juliet@localhost/phone")}
	ask := func(iq string) string {
		t.Helper()
		got, handled, err := muxtest.Ask(m, mux.Account, phone, "juliet@localhost", iq)
		if !handled || err != nil {
			t.Fatalf("%s: handled %v, %v", iq, handled, err)
		}
		return got
	}
	if got := ask(enable); !strings.Contains(got, "type='result'") {
		t.Fatalf("enable: %s", got)
	}
	want := pushdomain.Registration{Service: "push.example", Node: "n1", Resource: "phone"}
	if r := a.st["juliet@localhost"].Registrations; len(r) != 1 || r[0] != want {
		t.Fatalf("after enable: %+v", r)
	}
	if s.known.none("juliet@localhost") {
		t.Error("an account with a registration is known to have none")
	}
	withOptions := "<iq type='set' id='e2'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n2'><x xmlns='jabber:x:data' type='submit'>" +
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s&lt;3</value></field></x></enable></iq>"
	if got := ask(withOptions); !strings.Contains(got, "type='result'") {
		t.Fatalf("enable with options: %s", got)
	}
	if v := o["juliet@localhost|urn:xmpp:push:0|push.example\nn2"]; len(v) != 1 || !strings.Contains(v[0], "<field var='secret'><value>s&lt;3</value></field>") {
		t.Fatalf("publish-options kept: %q", o)
	}
	for _, c := range []struct{ iq, want string }{
		{"<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n3'/></iq>", "resource-constraint"},
		{"<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' node='n3'/></iq>", "bad-request"},
		{"<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='a@b@c' node='n3'/></iq>", "bad-request"},
		{"<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='push.localhost.example' node='n'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x></enable></iq>", "bad-request"},
		{"<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='localhost' node='n'/></iq>", "not-acceptable"},
		{"<iq type='get' id='x'><enable xmlns='urn:xmpp:push:0' jid='push.example'/></iq>", "bad-request"},
		{"<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='k'><value>" + strings.Repeat("v", maxOptionsBytes) + "</value></field></x></enable></iq>", "not-acceptable"},
	} {
		if got := ask(c.iq); !strings.Contains(got, c.want) {
			t.Errorf("%s: %s, want %s", c.iq, got, c.want)
		}
	}
	if got := ask("<iq type='set' id='d'><disable xmlns='urn:xmpp:push:0' jid='push.example' node='n2'/></iq>"); !strings.Contains(got, "type='result'") {
		t.Fatalf("disable: %s", got)
	}
	if r := a.st["juliet@localhost"].Registrations; len(r) != 1 || r[0] != want {
		t.Fatalf("after disabling n2: %+v", r)
	}
	if len(o) != 0 {
		t.Fatalf("publish-options outlive their registration: %q", o)
	}
	if got := ask("<iq type='set' id='d'><disable xmlns='urn:xmpp:push:0' jid='push.example'/></iq>"); !strings.Contains(got, "type='result'") {
		t.Fatalf("disable all: %s", got)
	}
	if r := a.st["juliet@localhost"].Registrations; len(r) != 0 || !s.known.none("juliet@localhost") {
		t.Fatalf("after disabling the service: %+v", r)
	}
	if f := m.Features(mux.Account); !strings.Contains(strings.Join(f, " "), NS) {
		t.Errorf("the account's features: %v", f)
	}
}

// A message for a sleeping client is published to its node, with the
// publish-options; one for an awake client is not; the sender and body
// only when the operator says so.
func TestNotify(t *testing.T) {
	for _, c := range []struct {
		name           string
		cfg            Config
		awake          []string
		published      bool
		sender, bodied bool
	}{
		{"asleep", Config{}, nil, true, false, false},
		{"another client awake", Config{}, []string{"desk"}, true, false, false},
		{"awake", Config{}, []string{"phone"}, false, false, false},
		{"with sender and body", Config{WithSender: true, WithBody: true}, nil, true, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _, _, snd, m := world(t, c.cfg)
			phone := &muxtest.Session{Full: jid.MustParse("juliet@localhost/phone")}
			muxtest.Ask(m, mux.Account, phone, "juliet@localhost", strings.Replace(enable, "node='n1'/>",
				"node='n1'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>sesame</value></field></x></enable>", 1))
			s.notify(context.Background(), job{acct: "juliet@localhost", sender: "romeo@montague.example/orchard", body: "Wherefore <art> thou", awake: c.awake})
			sent := snd.take()
			if !c.published {
				if len(sent) != 0 {
					t.Fatalf("published for an awake client: %q", sent)
				}
				return
			}
			if len(sent) != 1 {
				t.Fatalf("published %d times: %q", len(sent), sent)
			}
			p := sent[0]
			for _, w := range []string{"push.example <pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n1'><item><notification xmlns='urn:xmpp:push:0'>",
				"<field var='message-count'><value>1</value></field>", "<publish-options><x xmlns='jabber:x:data' type='submit'>", "<value>sesame</value>"} {
				if !strings.Contains(p, w) {
					t.Errorf("the publish lacks %s:\n%s", w, p)
				}
			}
			if got := strings.Contains(p, "last-message-sender'><value>romeo@montague.example/orchard<"); got != c.sender {
				t.Errorf("sender told: %v, want %v\n%s", got, c.sender, p)
			}
			if got := strings.Contains(p, "last-message-body'><value>Wherefore &lt;art&gt; thou<"); got != c.bodied {
				t.Errorf("body told: %v, want %v\n%s", got, c.bodied, p)
			}
		})
	}
}

// A node whose service refuses for good (cancel, auth) is disabled at
// once; one that fails otherwise after MaxErrors in a row, a success
// starting the row again. Each disabling is the server's event.
func TestErrorsDisable(t *testing.T) {
	s, a, _, snd, m := world(t, Config{})
	phone := &muxtest.Session{Full: jid.MustParse("juliet@localhost/phone")}
	msg := job{acct: "juliet@localhost", sender: "romeo@montague.example/orchard"}
	registered := func() int { return len(a.st["juliet@localhost"].Registrations) }

	muxtest.Ask(m, mux.Account, phone, "juliet@localhost", enable)
	snd.answer = "wait resource-constraint"
	s.notify(context.Background(), msg)
	s.notify(context.Background(), msg)
	snd.answer = ""
	s.notify(context.Background(), msg) // ends the row
	snd.answer = "wait resource-constraint"
	s.notify(context.Background(), msg)
	s.notify(context.Background(), msg)
	if registered() != 1 {
		t.Fatalf("disabled after errors a success interrupted")
	}
	s.notify(context.Background(), msg)
	if registered() != 0 {
		t.Fatalf("still registered after %d errors in a row", DefaultMaxErrors)
	}

	muxtest.Ask(m, mux.Account, phone, "juliet@localhost", enable)
	snd.answer = "cancel item-not-found"
	s.notify(context.Background(), msg)
	if registered() != 0 {
		t.Fatal("still registered after a cancel error")
	}
	if got := a.causes[len(a.causes)-1]; got != "server:push" {
		t.Errorf("the disabling's cause: %q", got)
	}
	if n := len(snd.take()); n != 7 {
		t.Errorf("%d publishes, want 7", n)
	}
}

// Message never blocks: past the queue, messages are dropped; an account
// known to have no registrations is not queued at all.
func TestQueueBound(t *testing.T) {
	s, _, _, _, _ := world(t, Config{Limits: Limits{Queue: 2}})
	done := make(chan struct{})
	go func() {
		for range 10 {
			s.Message("juliet@localhost", "romeo@montague.example/o", "hi", nil)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Message blocked with the queue full")
	}
	if n := len(s.queue); n != 2 {
		t.Fatalf("%d queued, want the bound, 2", n)
	}
	s.notify(context.Background(), <-s.queue) // learns there are none
	<-s.queue
	s.Message("juliet@localhost", "romeo@montague.example/o", "hi", nil)
	if n := len(s.queue); n != 0 {
		t.Errorf("a message for an account without registrations was queued")
	}
}
