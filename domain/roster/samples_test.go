package roster

import (
	"encoding/json"
	"os"
	"testing"

	"annals.im/annals/domain/event"
)

// Every roster event type has a frozen sample that this build still reads;
// folded in order they give the roster they were written from.
func TestFrozenSamples(t *testing.T) {
	var (
		s    State
		prev []byte
	)
	for _, typ := range []event.Type{TypeItemSet, TypeSubscriptionChanged, TypeItemRemoved} {
		b, err := os.ReadFile("../../testdata/events/" + string(typ) + ".v1.json")
		if err != nil {
			t.Fatalf("no frozen sample for %s: %v", typ, err)
		}
		var e event.Envelope
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		if !event.Verify(prev, e) {
			t.Fatalf("%s sample does not chain", typ)
		}
		prev = e.Hash
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
