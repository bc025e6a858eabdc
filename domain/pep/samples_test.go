package pep

import (
	"testing"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/event/eventtest"
)

// Every PEP event type has a frozen sample that this build still reads.
func TestFrozenSamples(t *testing.T) {
	var s State
	var prev []byte
	for _, typ := range []event.Type{TypeItemPublished, TypeItemRetracted} {
		e := eventtest.Sample(t, typ)
		if !event.Verify(prev, e) {
			t.Fatalf("%s sample does not chain", typ)
		}
		prev = e.Hash
		var err error
		if s, err = Evolve(s, e); err != nil {
			t.Fatal(err)
		}
		if typ == TypeItemPublished {
			n := s.Nodes["urn:xmpp:bookmarks:1"]
			if it, ok := n.Item("hall@conference.example.com"); !ok || it.Payload == "" || n.Config.AccessModel != Whitelist {
				t.Fatalf("published sample reads as %+v", n)
			}
		}
	}
	if len(s.Nodes["urn:xmpp:bookmarks:1"].Items) != 0 {
		t.Fatal("retraction sample did not retract")
	}
}
