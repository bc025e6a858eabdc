package push

import (
	"errors"
	"slices"
	"testing"
	"time"

	"annals.im/annals/domain/event"
)

// Given the events so far, when a command, then the events it makes or
// its error; and the state they fold to.
func TestDecide(t *testing.T) {
	t.Parallel()
	ids := event.NewIDs()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	phone := Registration{Service: "push.example", Node: "n1", Resource: "phone"}
	tablet := Registration{Service: "push.example", Node: "n2", Resource: "tablet", Options: true}
	other := Registration{Service: "push.other.example", Node: "x", Resource: "phone"}
	lim := Limits{MaxRegistrations: 2}
	cases := []struct {
		name  string
		given []Command
		when  Command
		want  []event.Type
		err   error
		after []Registration
	}{
		{"enable", nil, Enable{phone, lim}, []event.Type{TypeEnabled}, nil, []Registration{phone}},
		{"the same again changes nothing", []Command{Enable{phone, lim}}, Enable{phone, lim}, nil, nil, []Registration{phone}},
		{"the same pair from another client replaces it", []Command{Enable{phone, lim}},
			Enable{Registration{Service: "push.example", Node: "n1", Resource: "desk"}, lim}, []event.Type{TypeEnabled}, nil,
			[]Registration{{Service: "push.example", Node: "n1", Resource: "desk"}}},
		{"past the limit", []Command{Enable{phone, lim}, Enable{tablet, lim}}, Enable{other, lim}, nil, ErrFull,
			[]Registration{phone, tablet}},
		{"a replacement at the limit", []Command{Enable{phone, lim}, Enable{tablet, lim}},
			Enable{Registration{Service: "push.example", Node: "n2", Resource: "tablet"}, lim}, []event.Type{TypeEnabled}, nil,
			[]Registration{phone, {Service: "push.example", Node: "n2", Resource: "tablet"}}},
		{"no service", nil, Enable{Registration{Node: "n"}, lim}, nil, ErrInvalid, nil},
		{"a service that is no JID", nil, Enable{Registration{Service: "a@b@c"}, lim}, nil, ErrInvalid, nil},
		{"a node too long", nil, Enable{Registration{Service: "push.example", Node: string(make([]byte, MaxNode+1))}, lim}, nil, ErrInvalid, nil},
		{"disable one node", []Command{Enable{phone, lim}, Enable{tablet, lim}}, Disable{Service: "push.example", Node: "n1"},
			[]event.Type{TypeDisabled}, nil, []Registration{tablet}},
		{"disable a whole service", []Command{Enable{phone, lim}, Enable{tablet, lim}, Enable{other, Limits{}}},
			Disable{Service: "push.example"}, []event.Type{TypeDisabled}, nil, []Registration{other}},
		{"disable what is not there", []Command{Enable{phone, lim}}, Disable{Service: "push.example", Node: "zz"}, nil, nil,
			[]Registration{phone}},
		{"disable with no service", nil, Disable{}, nil, ErrInvalid, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s State
			fold := func(evs []event.Envelope) {
				for _, e := range evs {
					var err error
					if s, err = Evolve(s, e); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, g := range c.given {
				evs, err := Decide(s, g, ids, now, "test")
				if err != nil {
					t.Fatalf("given %+v: %v", g, err)
				}
				fold(evs)
			}
			evs, err := Decide(s, c.when, ids, now, "test")
			if !errors.Is(err, c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			var types []event.Type
			for _, e := range evs {
				types = append(types, e.Type)
			}
			if !slices.Equal(types, c.want) {
				t.Fatalf("events %v, want %v", types, c.want)
			}
			fold(evs)
			if !slices.Equal(s.Registrations, c.after) {
				t.Fatalf("registrations %+v, want %+v", s.Registrations, c.after)
			}
		})
	}
}
