package account_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
)

// samplesDir holds the frozen envelopes; domain/event checks that they
// re-encode byte for byte, this file checks that the account rules still read
// them. Together they stand for a log written by an earlier build.
const samplesDir = "../../testdata/events"

// lifecycle is the order the samples were written in: one account's stream.
var lifecycle = []event.Type{account.TypeCreated, account.TypePasswordChanged, account.TypeDeleted}

func readSample(t *testing.T, typ event.Type, schema int) event.Envelope {
	t.Helper()
	name := filepath.Join(samplesDir, fmt.Sprintf("%s.v%d.json", typ, schema))
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("every account event type needs a frozen sample at the current schema: %v", err)
	}
	var e event.Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if e.Type != typ || e.Schema != schema {
		t.Fatalf("%s holds a %s schema %d event", name, e.Type, e.Schema)
	}
	return e
}

// TestSamplesDecode reads each sample's data with the struct this build uses
// for it. A renamed JSON field would decode to a zero value, so the values
// are checked, not only the absence of an error.
func TestSamplesDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ   event.Type
		into  func() any
		check func(t *testing.T, v any)
	}{
		{account.TypeCreated, func() any { return new(account.Created) }, func(t *testing.T, v any) {
			d := v.(*account.Created)
			if _, err := account.ParseJID(d.JID); err != nil {
				t.Errorf("jid %q: %v", d.JID, err)
			}
		}},
		{account.TypePasswordChanged, func() any { return new(account.PasswordChanged) }, func(t *testing.T, v any) {
			if d := v.(*account.PasswordChanged); len(d.Mechanisms) == 0 {
				t.Errorf("no mechanisms in %+v", d)
			}
		}},
		{account.TypeDeleted, func() any { return new(account.Deleted) }, func(t *testing.T, v any) {
			if d := v.(*account.Deleted); d.Reason == "" {
				t.Errorf("no reason in %+v", d)
			}
		}},
		{account.TypeContentErased, func() any { return new(account.ContentErased) }, func(t *testing.T, v any) {
			if d := v.(*account.ContentErased); len(d.Keys) != 2 || d.Reason == "" {
				t.Errorf("keys or reason missing in %+v", d)
			}
		}},
		{account.TypeWentOffline, func() any { return new(account.WentOffline) }, func(t *testing.T, v any) {
			if d := v.(*account.WentOffline); d.Status == "" {
				t.Errorf("no status in %+v", d)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(string(tc.typ), func(t *testing.T) {
			t.Parallel()
			// given
			e := readSample(t, tc.typ, account.Schema)
			// when
			v := tc.into()
			err := e.Decode(account.Schema, v)
			// then
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, v)
		})
	}
}

// TestSamplesReplay folds the samples through Evolve as a store would replay
// the stream, checks the hash chain across them, and checks that Decide on the
// state before each sample still writes the same data.
func TestSamplesReplay(t *testing.T) {
	t.Parallel()
	// given
	samples := make([]event.Envelope, len(lifecycle))
	for i, typ := range lifecycle {
		samples[i] = readSample(t, typ, account.Schema)
	}
	ids := event.NewIDs()
	// when, then
	var (
		s    account.State
		prev []byte
	)
	for i, e := range samples {
		if e.Version != uint64(i+1) {
			t.Errorf("%s has version %d, want %d", e.Type, e.Version, i+1)
		}
		if e.Stream != samples[0].Stream {
			t.Errorf("%s is in stream %q, want %q", e.Type, e.Stream, samples[0].Stream)
		}
		if !event.Verify(prev, e) {
			t.Errorf("%s (version %d) does not chain from the sample before it", e.Type, e.Version)
		}
		prev = e.Hash

		cmd := command(t, e)
		evs, err := account.Decide(s, cmd, ids, e.OccurredAt, e.Cause)
		if err != nil {
			t.Fatalf("Decide(%+v, %#v): %v", s, cmd, err)
		}
		if len(evs) != 1 || evs[0].Type != e.Type || evs[0].Schema != e.Schema ||
			!bytes.Equal(evs[0].Data, e.Data) || evs[0].Cause != e.Cause || !evs[0].OccurredAt.Equal(e.OccurredAt) {
			t.Errorf("Decide now writes %+v, the frozen sample is %+v", evs, e)
		}

		if s, err = account.Evolve(s, e); err != nil {
			t.Fatalf("Evolve(%s): %v", e.Type, err)
		}
		if i == 0 {
			j, err := account.ParseJID(s.JID)
			if err != nil || e.Stream != account.Stream(j) {
				t.Errorf("state JID %q (%v) does not name stream %q", s.JID, err, e.Stream)
			}
		}
	}
	want := account.State{JID: "juliet@example.com", Exists: false, Version: 3}
	if s != want {
		t.Errorf("state after replay = %+v, want %+v", s, want)
	}
}

// command rebuilds the command that produced sample e.
func command(t *testing.T, e event.Envelope) account.Command {
	t.Helper()
	switch e.Type {
	case account.TypeCreated:
		var d account.Created
		if err := e.Decode(account.Schema, &d); err != nil {
			t.Fatal(err)
		}
		j, err := account.ParseJID(d.JID)
		if err != nil {
			t.Fatal(err)
		}
		return account.Create{JID: j}
	case account.TypePasswordChanged:
		var d account.PasswordChanged
		if err := e.Decode(account.Schema, &d); err != nil {
			t.Fatal(err)
		}
		return account.ChangePassword(d)
	case account.TypeDeleted:
		var d account.Deleted
		if err := e.Decode(account.Schema, &d); err != nil {
			t.Fatal(err)
		}
		return account.Delete(d)
	}
	t.Fatalf("no command makes %s", e.Type)
	return nil
}
