package roster

import (
	"testing"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/event/eventtest"
)

// Every roster event type has a frozen sample that this build still reads;
// folded in order they give the roster they were written from.
func TestFrozenSamples(t *testing.T) {
	var (
		s    State
		prev []byte
	)
	for _, typ := range []event.Type{TypeItemSet, TypeSubscriptionChanged, TypeItemRemoved} {
		e := eventtest.Sample(t, typ)
		if !event.Verify(prev, e) {
			t.Fatalf("%s sample does not chain", typ)
		}
		prev = e.Hash
		var err error
		if s, err = Evolve(s, e); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if typ == TypeSubscriptionChanged {
			it := s.Items["juliet@example.com"]
			if it.Name != "Juliet" || !it.AskOut || it.Subscription != None {
				t.Fatalf("after %s: %+v", typ, it)
			}
		}
	}
	if len(s.Items) != 0 || s.Version != 3 {
		t.Fatalf("after removal: %+v", s)
	}
}
