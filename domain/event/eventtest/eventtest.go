// Package eventtest helps domain tests read the frozen event samples in
// testdata/events: one per event type and schema, written by an earlier
// build, which this build must still read.
package eventtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"annals.im/annals/domain/event"
)

// Dir is where the samples are, seen from a package in domain/<name>/.
const Dir = "../../testdata/events"

// Sample reads the frozen sample of typ at schema 1.
func Sample(t testing.TB, typ event.Type) event.Envelope {
	t.Helper()
	name := filepath.Join(Dir, string(typ)+".v"+strconv.Itoa(1)+".json")
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("every event type needs a frozen sample at its current schema: %v", err)
	}
	var e event.Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if e.Type != typ {
		t.Fatalf("%s holds a %s event", name, e.Type)
	}
	return e
}
