package room

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/vcard"
	"annals.im/annals/domain/wellformed"
)

// Commands. Account and By are bare JIDs of the accounts acting.
type (
	// Join: an account enters (or a session of an occupant attaches).
	// Create lets it create the room when it does not exist; Locked makes
	// a new room wait for its owner's configuration (XEP-0045 §10.1).
	//
	// Verified is the room's password verifier that the caller checked the
	// joining client's password against (CheckPassword), "" if it checked
	// none. The slow check runs before the command, outside the room's
	// pipeline: a join with a password would otherwise hold up every other
	// command of the room for the length of a key derivation. If the
	// password changed in between, Verified no longer matches and the join
	// is refused.
	Join struct {
		Account, Nick, Verified string
		Show, Status            string
		Create, Locked          bool
		Via                     string // the DMUC3 mirror it joins through ("": directly)
	}
	// Leave: the account exits (an explicit unavailable presence), or an
	// occupant at another server is removed: Cause "error" when its
	// server answered the room with an error (it is no longer there),
	// "shutdown" when this server stopped while it was in (its session
	// here did not survive the restart). "" is an exit.
	Leave struct {
		Account, Status string
		Cause           string
	}
	ChangeNick struct {
		Account, Nick string
	}
	// SetPresence: the account's presence as the room sees it, computed
	// from its attached sessions.
	SetPresence struct {
		Account, Show, Status string
	}
	// Post: a groupchat message, as the room broadcasts it (from the
	// occupant's room JID: the caller builds it with the nick of the state
	// it decides on); ID is the room archive's ID.
	Post struct {
		Account, Stanza, ID string
		// Reserialized: Stanza was written from the tokens of a strict
		// read (wellformed.WriteInner), so Decide need not parse it again.
		Reserialized bool
		// Retracts: the stanza retracts an earlier message (XEP-0424).
		Retracts Retracts
	}
	SetSubject struct {
		Account, Subject string
	}
	Configure struct {
		By     string
		Config Config
	}
	SetAffiliation struct {
		By, JID     string
		Affiliation Affiliation
		Reason      string
	}
	SetRole struct {
		By, Nick string
		Role     Role
		Reason   string
	}
	Destroy struct {
		By, Reason, Alternate string
	}
	// Invite: a mediated invitation. In a members-only room it makes the
	// invitee a member, if the inviter may.
	Invite struct {
		By, Invitee string
	}
	// Forget: the account was deleted. It leaves the room and loses what
	// its affiliation granted (owner, admin, member): a new account under
	// the same name starts as a stranger. A ban stays, or deleting and
	// registering again would lift it. Unlike SetAffiliation, this may
	// leave a room without an owner. Nothing to do is no events, so it may
	// be repeated.
	Forget struct {
		Account string
	}
	// SetVCard: an owner replaces the room's vCard (XEP-0486: its
	// avatar) with XML, of at most MaxBytes bytes (0: no bound).
	SetVCard struct {
		By, XML  string
		MaxBytes int
	}
	// Batch decides several commands as one (an admin request with
	// several items, XEP-0045 §9.5): each on the state the ones before it
	// leave, and all their events, or the first refusal and none.
	Batch []any
)

// Outcome is what a command did.
type Outcome struct {
	Events    []event.Envelope
	Created   bool // the join created the room (status 201)
	Already   bool // the account was in the room: a session attaches, nothing changes
	NickFixed bool // the session asked for another nick than the account's (status 210)
}

// MaxHistory bounds the history length an owner may configure.
const MaxHistory = 1000

// Decide applies a command to a room's state.
func Decide(s State, c any, ids *event.IDs, now time.Time, cause string) (Outcome, error) {
	var out Outcome
	emit := func(t event.Type, data any) error {
		e, err := event.New(ids, now, t, Schema, cause, data)
		out.Events = append(out.Events, e)
		return err
	}
	if _, ok := c.(Join); !ok && !s.Exists {
		return out, ErrNotFound
	}
	switch c := c.(type) {
	case Join:
		if err := ValidNick(s.JID, c.Nick); err != nil {
			return out, err
		}
		if !s.Exists {
			if !c.Create {
				return out, ErrNotFound
			}
			out.Created = true
			if err := emit(TypeCreated, Created{Owner: c.Account, Locked: c.Locked, Config: DefaultConfig()}); err != nil {
				return out, err
			}
			return out, emit(TypeJoined, Joined{Occupant{Account: c.Account, Nick: c.Nick, Role: Moderator, Show: c.Show, Status: c.Status, Via: c.Via}})
		}
		if o, ok := s.Occupants[c.Account]; ok {
			if (c.Via != "" || o.Via != "") && o.Nick != c.Nick {
				return out, ErrMirroredNick
			}
			out.Already, out.NickFixed = true, o.Nick != c.Nick
			return out, nil
		}
		a := s.Affiliation(c.Account)
		switch {
		case s.Locked && a != Owner:
			return out, ErrLocked
		case a == Outcast:
			return out, ErrBanned
		case s.Config.MembersOnly && affRank[a] < affRank[Member]:
			return out, ErrMembersOnly
		case s.Config.PasswordHash != "" && c.Verified != s.Config.PasswordHash:
			return out, ErrPassword
		case s.Config.MaxOccupants > 0 && len(s.Occupants) >= s.Config.MaxOccupants && affRank[a] < affRank[Admin]:
			return out, ErrFull
		}
		if _, taken := s.ByNick(c.Nick); taken {
			return out, ErrConflict
		}
		return out, emit(TypeJoined, Joined{Occupant{Account: c.Account, Nick: c.Nick, Role: s.DefaultRole(a), Show: c.Show, Status: c.Status, Via: c.Via}})
	case Leave:
		if _, ok := s.Occupants[c.Account]; !ok {
			return out, ErrNotOccupant
		}
		left := Left{Account: c.Account, Cause: "leave", Reason: c.Status}
		switch c.Cause {
		case "":
		case "error", "shutdown", "idle":
			left.Cause = c.Cause
		default:
			return out, fmt.Errorf("%w: leaving for %q", ErrInvalid, c.Cause)
		}
		if err := emit(TypeLeft, left); err != nil {
			return out, err
		}
		return out, s.destroyIfEmpty(emit, 1)
	case ChangeNick:
		o, ok := s.Occupants[c.Account]
		switch {
		case !ok:
			return out, ErrNotOccupant
		case o.Nick == c.Nick:
			return out, nil
		case o.Via != "":
			return out, ErrMirroredNick
		}
		if err := ValidNick(s.JID, c.Nick); err != nil {
			return out, err
		}
		if _, taken := s.ByNick(c.Nick); taken {
			return out, ErrConflict
		}
		return out, emit(TypeNickChanged, NickChanged{Account: c.Account, Nick: c.Nick})
	case SetPresence:
		o, ok := s.Occupants[c.Account]
		switch {
		case !ok:
			return out, ErrNotOccupant
		case o.Show == c.Show && o.Status == c.Status:
			return out, nil
		}
		return out, emit(TypePresenceChanged, PresenceChanged{Account: c.Account, Show: c.Show, Status: c.Status})
	case Post:
		o, ok := s.Occupants[c.Account]
		switch {
		case !ok:
			return out, ErrNotOccupant
		case roleRank[o.Role] < roleRank[Participant]:
			return out, ErrNoVoice
		case c.ID == "" || c.Stanza == "":
			return out, fmt.Errorf("%w: no archive ID or no stanza", ErrInvalid)
		}
		if !c.Reserialized {
			if _, err := wellformed.Canonical(c.Stanza); err != nil {
				return out, fmt.Errorf("%w: %v", ErrInvalid, err)
			}
		}
		if err := emit(TypeMessagePosted, MessagePosted{Account: c.Account, Nick: o.Nick, ID: c.ID, Stanza: c.Stanza, WellFormed: true}); err != nil {
			return out, err
		}
		return out, s.retraction(c, c.ID, emit)
	case Moderate:
		if _, err := wellformed.Canonical(c.Notice); c.Notice != "" && err != nil {
			return out, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return out, s.moderate(c, emit)
	case SetSubject:
		o, ok := s.Occupants[c.Account]
		switch {
		case !ok:
			return out, ErrNotOccupant
		case o.Role != Moderator && !(s.Config.ChangeSubject && o.Role == Participant):
			return out, ErrForbidden
		}
		return out, emit(TypeSubjectSet, SubjectSet{Account: c.Account, Nick: o.Nick, Subject: c.Subject})
	case Configure:
		if s.Affiliation(c.By) != Owner {
			return out, ErrForbidden
		}
		if c.Config.MaxOccupants < 0 || c.Config.HistoryLength < 0 || c.Config.HistoryLength > MaxHistory {
			return out, fmt.Errorf("%w: max occupants %d, history %d (0 to %d)", ErrInvalid, c.Config.MaxOccupants, c.Config.HistoryLength, MaxHistory)
		}
		if err := emit(TypeConfigured, Configured{Config: c.Config}); err != nil {
			return out, err
		}
		if c.Config.MembersOnly && !s.Config.MembersOnly {
			for _, acct := range sortedKeys(s.Occupants) {
				if affRank[s.Affiliation(acct)] < affRank[Member] {
					if err := emit(TypeLeft, Left{Account: acct, Cause: "members-only", By: c.By}); err != nil {
						return out, err
					}
				}
			}
		}
		return out, nil
	case SetAffiliation:
		return out, s.setAffiliation(c, emit)
	case SetRole:
		return out, s.setRole(c, emit)
	case Destroy:
		if s.Affiliation(c.By) != Owner {
			return out, ErrForbidden
		}
		return out, emit(TypeDestroyed, Destroyed{Reason: c.Reason, Alternate: c.Alternate})
	case Invite:
		if _, ok := s.Occupants[c.By]; !ok {
			return out, ErrNotOccupant
		}
		if !s.Config.MembersOnly || affRank[s.Affiliation(c.Invitee)] >= affRank[Member] {
			return out, nil // a plain mediated invitation: nothing to record
		}
		by := s.Affiliation(c.By)
		if affRank[by] < affRank[Admin] && !s.Config.AllowInvites {
			return out, ErrForbidden
		}
		if s.Affiliation(c.Invitee) == Outcast && affRank[by] < affRank[Admin] {
			return out, ErrForbidden
		}
		return out, emit(TypeAffiliationSet, AffiliationSet{JID: c.Invitee, Affiliation: Member, By: c.By, Reason: "invited"})
	case Forget:
		return out, s.forget(c, emit)
	case SetVCard:
		if s.Affiliation(c.By) != Owner {
			// XEP-0486 §3.2: only owners set the room's avatar.
			return out, fmt.Errorf("%w: only owners set the room's vCard", ErrForbidden)
		}
		card, err := vcard.Parse(c.XML, c.MaxBytes)
		if err != nil || card.XML == s.VCard.XML {
			return out, err // the same vCard again: nothing to record
		}
		return out, emit(TypeVCardSet, VCardSet{By: c.By, Card: card})
	case Batch:
		st := s
		for _, sub := range c {
			o, err := Decide(st, sub, ids, now, cause)
			if err != nil {
				return Outcome{}, err
			}
			for _, e := range o.Events {
				e.Stream, e.Version = Stream(st.JID), st.Version+1
				if st, err = Evolve(st, e); err != nil {
					return Outcome{}, err
				}
			}
			out.Events = append(out.Events, o.Events...)
		}
		return out, nil
	default:
		return out, fmt.Errorf("room: unknown command %T", c)
	}
}

func (s State) forget(c Forget, emit func(event.Type, any) error) error {
	const why = "the account was deleted"
	if a := s.Affiliation(c.Account); a != None && a != Outcast {
		if err := emit(TypeAffiliationSet, AffiliationSet{JID: c.Account, Affiliation: None, Reason: why}); err != nil {
			return err
		}
	}
	if _, ok := s.Occupants[c.Account]; !ok {
		return nil
	}
	if err := emit(TypeLeft, Left{Account: c.Account, Cause: "leave", Reason: why}); err != nil {
		return err
	}
	return s.destroyIfEmpty(emit, 1)
}

// destroyIfEmpty ends a temporary room whose last occupant is leaving
// (gone: how many occupants the caller's events removed).
func (s State) destroyIfEmpty(emit func(event.Type, any) error, gone int) error {
	if s.Config.Persistent || len(s.Occupants) > gone {
		return nil
	}
	return emit(TypeDestroyed, Destroyed{Reason: "the last occupant left a temporary room"})
}

func (s State) setAffiliation(c SetAffiliation, emit func(event.Type, any) error) error {
	by, was := s.Affiliation(c.By), s.Affiliation(c.JID)
	switch {
	case was == c.Affiliation:
		return nil
	case by == Owner:
	case by == Admin:
		// Admins manage members and outcasts, never admins or owners
		// (XEP-0045 §5.2.2).
		if affRank[c.Affiliation] >= affRank[Admin] {
			return ErrForbidden
		}
		if affRank[was] >= affRank[Admin] {
			return ErrNotAllowed
		}
	default:
		return ErrForbidden
	}
	if was == Owner && len(s.Owners()) == 1 {
		return ErrLastOwner
	}
	if err := emit(TypeAffiliationSet, AffiliationSet{JID: c.JID, Affiliation: c.Affiliation, By: c.By, Reason: c.Reason}); err != nil {
		return err
	}
	// The occupants the affiliation is theirs: an account here, or each
	// session of a user from another server, which occupies the room as
	// its full JID (Affiliation): a ban removes them all.
	for _, acct := range slices.Sorted(maps.Keys(s.Occupants)) {
		if bare, _, _ := strings.Cut(acct, "/"); bare != c.JID {
			continue
		}
		o := s.Occupants[acct]
		var err error
		switch {
		case c.Affiliation == Outcast:
			err = emit(TypeLeft, Left{Account: acct, Cause: "ban", By: c.By, Reason: c.Reason})
		case s.Config.MembersOnly && affRank[c.Affiliation] < affRank[Member]:
			err = emit(TypeLeft, Left{Account: acct, Cause: "affiliation", By: c.By, Reason: c.Reason})
		case s.DefaultRole(c.Affiliation) != o.Role:
			err = emit(TypeRoleSet, RoleSet{Account: acct, Role: s.DefaultRole(c.Affiliation), By: c.By, Reason: c.Reason})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s State) setRole(c SetRole, emit func(event.Type, any) error) error {
	actor, ok := s.Occupants[c.By]
	if !ok || actor.Role != Moderator {
		return ErrForbidden
	}
	target, ok := s.ByNick(c.Nick)
	if !ok {
		return ErrItemNotFound
	}
	byAff, targetAff := s.Affiliation(c.By), s.Affiliation(target.Account)
	switch c.Role {
	case Moderator:
		if affRank[byAff] < affRank[Admin] {
			return ErrForbidden
		}
	case Participant, Visitor, NoRole:
		// Nobody lowers an admin or owner (§8.2, §8.4); revoking moderator
		// status takes an admin or owner (§9.7).
		if affRank[targetAff] >= affRank[Admin] {
			return ErrNotAllowed
		}
		if target.Role == Moderator && affRank[byAff] < affRank[Admin] {
			return ErrForbidden
		}
	default:
		return fmt.Errorf("%w: role %q", ErrInvalid, c.Role)
	}
	if c.Role == NoRole {
		if err := emit(TypeLeft, Left{Account: target.Account, Cause: "kick", By: c.By, Reason: c.Reason}); err != nil {
			return err
		}
		return s.destroyIfEmpty(emit, 1)
	}
	if c.Role == target.Role {
		return nil
	}
	return emit(TypeRoleSet, RoleSet{Account: target.Account, Role: c.Role, By: c.By, Reason: c.Reason})
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
