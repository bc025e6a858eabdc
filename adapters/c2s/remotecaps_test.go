package c2s

import (
	"context"
	"fmt"
	"testing"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/credentials"
	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
)

// Contacts' resources elsewhere are held as their presence says, bounded
// per contact; a caps string the server knows makes them known at once.
func TestRemoteResources(t *testing.T) {
	remote := &iqRemote{sent: make(chan string, 64)}
	srv, err := NewServer(Config{Domains: []string{"localhost"}, Plaintext: true, Secret: []byte("0123456789abcdef"),
		Credentials: func(context.Context, string) (credentials.Credentials, error) { return credentials.Credentials{}, nil },
		Mux:         mux.New(), Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	presence := func(typ, caps string) *element {
		e, err := stanza.Parse([]byte("<presence xmlns='jabber:client'"+typ+">"+caps+"</presence>"), 16)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	srv.caps.remember("known=", []string{"urn:xmpp:avatar:metadata+notify"})
	caps := "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='known='/>"
	for i := range maxResourcesPerContact + 1 {
		srv.remotePresence(ctx, "juliet@localhost", jid.MustParse(fmt.Sprintf("romeo@montague.example/r%d", i)), presence("", caps))
	}
	got := srv.Available("romeo@montague.example")
	if len(got) != maxResourcesPerContact {
		t.Fatalf("%d resources held, want the bound %d", len(got), maxResourcesPerContact)
	}
	c := got[0].(mux.Capable)
	if yes, known := c.Notifies("urn:xmpp:avatar:metadata"); !yes || !known {
		t.Errorf("a cached caps string: notifies %v, known %v", yes, known)
	}
	if len(srv.Available("juliet@localhost")) != 0 {
		t.Error("a local account's sessions mixed with remote ones")
	}
	srv.remotePresence(ctx, "juliet@localhost", jid.MustParse("romeo@montague.example/r0"), presence(" type='unavailable'", ""))
	srv.remoteGone(jid.MustParse("romeo@montague.example/r1"))
	if n := len(srv.Available("romeo@montague.example")); n != maxResourcesPerContact-2 {
		t.Errorf("%d held after two went, want %d", n, maxResourcesPerContact-2)
	}
	// A notification goes to the resource from the account it names.
	got[0].Deliver("<message xmlns='jabber:client' from='juliet@localhost' to='"+got[0].JID().String()+"' type='headline'/>", false)
	if s := <-remote.sent; rootAttr(s, "from") != "juliet@localhost" {
		t.Errorf("sent %s", s)
	}
	if a := rootAttr(`<message from='o&#39;hara@localhost' to='x'>`, "from"); a != "o'hara@localhost" {
		t.Errorf("rootAttr unescaped %q", a)
	}
}
