package upload

import (
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/event/eventtest"
)

// The slot grant has a frozen sample that this build still reads, with
// the values it was written with.
func TestFrozenSamples(t *testing.T) {
	t.Parallel()
	e := eventtest.Sample(t, TypeSlotGranted)
	if !event.Verify(nil, e) {
		t.Fatal("the sample does not verify as a stream's first event")
	}
	var g Granted
	if err := e.Decode(Schema, &g); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 30, 12, 30, 0, 123456789, time.UTC)
	want := Granted{Slot: "3f6c0a9e1b2d4c5e8f7a6b5c4d3e2f10", Filename: "très cool.jpg", Size: 23456, ContentType: "image/jpeg",
		PutBefore: at.Add(5 * time.Minute), Expires: at.Add(30 * 24 * time.Hour)}
	if g != want {
		t.Fatalf("UploadSlotGranted reads %+v", g)
	}
	s, err := Evolve(State{}, e)
	if err != nil || len(s.Slots) != 1 || s.Used(at) != 23456 || s.Used(want.Expires) != 0 {
		t.Fatalf("after UploadSlotGranted: %+v %v", s, err)
	}
}
