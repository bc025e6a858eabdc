package blocking

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/domain/event"
)

// Event types, written by hand: renaming a Go type must not orphan stored events.
const (
	TypeBlocked   event.Type = "JIDsBlocked"
	TypeUnblocked event.Type = "JIDsUnblocked"
)

// Schema is the newest schema of each event type that this build reads and writes.
const Schema = 1

// Errors of the blocking rules.
var (
	ErrInvalid   = errors.New("blocking: invalid")          // bad-request: a block without items
	ErrMalformed = errors.New("blocking: not a JID")        // jid-malformed
	ErrFull      = errors.New("blocking: the list is full") // resource-constraint
	errCommand   = errors.New("blocking: unknown command")  // a programming error
)

// DefaultMaxJIDs is the longest block list when the server is not told
// otherwise: ten times what people block in practice, and each entry is
// checked on every stanza to or from the account.
const DefaultMaxJIDs = 1000

// Limits bound one account's block list; a zero field is no limit.
type Limits struct {
	MaxJIDs int
}

// Blocked is the data of TypeBlocked: the JIDs the event added, canonical,
// none of them blocked before.
type Blocked struct {
	JIDs []string `json:"jids"`
}

// Unblocked is the data of TypeUnblocked: the JIDs the event removed,
// each one blocked before; none means every JID (XEP-0191 §3.4).
type Unblocked struct {
	JIDs []string `json:"jids,omitempty"`
}

// State is an account's block list.
type State struct {
	JIDs    []string // canonical JIDs, in the order blocked
	Version uint64   // stream version of the last blocking event
	set     map[string]struct{}
}

// Has reports whether j, a canonical JID, is on the list as it is: the
// entry itself, not what it matches (Blocks).
func (s State) Has(j string) bool {
	if s.set == nil {
		// A State built by hand rather than by Evolve: no index.
		return slices.Contains(s.JIDs, j)
	}
	_, ok := s.set[j]
	return ok
}

// Blocks reports whether the list blocks from, matched in the order of
// XEP-0191 §5 (after XEP-0016): user@domain/resource (that resource
// only), user@domain (any resource), domain/resource (that resource
// only: an entry equal to the full JID, so the first test), domain (the
// domain itself and every JID at it). Every entry denies, so the order
// changes only the work done.
func (s State) Blocks(from jid.JID) bool {
	if len(s.JIDs) == 0 {
		return false
	}
	return s.Has(from.String()) || s.Has(from.Bare().String()) || s.Has(from.Domainpart())
}

// Command is Block or Unblock.
type Command interface{ command() }

// Block adds JIDs to the list (at least one); Limits are checked against
// the list as it would be.
type Block struct {
	JIDs   []string
	Limits Limits
}

// Unblock removes JIDs from the list; none removes every one.
type Unblock struct {
	JIDs []string
}

func (Block) command()   {}
func (Unblock) command() {}

// Decide returns the event that cmd makes of s, or none when it changes
// nothing: blocking a JID blocked already, or unblocking one that is not.
func Decide(s State, cmd Command, ids *event.IDs, now time.Time, cause string) ([]event.Envelope, error) {
	switch c := cmd.(type) {
	case Block:
		if len(c.JIDs) == 0 {
			return nil, fmt.Errorf("%w: a block names at least one JID", ErrInvalid)
		}
		fresh, err := canonical(c.JIDs, func(j string) bool { return !s.Has(j) })
		if err != nil || len(fresh) == 0 {
			return nil, err
		}
		if max := c.Limits.MaxJIDs; max > 0 && len(s.JIDs)+len(fresh) > max {
			return nil, fmt.Errorf("%w: %d JIDs blocked, %d more asked; at most %d", ErrFull, len(s.JIDs), len(fresh), max)
		}
		return event.One(ids, now, TypeBlocked, Schema, cause, Blocked{JIDs: fresh})
	case Unblock:
		if len(c.JIDs) == 0 {
			if len(s.JIDs) == 0 {
				return nil, nil
			}
			return event.One(ids, now, TypeUnblocked, Schema, cause, Unblocked{})
		}
		gone, err := canonical(c.JIDs, s.Has)
		if err != nil || len(gone) == 0 {
			return nil, err
		}
		return event.One(ids, now, TypeUnblocked, Schema, cause, Unblocked{JIDs: gone})
	}
	return nil, fmt.Errorf("%w: %T", errCommand, cmd)
}

// canonical parses each of jids, and returns the canonical forms that keep
// accepts, each once, in order. One that is no JID fails the whole list.
func canonical(jids []string, keep func(string) bool) ([]string, error) {
	var out []string
	for _, s := range jids {
		j, err := jid.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrMalformed, s, err)
		}
		c := j.String()
		if keep(c) && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Evolve folds one event of the account stream; other types are skipped.
func Evolve(s State, e event.Envelope) (State, error) {
	switch e.Type {
	case TypeBlocked:
		var d Blocked
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		s = s.with(func(set map[string]struct{}, list []string) []string {
			for _, j := range d.JIDs {
				if _, ok := set[j]; !ok {
					set[j] = struct{}{}
					list = append(list, j)
				}
			}
			return list
		})
	case TypeUnblocked:
		var d Unblocked
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		if len(d.JIDs) == 0 {
			s = State{}
			break
		}
		s = s.with(func(set map[string]struct{}, list []string) []string {
			for _, j := range d.JIDs {
				delete(set, j)
			}
			return slices.DeleteFunc(list, func(j string) bool {
				_, ok := set[j]
				return !ok
			})
		})
	default:
		return s, nil
	}
	s.Version = e.Version
	return s, nil
}

// with returns a copy of s whose list change made: states stay values, so
// that a state handed out is never changed under its holder.
func (s State) with(change func(set map[string]struct{}, list []string) []string) State {
	set := make(map[string]struct{}, len(s.set)+1)
	for j := range s.set {
		set[j] = struct{}{}
	}
	list := change(set, slices.Clone(s.JIDs))
	if len(list) == 0 {
		list, set = nil, nil
	}
	return State{JIDs: list, Version: s.Version, set: set}
}
