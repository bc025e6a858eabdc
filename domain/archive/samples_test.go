package archive

import (
	"testing"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/event/eventtest"
)

func readSample(t *testing.T, typ event.Type) event.Envelope { return eventtest.Sample(t, typ) }

// Every archive event type has a frozen sample that this build still
// reads, with the values it was written with.
func TestFrozenSamples(t *testing.T) {
	e := readSample(t, TypeMessageSent)
	if !event.Verify(nil, e) {
		t.Fatal("MessageSent sample does not verify")
	}
	var m MessageSent
	if err := e.Decode(Schema, &m); err != nil {
		t.Fatal(err)
	}
	if m.From != "romeo@example.com/orchard" || m.To != "juliet@example.com" || m.Kind != "chat" || m.Stanza == "" ||
		m.SenderID != ArchiveID("5f3c1a0d9e2b7c44", "8a54s") || m.RecipientID == "" || !m.Offline {
		t.Fatalf("MessageSent sample reads as %+v", m)
	}
	if e.Stream != Stream(m.From[:len("romeo@example.com")], m.To) {
		t.Fatalf("stream %s", e.Stream)
	}

	p := readSample(t, TypePrefsSet)
	prefs, err := EvolvePrefs(Prefs{}, p)
	if err != nil || prefs.Default != Roster || len(prefs.Always) != 1 || len(prefs.Never) != 1 {
		t.Fatalf("prefs sample reads as %+v, %v", prefs, err)
	}
	d := readSample(t, TypeOfflineDelivered)
	if !event.Verify(p.Hash, d) {
		t.Fatal("OfflineDelivered sample does not chain after the prefs sample")
	}
	var od OfflineDelivered
	if err := d.Decode(Schema, &od); err != nil || od.Through != m.RecipientID {
		t.Fatalf("OfflineDelivered sample reads as %+v, %v", od, err)
	}
	x := readSample(t, TypeExpired)
	var ex Expired
	if err := x.Decode(Schema, &ex); err != nil || ex.Before.Year() != 2025 || x.Stream != ExpiryStream || !event.Verify(nil, x) {
		t.Fatalf("Expired sample reads as %+v, %v", ex, err)
	}
}
