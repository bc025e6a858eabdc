package push

import (
	"testing"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/event/eventtest"
)

// Every push event type has a frozen sample that this build still reads,
// with the values it was written with: an enable with publish-options,
// then the service's error disabling it, chained in one account's stream.
func TestFrozenSamples(t *testing.T) {
	t.Parallel()
	en, dis := eventtest.Sample(t, TypeEnabled), eventtest.Sample(t, TypeDisabled)
	if !event.Verify(nil, en) || !event.Verify(en.Hash, dis) {
		t.Fatal("the samples do not verify as one stream's first two events")
	}
	s, err := Evolve(State{}, en)
	want := Registration{Service: "push.conversations.example", Node: "yxs32uqsflafdk3iuqo", Resource: "phone", Options: true}
	if err != nil || len(s.Registrations) != 1 || s.Registrations[0] != want {
		t.Fatalf("after PushEnabled: %+v %v", s, err)
	}
	var d Disabled
	if err := dis.Decode(Schema, &d); err != nil || d.Reason != "the push service answered item-not-found" || d.All {
		t.Fatalf("PushDisabled reads %+v, %v", d, err)
	}
	if s, err = Evolve(s, dis); err != nil || len(s.Registrations) != 0 {
		t.Fatalf("after PushDisabled: %+v %v", s, err)
	}
}
