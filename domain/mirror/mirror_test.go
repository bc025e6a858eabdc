package mirror

import (
	"errors"
	"testing"
	"time"

	"annals.im/annals/domain/event"
)

const room = "hall@conference.capulet.example"

var now = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

// given folds the events of commands (which must succeed) into a state.
func given(t *testing.T, cmds ...any) State {
	t.Helper()
	var s State
	for _, c := range cmds {
		var err error
		if s, err = apply(s, c); err != nil {
			t.Fatalf("given %T %+v: %v", c, c, err)
		}
	}
	return s
}

func apply(s State, c any) (State, error) {
	evs, err := Decide(s, c, event.NewIDs(), now, "test")
	if err != nil {
		return s, err
	}
	for i, e := range evs {
		e.Stream, e.Version = Stream(room), s.Version+uint64(i)+1
		if s, err = Evolve(s, e); err != nil {
			return s, err
		}
	}
	return s, nil
}

func join(seq uint64, nick string) Apply {
	return Apply{Applied{Seq: seq, Kind: Presence, Occupant: &Occupant{Nick: nick, Role: "participant"}}}
}

func leave(seq uint64, nick string) Apply {
	return Apply{Applied{Seq: seq, Kind: Presence, Occupant: &Occupant{Nick: nick}, Gone: true}}
}

func msg(seq uint64, accepts string) Apply {
	return Apply{Applied{Seq: seq, Kind: Message, Nick: "Romeo", Stanza: "<message type='groupchat'><body>hi</body></message>", Accepts: accepts}}
}

// part is part i of sequence seq's presences, more to come unless last.
func part(seq uint64, i uint32, last bool, nick string) Apply {
	a := join(seq, nick)
	a.Part, a.More = i, !last
	return a
}

func post(id string) Post {
	return Post{Posted{LocalID: id, Account: "romeo@montague.example", Nick: "Romeo", Stanza: "<message type='groupchat'><body>" + id + "</body></message>"}}
}

// The gap rule, and what each command leaves in the replica.
func TestDecide(t *testing.T) {
	tests := []struct {
		name  string
		given []any
		when  any
		err   error
		gap   *GapError
		check func(t *testing.T, s State)
	}{
		{name: "the first sequence applies", when: join(1, "Juliet"), check: func(t *testing.T, s State) {
			if s.Seq != 1 || s.Occupants["Juliet"].Role != "participant" {
				t.Errorf("state %+v", s)
			}
		}},
		{name: "the next one applies", given: []any{join(1, "Juliet")}, when: msg(2, ""), check: func(t *testing.T, s State) {
			if s.Seq != 2 {
				t.Errorf("seq %d", s.Seq)
			}
		}},
		{name: "a stale one is ignored", given: []any{join(1, "Juliet"), msg(2, "")}, when: msg(2, ""), err: ErrStale},
		{name: "one from the past is ignored", given: []any{join(1, "Juliet"), msg(2, "")}, when: join(1, "Tybalt"), err: ErrStale},
		{name: "a gap asks for a resend", given: []any{join(1, "Juliet")}, when: msg(5, ""), gap: &GapError{After: 1, Got: 5}},
		{name: "far in the future is a gap too", when: msg(1<<40, ""), gap: &GapError{After: 0, Got: 1 << 40}},
		{name: "a roster may jump ahead: the room's state at its sequence", given: []any{join(1, "Juliet")},
			when: Apply{Applied{Seq: 40, Kind: Roster, Occupants: []Occupant{{Nick: "Romeo"}}}}, check: func(t *testing.T, s State) {
				if s.Seq != 40 || len(s.Occupants) != 1 {
					t.Errorf("state %+v", s)
				}
			}},
		{name: "a roster from the past is stale", given: []any{join(1, "Juliet"), msg(2, "")},
			when: Apply{Applied{Seq: 2, Kind: Roster}}, err: ErrStale},
		{name: "sequence 0 is none", when: msg(0, ""), err: ErrInvalid},
		{name: "a presence needs its occupant", when: Apply{Applied{Seq: 1, Kind: Presence}}, err: ErrInvalid},
		{name: "an unknown kind", when: Apply{Applied{Seq: 1, Kind: "poem"}}, err: ErrInvalid},
		{name: "leaving removes the occupant", given: []any{join(1, "Juliet"), join(2, "Romeo")}, when: leave(3, "Juliet"),
			check: func(t *testing.T, s State) {
				if _, ok := s.Occupants["Juliet"]; ok || len(s.Occupants) != 1 {
					t.Errorf("occupants %+v", s.Occupants)
				}
			}},
		{name: "a roster replaces the occupants", given: []any{join(1, "Juliet")},
			when: Apply{Applied{Seq: 2, Kind: Roster, Occupants: []Occupant{{Nick: "Nurse"}, {Nick: "Friar"}}}},
			check: func(t *testing.T, s State) {
				if _, ok := s.Occupants["Juliet"]; ok || len(s.Occupants) != 2 {
					t.Errorf("occupants %+v", s.Occupants)
				}
			}},
		{name: "a subject", when: Apply{Applied{Seq: 1, Kind: Subject, Subject: "Verona"}}, check: func(t *testing.T, s State) {
			if s.Subject != "Verona" {
				t.Errorf("subject %q", s.Subject)
			}
		}},
		{name: "a post waits", given: []any{join(1, "Romeo")}, when: post("l1"), check: func(t *testing.T, s State) {
			if !s.IsPending("l1") || s.Seq != 1 {
				t.Errorf("state %+v", s)
			}
		}},
		{name: "the same post twice", given: []any{post("l1")}, when: post("l1"), err: ErrStale},
		{name: "a post needs its parts", when: Post{Posted{LocalID: "l1"}}, err: ErrInvalid},
		{name: "the master's copy accepts it", given: []any{post("l1"), post("l2")}, when: msg(1, "l1"), check: func(t *testing.T, s State) {
			if s.IsPending("l1") || !s.IsPending("l2") || s.Seq != 1 {
				t.Errorf("state %+v", s)
			}
		}},
		{name: "a partition's post was seen when posted", given: []any{Post{Posted{LocalID: "l1", Account: "romeo@montague.example", Nick: "Romeo", Stanza: "<message/>", Partitioned: true}}},
			when: msg(1, "l1"), check: func(t *testing.T, s State) {
				if s.IsPending("l1") || s.Seq != 1 {
					t.Errorf("state %+v", s)
				}
			}},
		{name: "a copy from another nick accepts nothing", given: []any{post("l1")},
			when: Apply{Applied{Seq: 1, Kind: Message, Nick: "Tybalt", Stanza: "<message/>", Accepts: "l1"}}, check: func(t *testing.T, s State) {
				if !s.IsPending("l1") || s.Seq != 1 {
					t.Errorf("state %+v", s)
				}
			}},
		{name: "the parts of a sequence apply in order", given: []any{join(1, "Juliet"), part(2, 0, false, "Romeo")}, when: part(2, 1, true, "Tybalt"),
			check: func(t *testing.T, s State) {
				if s.Seq != 2 || s.More || len(s.Occupants) != 3 {
					t.Errorf("state %+v", s)
				}
			}},
		{name: "a part again is stale", given: []any{part(1, 0, false, "Romeo"), part(1, 1, false, "Tybalt")}, when: part(1, 1, false, "Tybalt"), err: ErrStale},
		{name: "a later part of a whole sequence is stale", given: []any{part(1, 0, true, "Romeo")}, when: part(1, 1, true, "Tybalt"), err: ErrStale},
		{name: "a part skipped asks for the whole sequence again", given: []any{join(1, "Juliet"), part(2, 0, false, "Romeo")}, when: part(2, 2, true, "Tybalt"),
			gap: &GapError{After: 1, Got: 2}},
		{name: "the next sequence before the last part asks for it again", given: []any{join(1, "Juliet"), part(2, 0, false, "Romeo")}, when: msg(3, ""),
			gap: &GapError{After: 1, Got: 3}},
		{name: "a next sequence must begin at its first part", given: []any{join(1, "Juliet")}, when: part(2, 1, true, "Romeo"),
			gap: &GapError{After: 1, Got: 2}},
		{name: "a roster in parts", when: Apply{Applied{Seq: 3, Kind: Roster, More: true}}, err: ErrInvalid},
		{name: "a roster at the sequence applied is stale", given: []any{join(1, "Juliet")}, when: Apply{Applied{Seq: 1, Kind: Roster}}, err: ErrStale},
		{name: "a refetch forgets what the master said, not what waits for it", given: []any{join(1, "Juliet"), post("l1"), msg(2, ""), Apply{Applied{Seq: 3, Kind: Subject, Subject: "Verona"}}},
			when: Refetch{Reset{Why: "test"}}, check: func(t *testing.T, s State) {
				if s.Seq != 0 || len(s.Occupants) != 0 || s.Subject != "" || !s.IsPending("l1") {
					t.Errorf("state %+v", s)
				}
			}},
		{name: "after a refetch the first sequence applies again", given: []any{join(1, "Juliet"), msg(2, ""), Refetch{}}, when: join(1, "Juliet"),
			check: func(t *testing.T, s State) {
				if s.Seq != 1 || len(s.Occupants) != 1 {
					t.Errorf("state %+v", s)
				}
			}},
		{name: "a refused post waits no more", given: []any{post("l1"), post("l2")}, when: Refuse{Refused{LocalID: "l1", Condition: "forbidden"}},
			check: func(t *testing.T, s State) {
				if s.IsPending("l1") || !s.IsPending("l2") {
					t.Errorf("state %+v", s)
				}
			}},
		{name: "a refusal of nothing pending", given: []any{post("l1")}, when: Refuse{Refused{LocalID: "l9"}}, err: ErrStale},
		{name: "the link goes down", when: Link{Linked{Up: false, Why: "silent"}}, check: func(t *testing.T, s State) {
			if !s.Down || s.Version != 1 {
				t.Errorf("state %+v", s)
			}
		}},
		{name: "and comes back", given: []any{Link{Linked{Up: false}}}, when: Link{Linked{Up: true}}, check: func(t *testing.T, s State) {
			if s.Down || s.Version != 2 {
				t.Errorf("state %+v", s)
			}
		}},
		{name: "a link as it was records nothing", given: []any{Link{Linked{Up: false}}}, when: Link{Linked{Up: false}}, check: func(t *testing.T, s State) {
			if !s.Down || s.Version != 1 {
				t.Errorf("state %+v", s)
			}
		}},
		{name: "a copy accepting nothing pending is the master's message", given: []any{post("l1"), msg(1, "l1")}, when: msg(2, "l1"),
			check: func(t *testing.T, s State) {
				if s.Seq != 2 || len(s.Pending) != 0 {
					t.Errorf("state %+v", s)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := given(t, tt.given...)
			before := s
			after, err := apply(s, tt.when)
			var gap *GapError
			switch {
			case tt.gap != nil:
				if !errors.As(err, &gap) || *gap != *tt.gap {
					t.Fatalf("err %v, want gap %v", err, tt.gap)
				}
			case !errors.Is(err, tt.err):
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err != nil {
				if after.Version != before.Version {
					t.Fatal("a refused command changed the replica")
				}
				return
			}
			if tt.check != nil {
				tt.check(t, after)
			}
		})
	}
}

// Too many waiting posts (a long partition) are refused.
func TestPendingBounded(t *testing.T) {
	s := State{Pending: make([]Posted, MaxPending)}
	if _, err := Decide(s, post("one-more"), event.NewIDs(), now, "test"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("post past MaxPending: %v", err)
	}
}

// A state handed out earlier does not change when later events fold.
func TestEvolveCopies(t *testing.T) {
	s := given(t, join(1, "Juliet"), post("l1"))
	kept := s
	next, err := apply(kept, join(2, "Romeo"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := kept.Occupants["Romeo"]; ok || len(next.Occupants) != 2 {
		t.Fatalf("the earlier state changed: %+v", kept.Occupants)
	}
	next, _ = apply(next, msg(3, "l1"))
	if !kept.IsPending("l1") || next.IsPending("l1") {
		t.Fatal("accepting a post changed the earlier state's pending list")
	}
}

func TestStreamNames(t *testing.T) {
	if got := RoomOf(Stream(room)); got != room {
		t.Fatalf("RoomOf(Stream) = %q", got)
	}
	if RoomOf("room-"+room) != "" {
		t.Fatal("a room stream taken for a mirror's")
	}
}
