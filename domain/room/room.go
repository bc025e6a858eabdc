package room

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"mellium.im/xmpp/jid"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/vcard"
)

// Event types, written by hand: renaming a Go type must not orphan stored events.
const (
	TypeCreated         event.Type = "RoomCreated"
	TypeConfigured      event.Type = "RoomConfigured"
	TypeAffiliationSet  event.Type = "RoomAffiliationSet"
	TypeJoined          event.Type = "OccupantJoined"
	TypeLeft            event.Type = "OccupantLeft"
	TypeNickChanged     event.Type = "OccupantNickChanged"
	TypePresenceChanged event.Type = "OccupantPresenceChanged"
	TypeRoleSet         event.Type = "OccupantRoleSet"
	TypeSubjectSet      event.Type = "RoomSubjectSet"
	TypeMessagePosted   event.Type = "RoomMessagePosted"
	TypeDestroyed       event.Type = "RoomDestroyed"
	TypeVCardSet        event.Type = "RoomVCardSet"
)

// Schema is the newest schema of each event type that this build reads and writes.
const Schema = 1

// streamPrefix begins the name of every room's stream.
const streamPrefix = "room-"

// Stream returns the stream name of the room with bare JID room.
func Stream(room string) string { return streamPrefix + room }

// JIDOf returns the bare JID of the room whose stream is stream, or ""
// for a stream that is not a room's.
func JIDOf(stream string) string {
	room, _ := strings.CutPrefix(stream, streamPrefix)
	if room == stream {
		return ""
	}
	return room
}

// Affiliation is a long-lived relation of a JID to a room (XEP-0045 §5.2).
type Affiliation string

const (
	Owner   Affiliation = "owner"
	Admin   Affiliation = "admin"
	Member  Affiliation = "member"
	None    Affiliation = "none"
	Outcast Affiliation = "outcast"
)

var affRank = map[Affiliation]int{Outcast: 0, None: 1, Member: 2, Admin: 3, Owner: 4}

// ParseAffiliation checks s.
func ParseAffiliation(s string) (Affiliation, bool) {
	a := Affiliation(s)
	_, ok := affRank[a]
	return a, ok
}

// Role is an occupant's standing while in the room (XEP-0045 §5.1).
type Role string

const (
	Moderator   Role = "moderator"
	Participant Role = "participant"
	Visitor     Role = "visitor"
	NoRole      Role = "none"
)

var roleRank = map[Role]int{NoRole: 0, Visitor: 1, Participant: 2, Moderator: 3}

// ParseRole checks s.
func ParseRole(s string) (Role, bool) {
	r := Role(s)
	_, ok := roleRank[r]
	return r, ok
}

// Config is a room's configuration (the muc#roomconfig form).
type Config struct {
	Name          string `json:"name,omitempty"`
	Description   string `json:"description,omitempty"`
	Persistent    bool   `json:"persistent,omitempty"`
	Public        bool   `json:"public,omitempty"`
	MembersOnly   bool   `json:"members_only,omitempty"`
	Moderated     bool   `json:"moderated,omitempty"`
	PasswordHash  string `json:"password_hash,omitempty"` // a verifier (password.go); "" for none
	MaxOccupants  int    `json:"max_occupants,omitempty"` // 0: no limit
	WhoisAnyone   bool   `json:"whois_anyone,omitempty"`  // real JIDs shown to everyone, not only moderators
	ChangeSubject bool   `json:"change_subject,omitempty"`
	AllowInvites  bool   `json:"allow_invites,omitempty"` // occupants may invite to a members-only room
	HistoryLength int    `json:"history_length"`          // messages sent on join, at most
}

// DefaultConfig is what an instant room gets.
func DefaultConfig() Config {
	return Config{Public: true, Persistent: true, ChangeSubject: true, HistoryLength: 20}
}

// Occupant is an account in the room.
type Occupant struct {
	Account string `json:"account"` // bare JID (a remote occupant: its full JID)
	Nick    string `json:"nick"`
	Role    Role   `json:"role"`
	Show    string `json:"show,omitempty"` // "", away, chat, dnd, xa
	Status  string `json:"status,omitempty"`
	// Via is the DMUC3 mirror the occupant joined through (its JID, e.g.
	// mirror.example.net): what the room says reaches it through that
	// mirror, once for all the mirror's occupants (docs/dmuc.md).
	Via string `json:"via,omitempty"`
}

// Listed is a room as the service lists it to anyone (disco#items):
// a value type, so that the rooms service (app/rooms) and the adapters
// that show the list share it without importing each other.
type Listed struct {
	JID, Name string
}

// State is what the rules know about one room.
type State struct {
	JID          string
	Exists       bool
	Locked       bool // created, not yet configured: only the owner may enter
	Config       Config
	Affiliations map[string]Affiliation // bare JID -> affiliation other than none
	Occupants    map[string]Occupant    // account (a remote occupant: its full JID) -> occupant
	Subject      string
	SubjectNick  string
	Messages     int // groupchat messages posted
	// VCard is the room's vCard (XEP-0054), its avatar (XEP-0486) among
	// it; the zero Card when none was set.
	VCard   vcard.Card
	Version uint64 // last version folded in
}

// Affiliation returns the affiliation of j: a bare JID, or the full JID
// of an occupant from another server.
func (s State) Affiliation(j string) Affiliation {
	if a, ok := s.Affiliations[j]; ok {
		return a
	}
	// An occupant from another server occupies the room as its full JID
	// (one per session, XEP-0045 §7.2); affiliations are its bare JID's
	// (§5.2), bans included.
	if bare, _, full := strings.Cut(j, "/"); full {
		if a, ok := s.Affiliations[bare]; ok {
			return a
		}
	}
	return None
}

// ByNick returns the occupant with nick.
func (s State) ByNick(nick string) (Occupant, bool) {
	for _, o := range s.Occupants {
		if o.Nick == nick {
			return o, true
		}
	}
	return Occupant{}, false
}

// Owners lists the room's owners.
func (s State) Owners() []string {
	var out []string
	for j, a := range s.Affiliations {
		if a == Owner {
			out = append(out, j)
		}
	}
	slices.Sort(out)
	return out
}

// DefaultRole is the role an account with affiliation a gets on entering
// (XEP-0045 §5.1.2).
func (s State) DefaultRole(a Affiliation) Role {
	switch {
	case a == Owner || a == Admin:
		return Moderator
	case a == Outcast:
		return NoRole
	case a == None && s.Config.Moderated:
		return Visitor
	}
	return Participant
}

// Event data.
type (
	Created struct {
		Owner  string `json:"owner"`
		Locked bool   `json:"locked"` // a reserved room waits for its configuration
		Config Config `json:"config"`
	}
	Configured struct {
		Config Config `json:"config"`
	}
	AffiliationSet struct {
		JID         string      `json:"jid"`
		Affiliation Affiliation `json:"affiliation"`
		By          string      `json:"by,omitempty"`
		Reason      string      `json:"reason,omitempty"`
	}
	Joined struct {
		Occupant
	}
	Left struct {
		Account string `json:"account"`
		// Cause: leave, kick, ban, affiliation (321), members-only (322),
		// shutdown (332), error (333: its server answered with an error),
		// idle (no client of the account came for --muc-idle-leave).
		Cause  string `json:"cause"`
		By     string `json:"by,omitempty"`
		Reason string `json:"reason,omitempty"`
	}
	NickChanged struct {
		Account string `json:"account"`
		Nick    string `json:"nick"`
	}
	PresenceChanged struct {
		Account string `json:"account"`
		Show    string `json:"show,omitempty"`
		Status  string `json:"status,omitempty"`
	}
	RoleSet struct {
		Account string `json:"account"`
		Role    Role   `json:"role"`
		By      string `json:"by,omitempty"`
		Reason  string `json:"reason,omitempty"`
	}
	SubjectSet struct {
		Account string `json:"account,omitempty"`
		Nick    string `json:"nick,omitempty"`
		Subject string `json:"subject"`
	}
	MessagePosted struct {
		Account string `json:"account"`
		Nick    string `json:"nick"`
		ID      string `json:"id"`     // the room archive's ID, also the stanza-id by the room
		Stanza  string `json:"stanza"` // as broadcast: from the occupant's room JID, no to, no stanza-ids
		// Erased: the stanza's key is destroyed (adapters/sealing); set
		// when the event is read, never written.
		Erased      bool `json:"erased,omitempty"`
		ErasedBytes int  `json:"erased_bytes,omitempty"`
		// WellFormed: Stanza was checked namespace-well-formed when decided
		// (wellformed.Canonical); events written before the check lack it.
		WellFormed bool `json:"well_formed,omitempty"`
	}
	Destroyed struct {
		Reason    string `json:"reason,omitempty"`
		Alternate string `json:"alternate,omitempty"`
	}
	// VCardSet: an owner (By) set the room's vCard.
	VCardSet struct {
		By string `json:"by"`
		vcard.Card
	}
)

// Errors of the room rules, each the XEP-0045 condition it is answered with.
var (
	ErrNotFound     = errors.New("room: no such room")                         // item-not-found
	ErrLocked       = errors.New("room: locked until its owner configures it") // item-not-found
	ErrConflict     = errors.New("room: nick in use")                          // conflict
	ErrBadNick      = errors.New("room: not a valid nick")                     // jid-malformed
	ErrBanned       = errors.New("room: banned")                               // forbidden
	ErrMembersOnly  = errors.New("room: members only")                         // registration-required
	ErrPassword     = errors.New("room: wrong or missing password")            // not-authorized
	ErrFull         = errors.New("room: full")                                 // service-unavailable
	ErrNotOccupant  = errors.New("room: not an occupant")                      // not-acceptable
	ErrNoVoice      = errors.New("room: no voice")                             // forbidden
	ErrForbidden    = errors.New("room: not allowed to do that")               // forbidden
	ErrNotAllowed   = errors.New("room: not allowed on that occupant")         // not-allowed
	ErrLastOwner    = errors.New("room: a room needs an owner")                // conflict
	ErrInvalid      = errors.New("room: invalid")                              // bad-request
	ErrItemNotFound = errors.New("room: no such occupant")                     // item-not-found
	// ErrMirroredNick: a nick through a DMUC3 mirror is the one it joined
	// with: never rewritten, never changed (the ProtoXEP's business rules).
	ErrMirroredNick = errors.New("room: a nick through a mirror does not change") // not-acceptable
)

// ValidNick checks a nick: a valid resource part of the room's JID.
func ValidNick(room, nick string) error {
	r, err := jid.Parse(room)
	if err != nil || strings.TrimSpace(nick) == "" {
		// A nick of spaces only is valid as a resource but shows as nothing.
		return fmt.Errorf("%w: %q", ErrBadNick, nick)
	}
	if _, err := jid.New(r.Localpart(), r.Domainpart(), nick); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrBadNick, nick, err)
	}
	return nil
}

// Evolve folds one event of the room's stream into s.
func Evolve(s State, e event.Envelope) (State, error) {
	// Maps are copied before a change: a State handed out earlier must not
	// change under its holder.
	occ := func() { s.Occupants = maps.Clone(s.Occupants) }
	aff := func() { s.Affiliations = maps.Clone(s.Affiliations) }
	switch e.Type {
	case TypeCreated:
		var d Created
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		s.JID = JIDOf(e.Stream)
		s.Exists, s.Locked, s.Config = true, d.Locked, d.Config
		s.Affiliations = map[string]Affiliation{d.Owner: Owner}
		s.Occupants = map[string]Occupant{}
	case TypeConfigured:
		var d Configured
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		s.Config, s.Locked = d.Config, false
	case TypeAffiliationSet:
		var d AffiliationSet
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		aff()
		if d.Affiliation == None {
			delete(s.Affiliations, d.JID)
		} else {
			s.Affiliations[d.JID] = d.Affiliation
		}
	case TypeJoined:
		var d Joined
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		occ()
		s.Occupants[d.Account] = d.Occupant
	case TypeLeft:
		var d Left
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		occ()
		delete(s.Occupants, d.Account)
	case TypeNickChanged:
		var d NickChanged
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		occ()
		o := s.Occupants[d.Account]
		o.Nick = d.Nick
		s.Occupants[d.Account] = o
	case TypePresenceChanged:
		var d PresenceChanged
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		occ()
		o := s.Occupants[d.Account]
		o.Show, o.Status = d.Show, d.Status
		s.Occupants[d.Account] = o
	case TypeRoleSet:
		var d RoleSet
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		occ()
		o := s.Occupants[d.Account]
		o.Role = d.Role
		s.Occupants[d.Account] = o
	case TypeSubjectSet:
		var d SubjectSet
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		s.Subject, s.SubjectNick = d.Subject, d.Nick
	case TypeMessagePosted:
		var d MessagePosted
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		s.Messages++
	case TypeMessageRetracted:
		// Nothing of the room's state: the archives show it (a tombstone).
	case TypeVCardSet:
		var d VCardSet
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		s.VCard = d.Card
	case TypeDestroyed:
		var d Destroyed
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		s = State{JID: s.JID}
	default:
		return s, nil
	}
	s.Version = e.Version
	return s, nil
}

// Insider reports whether acct may see inside the room without being
// told more by joining: read its archive (XEP-0313) and its subject and
// occupant count (disco#info). Occupants may; from outside, only an open
// (not members-only), public room without a password is readable by
// anyone but the banned. A members-only or hidden room is readable by
// its members, admins and owners. A password-protected room is readable
// only by its occupants (the password is the key) and its admins and
// owners, who set it.
func (s State) Insider(acct string) bool {
	if _, in := s.Occupants[acct]; in {
		return true
	}
	a := s.Affiliation(acct)
	switch {
	case a == Outcast:
		return false
	case affRank[a] >= affRank[Admin]:
		return true
	case s.Config.PasswordHash != "":
		return false
	case s.Config.MembersOnly || !s.Config.Public:
		return affRank[a] >= affRank[Member]
	}
	return true
}
