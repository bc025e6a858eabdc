package vcard

import (
	"testing"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/event/eventtest"
)

// The VCardSet sample is still read, with the values it was written with.
func TestFrozenSamples(t *testing.T) {
	e := eventtest.Sample(t, TypeSet)
	if !event.Verify(nil, e) {
		t.Fatal("VCardSet sample does not verify")
	}
	s, err := Evolve(State{}, e)
	if a, ok := s.Card.Avatar(); err != nil || !s.Set || !ok || a != pngSHA1 {
		t.Fatalf("sample folds to %+v (%v)", s, err)
	}
	// The hash kept is the one Parse computes from the XML kept.
	if c, err := Parse(s.Card.XML, 0); err != nil || c.XML != s.Card.XML || c.PhotoHashes[0] != pngSHA1 {
		t.Fatalf("the sample's vCard parses to %+v (%v)", c, err)
	}
}
