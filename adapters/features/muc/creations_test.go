package muc

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// Room creations are counted per account in a sliding window; the state
// holds at most roomCreationKeys accounts.
func TestRoomCreations(t *testing.T) {
	now := time.Unix(1e9, 0)
	r := newRoomCreations(2, time.Minute)
	r.now = func() time.Time { return now }
	for range 2 {
		if err := r.allow("a"); err != nil {
			t.Fatal(err)
		}
		r.created("a")
	}
	if err := r.allow("a"); !errors.Is(err, errTooManyRooms) {
		t.Fatalf("third in the window: %v", err)
	}
	if err := r.allow("b"); err != nil {
		t.Fatalf("another account: %v", err)
	}
	now = now.Add(61 * time.Second)
	if err := r.allow("a"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if len(r.times) != 0 {
		t.Fatalf("expired accounts kept: %d", len(r.times))
	}
	for i := range roomCreationKeys + 100 {
		r.created(fmt.Sprint("acct", i))
	}
	if len(r.times) > roomCreationKeys {
		t.Fatalf("%d accounts remembered, bound %d", len(r.times), roomCreationKeys)
	}
	off := newRoomCreations(-1, time.Minute)
	for range 100 {
		off.created("a")
	}
	if err := off.allow("a"); err != nil || len(off.times) != 0 {
		t.Fatalf("no limit: %v, %d keys", err, len(off.times))
	}
}
