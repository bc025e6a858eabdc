package mirror

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"annals.im/annals/domain/event"
)

// Event types, written by hand: renaming a Go type must not orphan stored events.
const (
	TypeApplied event.Type = "MirrorApplied"
	TypePosted  event.Type = "MirrorPosted"
	TypeLinked  event.Type = "MirrorLinked"
	TypeReset   event.Type = "MirrorReset"
	TypeRefused event.Type = "MirrorRefused"
)

// Schema is the newest schema of each event type that this build reads and writes.
const Schema = 1

const streamPrefix = "mirror-"

// Stream is the stream of the mirror of the room with bare JID room.
func Stream(room string) string { return streamPrefix + room }

// RoomOf is the room a mirror stream replicates, or "" for another stream.
func RoomOf(stream string) string {
	room, ok := strings.CutPrefix(stream, streamPrefix)
	if !ok {
		return ""
	}
	return room
}

// Kinds of what the master says at a sequence.
const (
	Presence = "presence" // an occupant's presence: joined, changed, left
	Message  = "message"  // a groupchat message
	Subject  = "subject"  // the room's subject
	Config   = "config"   // the room's configuration (a data form)
	Roster   = "roster"   // the whole roster at once (a new mirror, a resync)
	Tick     = "tick"     // a room event with nothing for the mirror to show: its sequence alone
)

// Occupant is an occupant of the room as the master describes it.
type Occupant struct {
	Nick        string `json:"nick"`
	JID         string `json:"jid,omitempty"` // its real JID, when the room shows it
	Affiliation string `json:"affiliation,omitempty"`
	Role        string `json:"role,omitempty"`
	Show        string `json:"show,omitempty"`
	Status      string `json:"status,omitempty"`
	// Local is the account of this server the occupant is (the mirror
	// knows its own accounts' nicks), "" for anyone else: its entries and
	// exits are that account's stays in the room, and the room's messages
	// during them are in its archive.
	Local string `json:"local,omitempty"`
}

// Applied is what the master said at sequence Seq. One room event may
// take several stanzas (a nick change is an exit and an entrance; a
// room's end tells each occupant): they share the sequence and are its
// parts 0, 1, … in order, More on all but the last.
type Applied struct {
	Seq  uint64 `json:"seq"`
	Part uint32 `json:"part,omitempty"`
	More bool   `json:"more,omitempty"`
	Kind string `json:"kind"`
	// Stanza is the master's stanza as the mirror hands it on (a message,
	// a presence, the subject); empty for a roster.
	Stanza string `json:"stanza,omitempty"`
	// Occupant is the presence's occupant; Gone: it left.
	Occupant *Occupant `json:"occupant,omitempty"`
	Gone     bool      `json:"gone,omitempty"`
	// Occupants is a roster's whole list.
	Occupants []Occupant `json:"occupants,omitempty"`
	Subject   string     `json:"subject,omitempty"`
	// Nick is who said a message; ID its archive ID at the master (the
	// room's XEP-0359 stanza-id), which the mirror's archives keep.
	Nick string `json:"nick,omitempty"`
	ID   string `json:"id,omitempty"`
	// Accepts is the local id of a message of the mirror's own users that
	// this one is the master's copy of.
	Accepts string `json:"accepts,omitempty"`
	// Seen: the post it accepts was delivered here when it was posted
	// (during a partition), so the mirror's users are not told again.
	Seen bool `json:"seen,omitempty"`
}

// Posted is a message a local user of the mirror sent the room; it waits
// for the master to accept it.
type Posted struct {
	LocalID string `json:"local_id"`
	Account string `json:"account"`
	Nick    string `json:"nick"`
	Stanza  string `json:"stanza"`
	// Partitioned: the link was down, so the mirror's users saw it at
	// once, before the master ordered it.
	Partitioned bool `json:"partitioned,omitempty"`
}

// Linked is the link to the room's master going down or coming back, as
// the mirror saw it: for the operators (annals mirror list) and the
// auditors.
type Linked struct {
	Up  bool   `json:"up"`
	Why string `json:"why,omitempty"`
}

// Reset is an operator's asking for the room again from the master
// (annals mirror rebuild --from-master): the replica forgets what the
// master said and takes it again from the first sequence; the posts the
// master has not accepted still wait.
type Reset struct {
	Why string `json:"why,omitempty"`
}

// Refused is the master's refusal of a post (its sender was banned
// while the link was lost, say): it waits no more, and no archive takes
// it.
type Refused struct {
	LocalID   string `json:"local_id"`
	Condition string `json:"condition,omitempty"` // the stanza error's
}

// State is the replica, as folded from its stream.
type State struct {
	Room      string
	Seq       uint64              // the last master sequence applied
	Part      uint32              // its last part applied
	More      bool                // more parts of Seq are to come
	Occupants map[string]Occupant // by nick
	Subject   string
	Config    string   // the configuration form as the master sent it
	Pending   []Posted // posted and not accepted, in posting order
	Down      bool     // the link to the master is lost
	Version   uint64   // of the stream
}

// IsPending reports whether the local message localID waits for the master.
func (s State) IsPending(localID string) bool {
	return slices.ContainsFunc(s.Pending, func(p Posted) bool { return p.LocalID == localID })
}

// Posted returns the pending post localID (ok false: none waits).
func (s State) Posted(localID string) (Posted, bool) {
	i := slices.IndexFunc(s.Pending, func(p Posted) bool { return p.LocalID == localID })
	if i < 0 {
		return Posted{}, false
	}
	return s.Pending[i], true
}

func (s State) pending(localID string) Posted { p, _ := s.Posted(localID); return p }

// Commands.
type (
	// Apply: the master said something at a sequence.
	Apply struct{ Applied }
	// Post: a local user sent the room a message.
	Post struct{ Posted }
	// Link: the link to the master went down or came back.
	Link struct{ Linked }
	// Refetch: take the room from the master again.
	Refetch struct{ Reset }
	// Refuse: the master refused a post.
	Refuse struct{ Refused }
)

// Errors of Decide.
var (
	// ErrStale: the sequence was applied already (a resend, a duplicate):
	// nothing to do, and nothing to deliver again.
	ErrStale = errors.New("mirror: sequence applied already")
	// ErrInvalid: a command that cannot be applied.
	ErrInvalid = errors.New("mirror: invalid")
)

// GapError says the master skipped sequences: the caller asks it to
// resend what follows After (a sequence whose parts came only in part is
// asked for whole: After is the one before it).
type GapError struct{ After, Got uint64 }

func (e *GapError) Error() string {
	return fmt.Sprintf("mirror: sequence %d after %d: %d missing", e.Got, e.After, e.Got-e.After-1)
}

// MaxPending bounds the messages the mirror's users may post while the
// master has not accepted them (a long partition): past it the room
// refuses new ones until the link is back.
const MaxPending = 10000

// Decide checks a command against the replica and returns its events.
func Decide(s State, c any, ids *event.IDs, now time.Time, cause string) ([]event.Envelope, error) {
	switch c := c.(type) {
	case Apply:
		a := c.Applied
		switch {
		case a.Seq == 0:
			return nil, fmt.Errorf("%w: sequence 0", ErrInvalid)
		case a.Seq < s.Seq || a.Seq == s.Seq && (a.Part <= s.Part || a.Kind == Roster):
			return nil, ErrStale
		case a.Kind == Roster:
			// A roster is the room's whole state at its sequence (a new
			// mirror, a resync): it may jump ahead; anything else may not.
			if a.Part != 0 || a.More {
				return nil, fmt.Errorf("%w: a roster in parts", ErrInvalid)
			}
		case s.More && (a.Seq != s.Seq || a.Part != s.Part+1):
			return nil, &GapError{After: s.Seq - 1, Got: a.Seq}
		case !s.More && (a.Seq != s.Seq+1 || a.Part != 0):
			if a.Seq == s.Seq {
				return nil, ErrStale // a later part of a sequence applied whole
			}
			return nil, &GapError{After: s.Seq, Got: a.Seq}
		}
		switch a.Kind {
		case Presence:
			if a.Occupant == nil || a.Occupant.Nick == "" {
				return nil, fmt.Errorf("%w: a presence without its occupant", ErrInvalid)
			}
		case Message, Subject, Config, Tick:
		case Roster:
			if a.Occupant != nil || a.Gone {
				return nil, fmt.Errorf("%w: a roster names its occupants in Occupants", ErrInvalid)
			}
		default:
			return nil, fmt.Errorf("%w: kind %q", ErrInvalid, a.Kind)
		}
		if a.Accepts != "" && (a.Kind != Message || s.pending(a.Accepts).Nick != a.Nick) {
			// A copy of a message accepted before (a resend after a
			// partition), or one whose sender is not the post's (an
			// origin-id anyone may write), is applied as the master's,
			// accepting nothing.
			a.Accepts = ""
		}
		a.Seen = a.Accepts != "" && s.pending(a.Accepts).Partitioned
		e, err := event.New(ids, now, TypeApplied, Schema, cause, a)
		return []event.Envelope{e}, err
	case Post:
		p := c.Posted
		switch {
		case p.LocalID == "" || p.Account == "" || p.Nick == "" || p.Stanza == "":
			return nil, fmt.Errorf("%w: a post needs a local id, an account, a nick and the stanza", ErrInvalid)
		case s.IsPending(p.LocalID):
			return nil, ErrStale
		case len(s.Pending) >= MaxPending:
			return nil, fmt.Errorf("%w: %d messages wait for the master already", ErrInvalid, len(s.Pending))
		}
		e, err := event.New(ids, now, TypePosted, Schema, cause, p)
		return []event.Envelope{e}, err
	case Refetch:
		e, err := event.New(ids, now, TypeReset, Schema, cause, c.Reset)
		return []event.Envelope{e}, err
	case Refuse:
		if !s.IsPending(c.LocalID) {
			return nil, ErrStale
		}
		e, err := event.New(ids, now, TypeRefused, Schema, cause, c.Refused)
		return []event.Envelope{e}, err
	case Link:
		if s.Down == !c.Up {
			return nil, nil // as it was: nothing to record
		}
		e, err := event.New(ids, now, TypeLinked, Schema, cause, c.Linked)
		return []event.Envelope{e}, err
	}
	return nil, fmt.Errorf("%w: command %T", ErrInvalid, c)
}

// Evolve folds one event into the replica. Maps and slices are copied
// before a change: a State handed out earlier must not change under its
// holder.
func Evolve(s State, e event.Envelope) (State, error) {
	s.Room = RoomOf(e.Stream)
	switch e.Type {
	case TypeApplied:
		var a Applied
		if err := e.Decode(Schema, &a); err != nil {
			return s, err
		}
		s.Seq, s.Part, s.More = a.Seq, a.Part, a.More
		switch a.Kind {
		case Presence:
			s.Occupants = maps.Clone(s.Occupants)
			if s.Occupants == nil {
				s.Occupants = map[string]Occupant{}
			}
			if a.Gone {
				delete(s.Occupants, a.Occupant.Nick)
			} else {
				s.Occupants[a.Occupant.Nick] = *a.Occupant
			}
		case Roster:
			s.Occupants = make(map[string]Occupant, len(a.Occupants))
			for _, o := range a.Occupants {
				s.Occupants[o.Nick] = o
			}
		case Subject:
			s.Subject = a.Subject
		case Config:
			s.Config = a.Stanza
		}
		if a.Accepts != "" {
			s.Pending = slices.DeleteFunc(slices.Clone(s.Pending), func(p Posted) bool { return p.LocalID == a.Accepts })
		}
	case TypePosted:
		var p Posted
		if err := e.Decode(Schema, &p); err != nil {
			return s, err
		}
		s.Pending = append(slices.Clip(s.Pending), p)
	case TypeReset:
		s.Seq, s.Part, s.More, s.Occupants, s.Subject, s.Config = 0, 0, false, nil, "", ""
	case TypeRefused:
		var r Refused
		if err := e.Decode(Schema, &r); err != nil {
			return s, err
		}
		s.Pending = slices.DeleteFunc(slices.Clone(s.Pending), func(p Posted) bool { return p.LocalID == r.LocalID })
	case TypeLinked:
		var l Linked
		if err := e.Decode(Schema, &l); err != nil {
			return s, err
		}
		s.Down = !l.Up
	default:
		return s, fmt.Errorf("mirror: unknown event type %s", e.Type)
	}
	s.Version = e.Version
	return s, nil
}
