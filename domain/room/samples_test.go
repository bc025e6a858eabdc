package room

import (
	"testing"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/event/eventtest"
)

// Every room event type has a frozen sample that this build still reads,
// with the values it was written with.
func TestFrozenSamples(t *testing.T) {
	read := func(typ event.Type) event.Envelope { return eventtest.Sample(t, typ) }
	if !event.Verify(nil, read(TypeCreated)) {
		t.Fatal("RoomCreated sample does not verify")
	}
	s := State{}
	var err error
	for _, typ := range []event.Type{TypeCreated, TypeJoined, TypeConfigured, TypeAffiliationSet, TypePresenceChanged,
		TypeNickChanged, TypeSubjectSet, TypeMessagePosted, TypeRoleSet} {
		if s, err = Evolve(s, read(typ)); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
	}
	romeo, jules := s.Occupants["romeo@example.com"], s.Occupants["juliet@example.com"]
	if s.JID != "hall@conference.example.com" || s.Locked || s.Config.Name != "The hall" || s.Config.PasswordHash == "" ||
		s.Affiliation("juliet@example.com") != Member || romeo.Nick != "Romeo" || romeo.Role != Moderator ||
		jules.Nick != "Jules" || jules.Show != "chat" || jules.Role != Visitor || s.Subject != "Verona" || s.Messages != 1 {
		t.Fatalf("samples fold to %+v", s)
	}
	var m MessagePosted
	if err := read(TypeMessagePosted).Decode(Schema, &m); err != nil || m.Stanza == "" || m.ID == "" || m.Nick != "Jules" {
		t.Fatalf("message sample: %+v %v", m, err)
	}
	var r MessageRetracted
	if err := read(TypeMessageRetracted).Decode(Schema, &r); err != nil || r.ID == "" || !r.Moderated || r.Author != "juliet@example.com" {
		t.Fatalf("retraction sample: %+v %v", r, err)
	}
	if s, err = Evolve(s, read(TypeMessageRetracted)); err != nil || s.Messages != 1 {
		t.Fatalf("after the retraction: %+v %v", s, err)
	}
	vc := read(TypeVCardSet)
	if !event.Verify(nil, vc) {
		t.Fatal("RoomVCardSet sample does not verify")
	}
	if s, err = Evolve(s, vc); err != nil || len(s.VCard.PhotoHashes) != 1 || s.VCard.PhotoHashes[0] != avatarSHA1 || s.VCard.XML == "" {
		t.Fatalf("after the vCard: %+v %v", s.VCard, err)
	}
	if s, err = Evolve(s, read(TypeLeft)); err != nil || len(s.Occupants) != 1 {
		t.Fatalf("after the kick: %+v %v", s.Occupants, err)
	}
	if s, err = Evolve(s, read(TypeDestroyed)); err != nil || s.Exists {
		t.Fatalf("after destruction: %+v %v", s, err)
	}
}
