package sealing

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/oklog/ulid/v2"
)

// What a Codec holds in memory stays within its bounds however much it
// sees: held keys, tombstones, and opened events by count and by bytes.
func TestCodecBounds(t *testing.T) {
	c := New(&memKeys{}, true)
	secret := make([]byte, 32)
	for i := range MaxHeldKeys + 10 {
		if _, err := c.hold(Key{ID: fmt.Sprint(i), Secret: secret}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.held); n > MaxHeldKeys || n == 0 {
		t.Errorf("%d keys held, bound %d", n, MaxHeldKeys)
	}
	ids := make([]string, MaxTombstones+10)
	for i := range ids {
		ids[i] = fmt.Sprint("gone", i)
	}
	c.forget(ids)
	if n := len(c.gone); n != MaxTombstones || len(c.goneFIFO) != MaxTombstones {
		t.Errorf("%d tombstones (%d in order), bound %d", n, len(c.goneFIFO), MaxTombstones)
	}
	if !c.gone[ids[len(ids)-1]] || c.gone[ids[0]] {
		t.Error("the oldest tombstones should go first")
	}
	small := json.RawMessage(`{"stanza":"x"}`)
	for range MaxOpened + 10 {
		c.remember(ulid.Make(), small, Key{ID: "k"})
	}
	if n := len(c.opened); n != MaxOpened {
		t.Errorf("%d opened events kept, bound %d", n, MaxOpened)
	}
	big := make(json.RawMessage, MaxOpenedSize/16)
	for range 32 {
		c.remember(ulid.Make(), big, Key{ID: "k"})
	}
	if c.openSize > MaxOpenedSize {
		t.Errorf("%d bytes of opened events kept, bound %d", c.openSize, MaxOpenedSize)
	}
}
