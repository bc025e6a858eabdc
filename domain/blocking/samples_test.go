package blocking

import (
	"slices"
	"testing"

	"mellium.im/xmpp/jid"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/event/eventtest"
)

// Every blocking event type has a frozen sample that this build still
// reads, with the values it was written with: a block of three kinds of
// JID, then an unblock of one, chained in one account's stream.
func TestFrozenSamples(t *testing.T) {
	t.Parallel()
	b, u := eventtest.Sample(t, TypeBlocked), eventtest.Sample(t, TypeUnblocked)
	if !event.Verify(nil, b) || !event.Verify(b.Hash, u) {
		t.Fatal("the samples do not verify as one stream's first two events")
	}
	s, err := Evolve(State{}, b)
	want := []string{"romeo@montague.example", "iago@shakespeare.example/phone", "spam.example"}
	if err != nil || !slices.Equal(s.JIDs, want) || s.Version != 1 {
		t.Fatalf("after JIDsBlocked: %+v %v", s, err)
	}
	if s, err = Evolve(s, u); err != nil || !slices.Equal(s.JIDs, want[1:]) || s.Version != 2 {
		t.Fatalf("after JIDsUnblocked: %+v %v", s, err)
	}
	if !s.Blocks(jid.MustParse("eve@spam.example/x")) || s.Blocks(jid.MustParse("romeo@montague.example")) {
		t.Fatalf("the folded list matches wrongly: %+v", s)
	}
}
