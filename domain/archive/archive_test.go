package archive

import (
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/domain/event"
)

var now = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func j(s string) jid.JID { return jid.MustParse(s) }

func TestDecide(t *testing.T) {
	base := Send{From: j("romeo@example.com/desk"), To: j("juliet@example.com"), Kind: "chat",
		Stanza: "<message/>", MessageID: "m1", Session: "s1", ArchiveSender: true, ArchiveRecipient: true}
	with := func(f func(*Send)) Send { c := base; f(&c); return c }
	tests := []struct {
		name      string
		cmd       Send
		sender    string // "" none, "ulid" generated, else exact
		recipient bool
		offline   bool
		err       error
	}{
		{"both archives, computable sender ID", base, "s1:m1", true, false, nil},
		{"no id: the server picks", with(func(c *Send) { c.MessageID = "" }), "ulid", true, false, nil},
		{"id too long: the server picks", with(func(c *Send) { c.MessageID = strings.Repeat("x", MaxMessageID+1) }), "ulid", true, false, nil},
		{"normal is archived too", with(func(c *Send) { c.Kind = "normal" }), "s1:m1", true, false, nil},
		{"offline recipient", with(func(c *Send) { c.Offline = true }), "s1:m1", true, true, nil},
		{"recipient does not archive", with(func(c *Send) { c.ArchiveRecipient = false; c.Offline = true }), "s1:m1", false, false, nil},
		{"sender does not archive", with(func(c *Send) { c.ArchiveSender = false }), "", true, false, nil},
		{"note to self: once", with(func(c *Send) { c.To = j("romeo@example.com/phone") }), "s1:m1", false, false, nil},
		{"groupchat is not 1:1", with(func(c *Send) { c.Kind = "groupchat" }), "", false, false, ErrInvalid},
		{"sender without resource", with(func(c *Send) { c.From = j("romeo@example.com") }), "", false, false, ErrInvalid},
		{"recipient is a server", with(func(c *Send) { c.To = j("example.com") }), "", false, false, ErrInvalid},
		{"no session", with(func(c *Send) { c.Session = "" }), "", false, false, ErrInvalid},
		{"remote sender, bare, no session: the recipient archives", with(func(c *Send) {
			c.From, c.Session, c.ArchiveSender = j("romeo@elsewhere.example"), "", false
		}), "", true, false, nil},
		{"sender is a server", with(func(c *Send) { c.From, c.ArchiveSender = j("elsewhere.example"), false }), "", false, false, ErrInvalid},
		{"stanza that is not namespace-well-formed", with(func(c *Send) { c.Stanza = "<message><foo:bar/></message>" }), "", false, false, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := Decide(tt.cmd, event.NewIDs(), now, "test")
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if tt.sender == "" && !tt.recipient {
				if len(evs) != 0 {
					t.Fatalf("want no event, got %d", len(evs))
				}
				return
			}
			if len(evs) != 1 || evs[0].Type != TypeMessageSent {
				t.Fatalf("events: %+v", evs)
			}
			var d MessageSent
			if err := evs[0].Decode(Schema, &d); err != nil {
				t.Fatal(err)
			}
			if !d.WellFormed {
				t.Error("a checked stanza is not marked well_formed")
			}
			switch tt.sender {
			case "ulid":
				if len(d.SenderID) != 26 {
					t.Errorf("sender ID %q, want a ULID", d.SenderID)
				}
			default:
				if d.SenderID != tt.sender {
					t.Errorf("sender ID %q, want %q", d.SenderID, tt.sender)
				}
			}
			if (d.RecipientID != "") != tt.recipient || d.Offline != tt.offline {
				t.Errorf("recipient ID %q offline %v, want archived %v offline %v", d.RecipientID, d.Offline, tt.recipient, tt.offline)
			}
			if d.RecipientID != "" && d.RecipientID == d.SenderID {
				t.Error("both parties got the same ID")
			}
			if d.From != tt.cmd.From.String() || d.To != tt.cmd.To.String() || d.Stanza != tt.cmd.Stanza {
				t.Errorf("data %+v", d)
			}
		})
	}
	// Neither party archives: no event at all.
	evs, err := Decide(with(func(c *Send) { c.ArchiveSender, c.ArchiveRecipient = false, false }), event.NewIDs(), now, "")
	if err != nil || len(evs) != 0 {
		t.Fatalf("neither archives: %v, %d events", err, len(evs))
	}
}

func TestStreamIsSymmetric(t *testing.T) {
	if Stream("romeo@x", "juliet@x") != Stream("juliet@x", "romeo@x") || Stream("a@x", "b@x") != "chat-a@x/b@x" {
		t.Fatal(Stream("romeo@x", "juliet@x"))
	}
}

func TestPrefsArchives(t *testing.T) {
	tests := []struct {
		prefs    Prefs
		contact  string
		inRoster bool
		want     bool
	}{
		{Prefs{}, "juliet@x", false, true},
		{Prefs{Default: Never}, "juliet@x", true, false},
		{Prefs{Default: Roster}, "juliet@x", true, true},
		{Prefs{Default: Roster}, "juliet@x/balcony", false, false},
		{Prefs{Default: Never, Always: []string{"juliet@x"}}, "juliet@x/balcony", false, true},
		{Prefs{Default: Never, Always: []string{"juliet@x/balcony"}}, "juliet@x/chamber", false, false},
		{Prefs{Default: Always, Never: []string{"tybalt@x"}}, "tybalt@x", true, false},
		{Prefs{Always: []string{"tybalt@x"}, Never: []string{"tybalt@x"}}, "tybalt@x", true, false},
	}
	for _, tt := range tests {
		if got := tt.prefs.Archives(j(tt.contact), tt.inRoster); got != tt.want {
			t.Errorf("%+v archives %s (roster %v) = %v, want %v", tt.prefs, tt.contact, tt.inRoster, got, tt.want)
		}
	}
}

func TestSetPrefs(t *testing.T) {
	tests := []struct {
		p   Prefs
		err error
	}{
		{Prefs{Default: Roster, Always: []string{"juliet@x"}, Never: []string{"tybalt@x"}}, nil},
		{Prefs{Default: "sometimes"}, ErrInvalid},
		{Prefs{Default: Always, Never: []string{"not a@jid@"}}, ErrInvalid},
	}
	for _, tt := range tests {
		evs, err := SetPrefs(tt.p, event.NewIDs(), now, "")
		if !errors.Is(err, tt.err) {
			t.Fatalf("%+v: err %v, want %v", tt.p, err, tt.err)
		}
		if err != nil {
			continue
		}
		got, err := EvolvePrefs(Prefs{}, evs[0])
		if err != nil || got.Default != tt.p.Default || len(got.Always) != len(tt.p.Always) || len(got.Never) != len(tt.p.Never) {
			t.Fatalf("evolved %+v, %v", got, err)
		}
	}
}

func TestQueryLimit(t *testing.T) {
	for _, tt := range []struct{ max, want int }{{0, DefaultPage}, {-1, DefaultPage}, {10, 10}, {MaxPage, MaxPage}, {100000, MaxPage}} {
		if got := (Query{Max: tt.max}).Limit(); got != tt.want {
			t.Errorf("max %d: limit %d, want %d", tt.max, got, tt.want)
		}
	}
}
