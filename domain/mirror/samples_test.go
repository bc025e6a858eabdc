package mirror

import (
	"testing"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/event/eventtest"
)

// Every mirror event type has a frozen sample that this build still
// reads, with the values it was written with.
func TestFrozenSamples(t *testing.T) {
	posted, applied, linked, reset := eventtest.Sample(t, TypePosted), eventtest.Sample(t, TypeApplied), eventtest.Sample(t, TypeLinked), eventtest.Sample(t, TypeReset)
	if !event.Verify(nil, posted) || !event.Verify(nil, applied) || !event.Verify(nil, linked) || !event.Verify(nil, reset) {
		t.Fatal("a sample does not verify")
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
}
