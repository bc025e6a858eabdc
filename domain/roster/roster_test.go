package roster

import (
	"errors"
	"testing"
	"time"

	"annals.im/annals/domain/event"
)

const (
	owner   = "juliet@example.com"
	contact = "romeo@example.com"
)

// run decides and folds each command in turn, as the account's owner does.
func run(t *testing.T, cmds ...Command) (State, Outcome, error) {
	t.Helper()
	ids := event.NewIDs()
	var s State
	var out Outcome
	var err error
	version := uint64(0)
	for _, c := range cmds {
		out, err = Decide(s, owner, c, ids, time.Unix(1800000000, 0), "test")
		if err != nil {
			return s, out, err
		}
		for _, e := range out.Events {
			if err := e.Normalize(); err != nil {
				t.Fatal(err)
			}
			version++
			e.Stream, e.Version = "account-"+owner, version
			if s, err = Evolve(s, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s, out, nil
}

func p(st Stanza) Command { return Presence{Contact: contact, Stanza: st} }

// The RFC 6121 §3 handshake and its refusals, step by step.
func TestSubscriptionStates(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		when []Command
		then Item    // the contact's item afterwards (zero: no item)
		last Outcome // of the last command, events aside
	}{
		{"ask", []Command{p(OutSubscribe)},
			Item{Subscription: None, AskOut: true}, Outcome{Forward: true}},
		{"ask twice: forwarded again, recorded once", []Command{p(OutSubscribe), p(OutSubscribe)},
			Item{Subscription: None, AskOut: true}, Outcome{Forward: true}},
		{"approved", []Command{p(OutSubscribe), p(InSubscribed)},
			Item{Subscription: To}, Outcome{Forward: true}},
		{"approval nobody asked for", []Command{p(InSubscribed)},
			Item{}, Outcome{}},
		{"request received", []Command{p(InSubscribe)},
			Item{Subscription: None, PendingIn: true}, Outcome{Forward: true}},
		{"request received twice: delivered once", []Command{p(InSubscribe), p(InSubscribe)},
			Item{Subscription: None, PendingIn: true}, Outcome{}},
		{"request approved", []Command{p(InSubscribe), p(OutSubscribed)},
			Item{Subscription: From}, Outcome{Forward: true}},
		{"both ways", []Command{p(OutSubscribe), p(InSubscribed), p(InSubscribe), p(OutSubscribed)},
			Item{Subscription: Both}, Outcome{Forward: true}},
		{"request from an approved contact is answered by the server", []Command{p(InSubscribe), p(OutSubscribed), p(InSubscribe)},
			Item{Subscription: From}, Outcome{AutoReply: true}},
		{"request denied", []Command{p(InSubscribe), p(OutUnsubscribed)},
			Item{Subscription: None}, Outcome{Forward: true}},
		{"request refused by the contact", []Command{p(OutSubscribe), p(InUnsubscribed)},
			Item{Subscription: None}, Outcome{Forward: true}},
		{"unsubscribe", []Command{p(OutSubscribe), p(InSubscribed), p(OutUnsubscribe)},
			Item{Subscription: None}, Outcome{Forward: true}},
		{"contact unsubscribes from both", []Command{p(OutSubscribe), p(InSubscribed), p(InSubscribe), p(OutSubscribed), p(InUnsubscribe)},
			Item{Subscription: To}, Outcome{Forward: true}},
		{"revoked", []Command{p(InSubscribe), p(OutSubscribed), p(OutUnsubscribed)},
			Item{Subscription: None}, Outcome{Forward: true}},
		{"stranger's unsubscribe changes nothing", []Command{p(InUnsubscribe)},
			Item{}, Outcome{}},
		{"roster set keeps the subscription", []Command{p(OutSubscribe), p(InSubscribed), SetItem{Contact: contact, Name: "Romeo", Groups: []string{"Montague"}}},
			Item{Subscription: To, Name: "Romeo", Groups: []string{"Montague"}}, Outcome{}},
		{"remove cancels both ways", []Command{p(OutSubscribe), p(InSubscribed), p(InSubscribe), p(OutSubscribed), RemoveItem{Contact: contact}},
			Item{}, Outcome{Unsubscribe: true, Unsubscribed: true}},
		{"remove a pending request", []Command{p(InSubscribe), RemoveItem{Contact: contact}},
			Item{}, Outcome{Unsubscribed: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, out, err := run(t, c.when...)
			if err != nil {
				t.Fatal(err)
			}
			it, ok := s.Items[contact]
			if c.then.Subscription == "" {
				if ok {
					t.Fatalf("item %+v, want none", it)
				}
			} else {
				c.then.Contact = contact
				if it.Contact != c.then.Contact || it.Subscription != c.then.Subscription || it.AskOut != c.then.AskOut ||
					it.PendingIn != c.then.PendingIn || it.Name != c.then.Name || len(it.Groups) != len(c.then.Groups) {
					t.Fatalf("item %+v, want %+v", it, c.then)
				}
			}
			out.Events = nil
			if out.Forward != c.last.Forward || out.AutoReply != c.last.AutoReply ||
				out.Unsubscribe != c.last.Unsubscribe || out.Unsubscribed != c.last.Unsubscribed {
				t.Fatalf("outcome %+v, want %+v", out, c.last)
			}
		})
	}
}

// Commands that change nothing record nothing; the roster version is the
// stream version of the last roster event.
func TestNoOpsAndVersion(t *testing.T) {
	t.Parallel()
	s, _, err := run(t, SetItem{Contact: contact, Name: "R"}, p(OutSubscribe))
	if err != nil || s.Version != 2 {
		t.Fatalf("version %d, err %v; want 2", s.Version, err)
	}
	ids := event.NewIDs()
	for _, c := range []Command{SetItem{Contact: contact, Name: "R"}, p(OutSubscribed), p(InUnsubscribe)} {
		out, err := Decide(s, owner, c, ids, time.Now(), "")
		if err != nil || len(out.Events) != 0 {
			t.Errorf("%+v: %d events, %v; want none", c, len(out.Events), err)
		}
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cmd  Command
		want error
	}{
		{SetItem{Contact: owner}, ErrSelf},
		{Presence{Contact: owner, Stanza: OutSubscribe}, ErrSelf},
		{RemoveItem{Contact: contact}, ErrNoItem},
		{SetItem{Contact: contact, Groups: []string{"a", "a"}}, ErrBadGroup},
		{SetItem{Contact: contact, Groups: []string{""}}, ErrBadGroup},
	} {
		if _, _, err := run(t, c.cmd); !errors.Is(err, c.want) {
			t.Errorf("%+v: err %v, want %v", c.cmd, err, c.want)
		}
	}
}

func TestEvolveRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	e, _ := event.New(event.NewIDs(), time.Now(), TypeItemSet, Schema+1, "", ItemSet{Contact: contact})
	if _, err := Evolve(State{}, e); !errors.Is(err, event.ErrSchemaTooNew) {
		t.Fatalf("err %v", err)
	}
}

// A full roster takes no new contact, by roster set or by a subscription
// stanza either way; its existing items still change, and a stanza that
// would record nothing for a stranger is no error.
func TestRosterFull(t *testing.T) {
	t.Parallel()
	const max = 2
	set := func(c string) Command { return SetItem{Contact: c, Name: c, MaxItems: max} }
	pres := func(c string, st Stanza) Command { return Presence{Contact: c, Stanza: st, MaxItems: max} }
	full := []Command{set("a@example.com"), set("b@example.com")}
	cases := []struct {
		name string
		then Command
		err  error
	}{
		{"roster set of a new contact", set("c@example.com"), ErrFull},
		{"subscribe to a new contact", pres("c@example.com", OutSubscribe), ErrFull},
		{"subscription request from a stranger", pres("c@example.com", InSubscribe), ErrFull},
		{"a stranger's unsubscribe records nothing", pres("c@example.com", InUnsubscribe), nil},
		{"an approval nobody asked for records nothing", pres("c@example.com", InSubscribed), nil},
		{"renaming a contact", SetItem{Contact: "a@example.com", Name: "A", MaxItems: max}, nil},
		{"subscribing to a contact already there", pres("a@example.com", OutSubscribe), nil},
		{"a request from a contact already there", pres("b@example.com", InSubscribe), nil},
		{"no limit", SetItem{Contact: "c@example.com"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, out, err := run(t, append(full[:len(full):len(full)], c.then)...)
			if !errors.Is(err, c.err) {
				t.Fatalf("%v, want %v", err, c.err)
			}
			if err != nil && (len(out.Events) > 0 || out.Forward || out.AutoReply) {
				t.Fatalf("refused, yet %+v", out)
			}
		})
	}
	// Removing an item makes room again.
	if _, _, err := run(t, append(full[:len(full):len(full)], RemoveItem{Contact: "a@example.com"}, set("c@example.com"))...); err != nil {
		t.Fatal(err)
	}
}
