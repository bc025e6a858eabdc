package mirror

import (
	"testing"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/event/eventtest"
)

// Every mirror event type has a frozen sample that this build still
// reads, with the values it was written with.
func TestFrozenSamples(t *testing.T) {
	posted, applied, linked, reset, refused := eventtest.Sample(t, TypePosted), eventtest.Sample(t, TypeApplied), eventtest.Sample(t, TypeLinked),
		eventtest.Sample(t, TypeReset), eventtest.Sample(t, TypeRefused)
	for _, e := range []event.Envelope{posted, applied, linked, reset, refused} {
		if !event.Verify(nil, e) {
			t.Fatalf("the %s sample does not verify", e.Type)
		}
	}
	s, err := Evolve(State{}, posted)
	if err != nil || !s.IsPending("l-01") || !s.Pending[0].Partitioned || s.Room != "hall@conference.capulet.example" {
		t.Fatalf("after MirrorPosted: %+v %v", s, err)
	}
	if s, err = Evolve(s, applied); err != nil || s.IsPending("l-01") || s.Seq != 7 {
		t.Fatalf("after MirrorApplied: %+v %v", s, err)
	}
	if s, err = Evolve(s, linked); err != nil || !s.Down || s.Version != 3 {
		t.Fatalf("after MirrorLinked: %+v %v", s, err)
	}
	if s, err = Evolve(s, reset); err != nil || s.Seq != 0 || s.Version != 4 {
		t.Fatalf("after MirrorReset: %+v %v", s, err)
	}
	again, err := Evolve(State{}, posted)
	if err != nil {
		t.Fatal(err)
	}
	if again, err = Evolve(again, refused); err != nil || again.IsPending("l-01") {
		t.Fatalf("after MirrorRefused: %+v %v", again, err)
	}
}
