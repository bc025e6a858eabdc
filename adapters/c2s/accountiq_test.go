package c2s

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/credentials"
	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
)

// iqRemote records what goes to other servers.
type iqRemote struct {
	sent chan string
}

func (r *iqRemote) Send(_, _ jid.JID, s string) { r.sent <- s }

// An account's IQ to another server takes its answer only from the JID
// asked, to the account that asked, by its id; a bounce answers it too;
// the IQs awaiting answers are bounded.
func TestAccountIQ(t *testing.T) {
	remote := &iqRemote{sent: make(chan string, 8)}
	srv, err := NewServer(Config{Domains: []string{"localhost"}, Plaintext: true, Secret: []byte("0123456789abcdef"),
		Credentials: func(context.Context, string) (credentials.Credentials, error) { return credentials.Credentials{}, nil },
		Mux:         mux.New(), Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	juliet, push := jid.MustParse("juliet@localhost"), jid.MustParse("push.example")
	idOf := regexp.MustCompile(`id='([0-9a-f]+)'`)
	ask := func() (chan *stanza.Element, string) {
		got := make(chan *stanza.Element, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			a, _ := srv.AccountIQ(ctx, juliet, push, "set", "<pubsub xmlns='http://jabber.org/protocol/pubsub'/>")
			got <- a
		}()
		return got, idOf.FindStringSubmatch(<-remote.sent)[1]
	}
	answer := func(id string) *stanza.Element {
		e, err := stanza.Parse([]byte("<iq xmlns='jabber:client' type='result' id='"+id+"'/>"), 16)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	got, id := ask()
	if srv.answered(juliet, "evil.example", answer(id)) || srv.answered(jid.MustParse("romeo@localhost"), "push.example", answer(id)) {
		t.Fatal("an answer from another JID, or to another account, was taken")
	}
	if !srv.answered(juliet, "push.example", answer(id)) {
		t.Fatal("the answer was not taken")
	}
	if a := <-got; a == nil || a.Attr("type") != "result" {
		t.Fatalf("AccountIQ returned %v", a)
	}
	if srv.answered(juliet, "push.example", answer(id)) {
		t.Fatal("an answer was taken twice")
	}

	// A bounce: the IQ could not be delivered.
	got, id = ask()
	srv.Bounce("<iq xmlns='jabber:client' type='set' id='"+id+"' from='juliet@localhost' to='push.example'><pubsub xmlns='http://jabber.org/protocol/pubsub'/></iq>", "remote-server-not-found")
	if a := <-got; a == nil || stanza.ErrorCondition(a) != "remote-server-not-found" {
		t.Fatalf("after a bounce AccountIQ returned %v", a)
	}

	if _, err := srv.AccountIQ(context.Background(), juliet, jid.MustParse("romeo@localhost"), "get", ""); !errors.Is(err, ErrNotRemote) {
		t.Errorf("an IQ to an account here: %v", err)
	}
	srv.awaited.mu.Lock()
	srv.awaited.m = make(map[string]awaitedIQ, MaxAwaitedIQs)
	for i := range MaxAwaitedIQs {
		srv.awaited.m[string(rune(i))] = awaitedIQ{}
	}
	srv.awaited.mu.Unlock()
	if _, err := srv.AccountIQ(context.Background(), juliet, push, "set", ""); !errors.Is(err, ErrTooManyIQs) {
		t.Errorf("past the bound: %v", err)
	}
}
