package blocking

import (
	"errors"
	"slices"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/domain/event"
)

const stream = "account-juliet@example.com"

// given folds events (numbered from 1) into a state, as the account's
// stream owner does.
func given(t *testing.T, evs []event.Envelope) State {
	t.Helper()
	var s State
	for i, e := range evs {
		if err := e.Normalize(); err != nil {
			t.Fatal(err)
		}
		e.Stream, e.Version = stream, uint64(i+1)
		var err error
		if s, err = Evolve(s, e); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func decided(t *testing.T, s State, c Command) []event.Envelope {
	t.Helper()
	evs, err := Decide(s, c, event.NewIDs(), time.Unix(1800000000, 0), "test")
	if err != nil {
		t.Fatalf("%+v: %v", c, err)
	}
	return evs
}

// Given the events of earlier commands, when a command, then its events
// (their data) or its error, and the list afterwards.
func TestDecide(t *testing.T) {
	t.Parallel()
	romeo, iago, spam := "romeo@montague.example", "iago@shakespeare.example/phone", "spam.example"
	cases := []struct {
		name    string
		given   []Command
		when    Command
		then    []any // the data of the events decided, in order
		err     error
		list    []string // after folding them
		version uint64   // after folding them
	}{
		{name: "block one", when: Block{JIDs: []string{romeo}},
			then: []any{Blocked{JIDs: []string{romeo}}}, list: []string{romeo}, version: 1},
		{name: "block several, any kind of JID", when: Block{JIDs: []string{romeo, iago, spam}},
			then: []any{Blocked{JIDs: []string{romeo, iago, spam}}}, list: []string{romeo, iago, spam}, version: 1},
		{name: "block nothing", when: Block{}, err: ErrInvalid},
		{name: "block a JID that is none", when: Block{JIDs: []string{romeo, "@example.com"}}, err: ErrMalformed},
		{name: "block an empty JID", when: Block{JIDs: []string{""}}, err: ErrMalformed},
		{name: "block in another spelling: canonical, once", when: Block{JIDs: []string{"Romeo@Montague.Example", romeo}},
			then: []any{Blocked{JIDs: []string{romeo}}}, list: []string{romeo}, version: 1},
		{name: "block again: no change, no event", given: []Command{Block{JIDs: []string{romeo}}}, when: Block{JIDs: []string{romeo}},
			list: []string{romeo}, version: 1},
		{name: "block one more beside one blocked: only the new one", given: []Command{Block{JIDs: []string{romeo}}},
			when: Block{JIDs: []string{romeo, spam}}, then: []any{Blocked{JIDs: []string{spam}}}, list: []string{romeo, spam}, version: 2},
		{name: "block up to the limit", given: []Command{Block{JIDs: []string{romeo}}},
			when: Block{JIDs: []string{spam}, Limits: Limits{MaxJIDs: 2}}, then: []any{Blocked{JIDs: []string{spam}}}, list: []string{romeo, spam}, version: 2},
		{name: "block past the limit: nothing of it", given: []Command{Block{JIDs: []string{romeo}}},
			when: Block{JIDs: []string{spam, iago}, Limits: Limits{MaxJIDs: 2}}, err: ErrFull, list: []string{romeo}, version: 1},
		{name: "a full list takes again what it has", given: []Command{Block{JIDs: []string{romeo, spam}}},
			when: Block{JIDs: []string{spam}, Limits: Limits{MaxJIDs: 2}}, list: []string{romeo, spam}, version: 1},
		{name: "unblock one", given: []Command{Block{JIDs: []string{romeo, spam}}}, when: Unblock{JIDs: []string{romeo}},
			then: []any{Unblocked{JIDs: []string{romeo}}}, list: []string{spam}, version: 2},
		{name: "unblock one not blocked: no change, no event", given: []Command{Block{JIDs: []string{spam}}}, when: Unblock{JIDs: []string{romeo}},
			list: []string{spam}, version: 1},
		{name: "unblock blocked and not: only the blocked", given: []Command{Block{JIDs: []string{romeo, spam}}},
			when: Unblock{JIDs: []string{iago, spam}}, then: []any{Unblocked{JIDs: []string{spam}}}, list: []string{romeo}, version: 2},
		{name: "unblock a JID that is none", given: []Command{Block{JIDs: []string{romeo}}}, when: Unblock{JIDs: []string{"a@b@c"}},
			err: ErrMalformed, list: []string{romeo}, version: 1},
		{name: "unblock all", given: []Command{Block{JIDs: []string{romeo}}, Block{JIDs: []string{spam}}}, when: Unblock{},
			then: []any{Unblocked{}}, list: nil, version: 3},
		{name: "unblock all of nothing: no event", when: Unblock{}},
		{name: "block after unblocking all", given: []Command{Block{JIDs: []string{romeo}}, Unblock{}}, when: Block{JIDs: []string{spam}},
			then: []any{Blocked{JIDs: []string{spam}}}, list: []string{spam}, version: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var evs []event.Envelope
			for _, c := range tc.given {
				evs = append(evs, decided(t, given(t, evs), c)...)
			}
			s := given(t, evs)
			got, err := Decide(s, tc.when, event.NewIDs(), time.Unix(1800000000, 0), "test")
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if len(got) != len(tc.then) {
				t.Fatalf("%d events, want %d: %v", len(got), len(tc.then), got)
			}
			for i, e := range got {
				if e.Cause != "test" {
					t.Errorf("cause %q", e.Cause)
				}
				switch want := tc.then[i].(type) {
				case Blocked:
					var d Blocked
					if e.Type != TypeBlocked || e.Decode(Schema, &d) != nil || !slices.Equal(d.JIDs, want.JIDs) {
						t.Errorf("event %d: %s %s, want %s %+v", i, e.Type, e.Data, TypeBlocked, want)
					}
				case Unblocked:
					var d Unblocked
					if e.Type != TypeUnblocked || e.Decode(Schema, &d) != nil || !slices.Equal(d.JIDs, want.JIDs) {
						t.Errorf("event %d: %s %s, want %s %+v", i, e.Type, e.Data, TypeUnblocked, want)
					}
				}
			}
			after := given(t, append(evs, got...))
			if !slices.Equal(after.JIDs, tc.list) || after.Version != tc.version {
				t.Fatalf("list afterwards %q at version %d, want %q at %d", after.JIDs, after.Version, tc.list, tc.version)
			}
		})
	}
}

// Evolve never changes a state it was given: a list handed out stays as
// it was, whatever is folded after.
func TestEvolveKeepsStatesValues(t *testing.T) {
	t.Parallel()
	before := given(t, decided(t, State{}, Block{JIDs: []string{"romeo@montague.example"}}))
	evs := append(decided(t, State{}, Block{JIDs: []string{"romeo@montague.example"}}),
		decided(t, before, Block{JIDs: []string{"spam.example"}})...)
	evs = append(evs, decided(t, given(t, evs), Unblock{JIDs: []string{"romeo@montague.example"}})...)
	after := before
	for i, e := range evs[1:] {
		e.Stream, e.Version = stream, uint64(i+2)
		var err error
		if after, err = Evolve(after, e); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(before.JIDs, []string{"romeo@montague.example"}) || !before.Has("romeo@montague.example") || before.Has("spam.example") {
		t.Fatalf("the earlier state changed: %+v", before)
	}
	if !slices.Equal(after.JIDs, []string{"spam.example"}) || after.Has("romeo@montague.example") {
		t.Fatalf("the later state: %+v", after)
	}
}

// XEP-0191 §5: what each kind of entry blocks, and what it does not.
func TestBlocks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		entry   string
		blocked []string
		free    []string
	}{
		{"romeo@montague.example/orchard",
			[]string{"romeo@montague.example/orchard", "Romeo@Montague.Example/orchard"},
			[]string{"romeo@montague.example", "romeo@montague.example/balcony", "montague.example/orchard", "montague.example"}},
		{"romeo@montague.example",
			[]string{"romeo@montague.example", "romeo@montague.example/orchard", "romeo@montague.example/balcony"},
			[]string{"benvolio@montague.example", "montague.example", "romeo@capulet.example"}},
		{"montague.example/gate",
			[]string{"montague.example/gate"},
			[]string{"montague.example", "romeo@montague.example/gate", "montague.example/wall"}},
		{"montague.example",
			[]string{"montague.example", "montague.example/gate", "romeo@montague.example", "romeo@montague.example/orchard"},
			[]string{"capulet.example", "romeo@capulet.example", "montague.example.net", "chat.montague.example"}},
	}
	for _, tc := range cases {
		s := given(t, decided(t, State{}, Block{JIDs: []string{tc.entry}}))
		for _, j := range tc.blocked {
			if !s.Blocks(jid.MustParse(j)) {
				t.Errorf("%s does not block %s", tc.entry, j)
			}
		}
		for _, j := range tc.free {
			if s.Blocks(jid.MustParse(j)) {
				t.Errorf("%s blocks %s", tc.entry, j)
			}
		}
	}
	if (State{}).Blocks(jid.MustParse("romeo@montague.example")) {
		t.Error("an empty list blocks")
	}
	// A state built by hand, without the index Evolve keeps, matches alike.
	if !(State{JIDs: []string{"montague.example"}}).Blocks(jid.MustParse("romeo@montague.example/x")) {
		t.Error("a hand-built state does not block")
	}
}
