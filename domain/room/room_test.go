package room

import (
	"errors"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/vcard"
)

// avatarVCard holds a 1x1 PNG whose SHA-1 is avatarSHA1 (sha1sum of the
// decoded bytes).
const (
	avatarVCard = "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>" +
		"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==</BINVAL></PHOTO></vCard>"
	avatarSHA1 = "b2bbe763c7e1828c750d53f78550709a6fea19be"
)

const roomJID = "hall@conference.example.com"

var now = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// given folds the events of commands (which must succeed) into a state.
func given(t *testing.T, cmds ...any) State {
	t.Helper()
	s := State{JID: roomJID}
	for _, c := range cmds {
		var err error
		if s, _, err = apply(s, c); err != nil {
			t.Fatalf("given %T %+v: %v", c, c, err)
		}
	}
	return s
}

func apply(s State, c any) (State, Outcome, error) {
	out, err := Decide(s, c, event.NewIDs(), now, "test")
	if err != nil {
		return s, out, err
	}
	for i, e := range out.Events {
		e.Stream, e.Version = Stream(roomJID), s.Version+uint64(i)+1
		if s, err = Evolve(s, e); err != nil {
			return s, out, err
		}
	}
	return s, out, nil
}

func types(out Outcome) []event.Type {
	var ts []event.Type
	for _, e := range out.Events {
		ts = append(ts, e.Type)
	}
	return ts
}

// A room as most tests start: created by romeo (owner), configured, with
// juliet as a participant.
func open(extra ...any) []any {
	return append([]any{
		Join{Account: "romeo@x", Nick: "Romeo", Create: true, Locked: true},
		Configure{By: "romeo@x", Config: DefaultConfig()},
		Join{Account: "juliet@x", Nick: "Juliet"},
	}, extra...)
}

func TestDecide(t *testing.T) {
	moderated := DefaultConfig()
	moderated.Moderated = true
	membersOnly := DefaultConfig()
	membersOnly.MembersOnly = true
	withPassword := DefaultConfig()
	withPassword.PasswordHash = HashPassword("secret", []byte("0123456789abcdef"))
	full := DefaultConfig()
	full.MaxOccupants = 2
	temporary := DefaultConfig()
	temporary.Persistent = false

	tests := []struct {
		name  string
		given []any
		when  any
		want  []event.Type
		err   error
		check func(t *testing.T, s State, out Outcome)
	}{
		{"first join creates a locked room", nil, Join{Account: "romeo@x", Nick: "Romeo", Create: true, Locked: true},
			[]event.Type{TypeCreated, TypeJoined}, nil, func(t *testing.T, s State, out Outcome) {
				if !out.Created || !s.Locked || s.Affiliation("romeo@x") != Owner || s.Occupants["romeo@x"].Role != Moderator {
					t.Errorf("%+v %+v", out, s)
				}
			}},
		{"no creation without permission", nil, Join{Account: "romeo@x", Nick: "Romeo"}, nil, ErrNotFound, nil},
		{"locked room refuses others", []any{Join{Account: "romeo@x", Nick: "Romeo", Create: true, Locked: true}},
			Join{Account: "juliet@x", Nick: "Juliet"}, nil, ErrLocked, nil},
		{"configuring unlocks", []any{Join{Account: "romeo@x", Nick: "Romeo", Create: true, Locked: true}},
			Configure{By: "romeo@x", Config: DefaultConfig()}, []event.Type{TypeConfigured}, nil,
			func(t *testing.T, s State, _ Outcome) {
				if s.Locked {
					t.Error("still locked")
				}
			}},
		{"participant joins", open(), Join{Account: "nurse@x", Nick: "Nurse"}, []event.Type{TypeJoined}, nil,
			func(t *testing.T, s State, _ Outcome) {
				if s.Occupants["nurse@x"].Role != Participant {
					t.Errorf("role %s", s.Occupants["nurse@x"].Role)
				}
			}},
		{"second session of an occupant only attaches", open(), Join{Account: "juliet@x", Nick: "Juliet"}, nil, nil,
			func(t *testing.T, _ State, out Outcome) {
				if !out.Already || out.NickFixed {
					t.Errorf("%+v", out)
				}
			}},
		{"a session with another nick is told the account's (210)", open(), Join{Account: "juliet@x", Nick: "Jules"}, nil, nil,
			func(t *testing.T, _ State, out Outcome) {
				if !out.Already || !out.NickFixed {
					t.Errorf("%+v", out)
				}
			}},
		{"nick taken", open(), Join{Account: "tybalt@x", Nick: "Juliet"}, nil, ErrConflict, nil},
		{"bad nick", open(), Join{Account: "tybalt@x", Nick: ""}, nil, ErrBadNick, nil},
		{"invisible nick", open(), Join{Account: "tybalt@x", Nick: "   "}, nil, ErrBadNick, nil},
		{"banned", open(SetAffiliation{By: "romeo@x", JID: "tybalt@x", Affiliation: Outcast}),
			Join{Account: "tybalt@x", Nick: "Tybalt"}, nil, ErrBanned, nil},
		{"a join through a mirror keeps its nick and its mirror", open(), Join{Account: "wayne@raleigh/annals-rooms", Nick: "Wayne", Via: "mirror.raleigh"},
			[]event.Type{TypeJoined}, nil, func(t *testing.T, s State, _ Outcome) {
				if o := s.Occupants["wayne@raleigh/annals-rooms"]; o.Via != "mirror.raleigh" || o.Nick != "Wayne" {
					t.Errorf("occupant %+v", o)
				}
			}},
		{"the master never rewrites a mirrored nick", open(Join{Account: "wayne@raleigh/annals-rooms", Nick: "Wayne", Via: "mirror.raleigh"}),
			Join{Account: "wayne@raleigh/annals-rooms", Nick: "Bruce", Via: "mirror.raleigh"}, nil, ErrMirroredNick, nil},
		{"a mirrored nick does not change", open(Join{Account: "wayne@raleigh/annals-rooms", Nick: "Wayne", Via: "mirror.raleigh"}),
			ChangeNick{Account: "wayne@raleigh/annals-rooms", Nick: "Bruce"}, nil, ErrMirroredNick, nil},
		{"leaving for no known cause", open(), Leave{Account: "juliet@x", Cause: "boredom"}, nil, ErrInvalid, nil},
		{"a banned user's session from another server", open(SetAffiliation{By: "romeo@x", JID: "tybalt@elsewhere", Affiliation: Outcast}),
			Join{Account: "tybalt@elsewhere/street", Nick: "Tybalt"}, nil, ErrBanned, nil},
		{"a member's session from another server enters members-only", open(Configure{By: "romeo@x", Config: membersOnly}, SetAffiliation{By: "romeo@x", JID: "nurse@elsewhere", Affiliation: Member}),
			Join{Account: "nurse@elsewhere/home", Nick: "Nurse"}, []event.Type{TypeJoined}, nil, nil},
		{"members only", open(Configure{By: "romeo@x", Config: membersOnly}),
			Join{Account: "tybalt@x", Nick: "Tybalt"}, nil, ErrMembersOnly, nil},
		{"member enters members-only", open(Configure{By: "romeo@x", Config: membersOnly}, SetAffiliation{By: "romeo@x", JID: "nurse@x", Affiliation: Member}),
			Join{Account: "nurse@x", Nick: "Nurse"}, []event.Type{TypeJoined}, nil, nil},
		{"no password checked", open(Configure{By: "romeo@x", Config: withPassword}),
			Join{Account: "tybalt@x", Nick: "Tybalt"}, nil, ErrPassword, nil},
		{"checked against another verifier", open(Configure{By: "romeo@x", Config: withPassword}),
			Join{Account: "tybalt@x", Nick: "Tybalt", Verified: HashPassword("secret", []byte("another salt"))}, nil, ErrPassword, nil},
		{"checked against the room's verifier", open(Configure{By: "romeo@x", Config: withPassword}),
			Join{Account: "tybalt@x", Nick: "Tybalt", Verified: withPassword.PasswordHash}, []event.Type{TypeJoined}, nil, nil},
		{"full", open(Configure{By: "romeo@x", Config: full}), Join{Account: "tybalt@x", Nick: "Tybalt"}, nil, ErrFull, nil},
		{"moderated: visitors", open(Configure{By: "romeo@x", Config: moderated}), Join{Account: "tybalt@x", Nick: "Tybalt"},
			[]event.Type{TypeJoined}, nil, func(t *testing.T, s State, _ Outcome) {
				if s.Occupants["tybalt@x"].Role != Visitor {
					t.Errorf("role %s", s.Occupants["tybalt@x"].Role)
				}
			}},
		{"visitor may not post", open(Configure{By: "romeo@x", Config: moderated}, Join{Account: "tybalt@x", Nick: "Tybalt"}),
			Post{Account: "tybalt@x", ID: "1", Stanza: "<message/>"}, nil, ErrNoVoice, nil},
		{"non-occupant may not post", open(), Post{Account: "tybalt@x", ID: "1", Stanza: "<message/>"}, nil, ErrNotOccupant, nil},
		{"a stanza that is not namespace-well-formed is not posted", open(), Post{Account: "juliet@x", ID: "r1", Stanza: "<message><foo:bar/></message>"}, nil, ErrInvalid, nil},
		{"occupant posts under its nick", open(), Post{Account: "juliet@x", ID: "r1", Stanza: "<message id='m1'/>"},
			[]event.Type{TypeMessagePosted}, nil, func(t *testing.T, s State, out Outcome) {
				var d MessagePosted
				out.Events[0].Decode(Schema, &d)
				if d.Nick != "Juliet" || d.ID != "r1" || d.Stanza != "<message id='m1'/>" || s.Messages != 1 {
					t.Errorf("%+v", d)
				}
			}},
		{"leave", open(), Leave{Account: "juliet@x"}, []event.Type{TypeLeft}, nil, nil},
		{"leave twice", open(Leave{Account: "juliet@x"}), Leave{Account: "juliet@x"}, nil, ErrNotOccupant, nil},
		{"the last leaves a temporary room", []any{Join{Account: "romeo@x", Nick: "Romeo", Create: true}, Configure{By: "romeo@x", Config: temporary}},
			Leave{Account: "romeo@x"}, []event.Type{TypeLeft, TypeDestroyed}, nil, func(t *testing.T, s State, _ Outcome) {
				if s.Exists {
					t.Error("room still exists")
				}
			}},
		{"nick change", open(), ChangeNick{Account: "juliet@x", Nick: "Jules"}, []event.Type{TypeNickChanged}, nil,
			func(t *testing.T, s State, _ Outcome) {
				if o, ok := s.ByNick("Jules"); !ok || o.Account != "juliet@x" {
					t.Errorf("%+v", s.Occupants)
				}
			}},
		{"nick change to a taken nick", open(), ChangeNick{Account: "juliet@x", Nick: "Romeo"}, nil, ErrConflict, nil},
		{"presence change", open(), SetPresence{Account: "juliet@x", Show: "away"}, []event.Type{TypePresenceChanged}, nil, nil},
		{"same presence: nothing", open(SetPresence{Account: "juliet@x", Show: "away"}), SetPresence{Account: "juliet@x", Show: "away"}, nil, nil, nil},
		{"participant sets the subject", open(), SetSubject{Account: "juliet@x", Subject: "Verona"}, []event.Type{TypeSubjectSet}, nil, nil},
		{"subject locked to moderators", open(Configure{By: "romeo@x", Config: Config{HistoryLength: 5}}),
			SetSubject{Account: "juliet@x", Subject: "Verona"}, nil, ErrForbidden, nil},
		{"only owners configure", open(), Configure{By: "juliet@x", Config: DefaultConfig()}, nil, ErrForbidden, nil},
		{"bad config", open(), Configure{By: "romeo@x", Config: Config{HistoryLength: MaxHistory + 1}}, nil, ErrInvalid, nil},
		{"becoming members-only removes non-members (322)", open(), Configure{By: "romeo@x", Config: membersOnly},
			[]event.Type{TypeConfigured, TypeLeft}, nil, func(t *testing.T, s State, _ Outcome) {
				if _, in := s.Occupants["juliet@x"]; in {
					t.Error("juliet is still in")
				}
			}},
		{"an owner sets the room's vCard: its avatar's hash is kept", open(), SetVCard{By: "romeo@x", XML: avatarVCard, MaxBytes: 4096},
			[]event.Type{TypeVCardSet}, nil, func(t *testing.T, s State, _ Outcome) {
				if s.VCard.XML == "" || len(s.VCard.PhotoHashes) != 1 || s.VCard.PhotoHashes[0] != avatarSHA1 {
					t.Errorf("vCard %+v", s.VCard)
				}
			}},
		{"a participant may not set the room's vCard", open(), SetVCard{By: "juliet@x", XML: avatarVCard}, nil, ErrForbidden, nil},
		{"an admin may not either (XEP-0486: owners)", open(SetAffiliation{By: "romeo@x", JID: "juliet@x", Affiliation: Admin}),
			SetVCard{By: "juliet@x", XML: avatarVCard}, nil, ErrForbidden, nil},
		{"a room's vCard over the limit", open(), SetVCard{By: "romeo@x", XML: avatarVCard, MaxBytes: 64}, nil, vcard.ErrTooBig, nil},
		{"the same vCard again: nothing", open(SetVCard{By: "romeo@x", XML: avatarVCard}), SetVCard{By: "romeo@x", XML: avatarVCard}, nil, nil, nil},
		{"an empty vCard takes the avatar away", open(SetVCard{By: "romeo@x", XML: avatarVCard}), SetVCard{By: "romeo@x", XML: "<vCard xmlns='vcard-temp'/>"},
			[]event.Type{TypeVCardSet}, nil, func(t *testing.T, s State, _ Outcome) {
				if len(s.VCard.PhotoHashes) != 0 {
					t.Errorf("vCard %+v", s.VCard)
				}
			}},
		{"destroying the room forgets its vCard", open(SetVCard{By: "romeo@x", XML: avatarVCard}), Destroy{By: "romeo@x"},
			[]event.Type{TypeDestroyed}, nil, func(t *testing.T, s State, _ Outcome) {
				if s.VCard.XML != "" {
					t.Errorf("vCard %+v", s.VCard)
				}
			}},
		{"kick", open(), SetRole{By: "romeo@x", Nick: "Juliet", Role: NoRole, Reason: "out"}, []event.Type{TypeLeft}, nil, nil},
		{"participants cannot kick", open(Join{Account: "nurse@x", Nick: "Nurse"}), SetRole{By: "juliet@x", Nick: "Nurse", Role: NoRole},
			nil, ErrForbidden, nil},
		{"nobody kicks an owner", open(SetAffiliation{By: "romeo@x", JID: "juliet@x", Affiliation: Admin}),
			SetRole{By: "juliet@x", Nick: "Romeo", Role: NoRole}, nil, ErrNotAllowed, nil},
		{"kick an unknown nick", open(), SetRole{By: "romeo@x", Nick: "Ghost", Role: NoRole}, nil, ErrItemNotFound, nil},
		{"the author retracts its message", open(), Post{Account: "juliet@x", ID: "m2", Reserialized: true,
			Stanza:   "<message xmlns='jabber:client' type='groupchat'><retract xmlns='urn:xmpp:message-retract:1' id='m1'/></message>",
			Retracts: Retracts{ID: "m1", Author: "juliet@x"}}, []event.Type{TypeMessagePosted, TypeMessageRetracted}, nil, func(t *testing.T, _ State, out Outcome) {
			var d MessageRetracted
			out.Events[1].Decode(Schema, &d)
			if d.ID != "m1" || d.By != "juliet@x" || d.Moderated || d.Notice != "m2" {
				t.Errorf("%+v", d)
			}
		}},
		{"another's retraction is only a message", open(), Post{Account: "juliet@x", ID: "m2", Reserialized: true, Stanza: "<message/>",
			Retracts: Retracts{ID: "m1", Author: "romeo@x"}}, []event.Type{TypeMessagePosted}, nil, nil},
		{"a moderator moderates", open(), Moderate{By: "romeo@x", ID: "m1", Author: "juliet@x", Reason: "spam", Notice: "<message xmlns='jabber:client'/>", NoticeID: "n1"},
			[]event.Type{TypeMessagePosted, TypeMessageRetracted}, nil, func(t *testing.T, _ State, out Outcome) {
				var d MessageRetracted
				out.Events[1].Decode(Schema, &d)
				if d.ID != "m1" || d.Author != "juliet@x" || d.By != "romeo@x" || !d.Moderated || d.Reason != "spam" || d.Notice != "n1" {
					t.Errorf("%+v", d)
				}
			}},
		{"a participant does not moderate", open(), Moderate{By: "juliet@x", ID: "m1", Author: "romeo@x", Notice: "<message/>", NoticeID: "n1"}, nil, ErrForbidden, nil},
		{"a moderation of no message", open(), Moderate{By: "romeo@x", ID: "m9", Notice: "<message/>", NoticeID: "n1"}, nil, ErrNoSuchMessage, nil},
		{"voice revoked", open(), SetRole{By: "romeo@x", Nick: "Juliet", Role: Visitor}, []event.Type{TypeRoleSet}, nil, nil},
		{"ban removes the occupant (301)", open(), SetAffiliation{By: "romeo@x", JID: "juliet@x", Affiliation: Outcast},
			[]event.Type{TypeAffiliationSet, TypeLeft}, nil, func(t *testing.T, s State, out Outcome) {
				var d Left
				out.Events[1].Decode(Schema, &d)
				if d.Cause != "ban" || s.Affiliation("juliet@x") != Outcast {
					t.Errorf("%+v", d)
				}
			}},
		{"a ban removes every session of a user from another server", open(Join{Account: "tybalt@elsewhere/a", Nick: "Tybalt"}, Join{Account: "tybalt@elsewhere/b", Nick: "Tybalt2"}),
			SetAffiliation{By: "romeo@x", JID: "tybalt@elsewhere", Affiliation: Outcast},
			[]event.Type{TypeAffiliationSet, TypeLeft, TypeLeft}, nil, func(t *testing.T, s State, _ Outcome) {
				if len(s.Occupants) != 2 {
					t.Errorf("occupants %v", s.Occupants)
				}
			}},
		{"admin cannot make admins", open(SetAffiliation{By: "romeo@x", JID: "juliet@x", Affiliation: Admin}),
			SetAffiliation{By: "juliet@x", JID: "nurse@x", Affiliation: Admin}, nil, ErrForbidden, nil},
		{"admin cannot ban an owner", open(SetAffiliation{By: "romeo@x", JID: "juliet@x", Affiliation: Admin}),
			SetAffiliation{By: "juliet@x", JID: "romeo@x", Affiliation: Outcast}, nil, ErrNotAllowed, nil},
		{"participants cannot ban", open(), SetAffiliation{By: "juliet@x", JID: "tybalt@x", Affiliation: Outcast}, nil, ErrForbidden, nil},
		{"the last owner stays", open(), SetAffiliation{By: "romeo@x", JID: "romeo@x", Affiliation: Admin}, nil, ErrLastOwner, nil},
		{"granting admin makes a moderator", open(), SetAffiliation{By: "romeo@x", JID: "juliet@x", Affiliation: Admin},
			[]event.Type{TypeAffiliationSet, TypeRoleSet}, nil, func(t *testing.T, s State, _ Outcome) {
				if s.Occupants["juliet@x"].Role != Moderator {
					t.Errorf("role %s", s.Occupants["juliet@x"].Role)
				}
			}},
		{"revoking membership in a members-only room removes (321)",
			open(SetAffiliation{By: "romeo@x", JID: "juliet@x", Affiliation: Member}, Configure{By: "romeo@x", Config: membersOnly}),
			SetAffiliation{By: "romeo@x", JID: "juliet@x", Affiliation: None}, []event.Type{TypeAffiliationSet, TypeLeft}, nil, nil},
		{"invitation to a members-only room makes a member", open(Configure{By: "romeo@x", Config: membersOnly}),
			Invite{By: "romeo@x", Invitee: "nurse@x"}, []event.Type{TypeAffiliationSet}, nil, nil},
		{"participants may not invite into members-only rooms", open(SetAffiliation{By: "romeo@x", JID: "juliet@x", Affiliation: Member}, Configure{By: "romeo@x", Config: membersOnly}),
			Invite{By: "juliet@x", Invitee: "nurse@x"}, nil, ErrForbidden, nil},
		{"invitation to an open room records nothing", open(), Invite{By: "juliet@x", Invitee: "nurse@x"}, nil, nil, nil},
		{"destroy", open(), Destroy{By: "romeo@x", Reason: "bye"}, []event.Type{TypeDestroyed}, nil, func(t *testing.T, s State, _ Outcome) {
			if s.Exists || len(s.Occupants) != 0 {
				t.Errorf("%+v", s)
			}
		}},
		{"only owners destroy", open(), Destroy{By: "juliet@x"}, nil, ErrForbidden, nil},
		{"commands on a room that does not exist", nil, Leave{Account: "juliet@x"}, nil, ErrNotFound, nil},
		{"a batch applies all", open(), Batch{SetAffiliation{By: "romeo@x", JID: "nurse@x", Affiliation: Member},
			SetRole{By: "romeo@x", Nick: "Juliet", Role: Visitor}}, []event.Type{TypeAffiliationSet, TypeRoleSet}, nil, nil},
		{"a batch decides each on the state before it", open(), Batch{SetAffiliation{By: "romeo@x", JID: "juliet@x", Affiliation: Admin},
			SetAffiliation{By: "juliet@x", JID: "nurse@x", Affiliation: Member}}, []event.Type{TypeAffiliationSet, TypeRoleSet, TypeAffiliationSet}, nil, nil},
		{"a batch with a refusal applies none", open(), Batch{SetAffiliation{By: "romeo@x", JID: "nurse@x", Affiliation: Member},
			SetRole{By: "romeo@x", Nick: "Ghost", Role: NoRole}}, nil, ErrItemNotFound, nil},
		{"a deleted occupant leaves and loses its affiliation", open(SetAffiliation{By: "romeo@x", JID: "juliet@x", Affiliation: Admin}),
			Forget{Account: "juliet@x"}, []event.Type{TypeAffiliationSet, TypeLeft}, nil, func(t *testing.T, s State, _ Outcome) {
				if _, in := s.Occupants["juliet@x"]; in || s.Affiliation("juliet@x") != None {
					t.Errorf("%+v", s)
				}
			}},
		{"a deleted last owner leaves the room ownerless", open(), Forget{Account: "romeo@x"},
			[]event.Type{TypeAffiliationSet, TypeLeft}, nil, func(t *testing.T, s State, _ Outcome) {
				if len(s.Owners()) != 0 || !s.Exists {
					t.Errorf("%+v", s)
				}
			}},
		{"a deleted non-occupant member loses its membership", open(SetAffiliation{By: "romeo@x", JID: "nurse@x", Affiliation: Member}),
			Forget{Account: "nurse@x"}, []event.Type{TypeAffiliationSet}, nil, nil},
		{"a deleted outcast stays banned", open(SetAffiliation{By: "romeo@x", JID: "tybalt@x", Affiliation: Outcast}),
			Forget{Account: "tybalt@x"}, nil, nil, nil},
		{"forgetting a stranger changes nothing", open(), Forget{Account: "nurse@x"}, nil, nil, nil},
		{"the last occupant of a temporary room forgotten ends it", []any{Join{Account: "romeo@x", Nick: "Romeo", Create: true},
			Configure{By: "romeo@x", Config: temporary}}, Forget{Account: "romeo@x"}, []event.Type{TypeAffiliationSet, TypeLeft, TypeDestroyed}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := given(t, tt.given...)
			before := s
			s, out, err := apply(s, tt.when)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				if len(s.Occupants) != len(before.Occupants) || s.Version != before.Version {
					t.Fatal("a refused command changed the room")
				}
				return
			}
			if got := types(out); len(got) != len(tt.want) || (len(got) > 0 && !equal(got, tt.want)) {
				t.Fatalf("events %v, want %v", got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, s, out)
			}
		})
	}
}

func equal(a, b []event.Type) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A room's stream name and the room it names go both ways; other streams
// name no room.
func TestStreamNames(t *testing.T) {
	for stream, want := range map[string]string{
		Stream("hall@conference.localhost"): "hall@conference.localhost",
		"account-romeo@localhost":           "",
		"room-":                             "",
		"chat-a@x/b@x":                      "",
	} {
		if got := JIDOf(stream); got != want {
			t.Errorf("JIDOf(%q) = %q, want %q", stream, got, want)
		}
	}
}
