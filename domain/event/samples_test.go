package event_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"annals.im/annals/domain/event"
)

// samplesDir holds one frozen envelope per event type and schema. The files
// are written once and never regenerated: they stand for events already in
// someone's log, which this build must go on reading and re-encoding byte
// for byte.
const samplesDir = "../../testdata/events"

// TestFrozenSamples decodes every sample and re-encodes it the way it was
// written (json.MarshalIndent with two spaces, then one newline). Any change
// to the wire format or to what Envelope keeps shows up as a byte difference.
func TestFrozenSamples(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(samplesDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no samples in %s", samplesDir)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			// given
			frozen, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			// when
			var e event.Envelope
			if err := json.Unmarshal(frozen, &e); err != nil {
				t.Fatalf("decode: %v", err)
			}
			again, err := json.MarshalIndent(e, "", "  ")
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			again = append(again, '\n')
			// then
			if want := fmt.Sprintf("%s.v%d.json", e.Type, e.Schema); filepath.Base(file) != want {
				t.Errorf("file holds a %s schema %d event; name it %s", e.Type, e.Schema, want)
			}
			if !bytes.Equal(again, frozen) {
				t.Errorf("re-encoding differs from the frozen sample\n%s", firstDiff(frozen, again))
			}
			// The hash covers normalized data: a sample whose data Normalize
			// would rewrite could never have been stored with that hash.
			normal := e
			if err := normal.Normalize(); err != nil {
				t.Errorf("sample does not normalize: %v", err)
			} else if !bytes.Equal(normal.Data, e.Data) || !normal.OccurredAt.Equal(e.OccurredAt) {
				t.Errorf("Normalize changes the sample: data %s, want %s", normal.Data, e.Data)
			}
			if e.Version == 0 || e.Position.IsZero() || len(e.Hash) != 32 {
				t.Errorf("a stored event needs a version, a position and a hash: %+v", e)
			}
		})
	}
}

// firstDiff describes the first line where got differs from want.
func firstDiff(want, got []byte) string {
	wl := strings.Split(string(want), "\n")
	gl := strings.Split(string(got), "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g || i >= len(wl) || i >= len(gl) {
			return fmt.Sprintf("line %d:\nfrozen:     %q\nre-encoded: %q", i+1, w, g)
		}
	}
	return "no line differs"
}
