package push

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
	TypeEnabled  event.Type = "AccountPushEnabled"
	TypeDisabled event.Type = "AccountPushDisabled"
)

// Schema is the newest schema of each event type that this build reads and writes.
const Schema = 1

// Errors of the push rules.
var (
	ErrInvalid = errors.New("push: invalid")                // bad-request
	ErrFull    = errors.New("push: too many registrations") // resource-constraint
	errCommand = errors.New("push: unknown command")        // a programming error
)

// DefaultMaxRegistrations is the most registrations an account holds
// when the server is not told otherwise: one per device and app, with
// room to spare; each one costs a publish per message while its client
// sleeps.
const DefaultMaxRegistrations = 8

// MaxNode bounds a node's length, and a resource's (RFC 7622 §3.4: 1023
// bytes).
const (
	MaxNode     = 1024
	maxResource = 1023
)

// Registration is one app server's node the account's notifications go
// to.
type Registration struct {
	Service  string `json:"service"`            // the push service's JID, canonical
	Node     string `json:"node,omitempty"`     // its node for this client
	Resource string `json:"resource,omitempty"` // the client that enabled it
	// Options: the client gave publish-options, kept beside the log.
	Options bool `json:"options,omitempty"`
}

// Enabled is the data of TypeEnabled: one registration, new or replacing
// the one with the same service and node.
type Enabled struct {
	Registration
}

// Disabled is the data of TypeDisabled: the registrations of Service
// with Node removed, or every one of Service's when Node is "" and All;
// Reason says why when it was not the client's wish (the service
// answered with an error).
type Disabled struct {
	Service string `json:"service"`
	Node    string `json:"node,omitempty"`
	All     bool   `json:"all,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// State is an account's registrations, in the order enabled.
type State struct {
	Registrations []Registration
}

// Limits bound one account's registrations; a zero field is no limit.
type Limits struct {
	MaxRegistrations int
}

// Command is Enable or Disable.
type Command interface{ command() }

// Enable registers a push service's node for the client Resource.
type Enable struct {
	Registration
	Limits Limits
}

// Disable removes a service's registration for Node, or all of the
// service's when Node is "" (XEP-0357 §6).
type Disable struct {
	Service, Node, Reason string
}

func (Enable) command()  {}
func (Disable) command() {}

// Decide returns the event cmd makes of s, or none when it changes
// nothing.
func Decide(s State, cmd Command, ids *event.IDs, now time.Time, cause string) ([]event.Envelope, error) {
	switch c := cmd.(type) {
	case Enable:
		svc, err := canonical(c.Service)
		if err != nil {
			return nil, err
		}
		if len(c.Node) > MaxNode || len(c.Resource) > maxResource {
			return nil, fmt.Errorf("%w: a node or resource longer than %d bytes", ErrInvalid, MaxNode)
		}
		r := c.Registration
		r.Service = svc
		i := s.find(r.Service, r.Node)
		if i >= 0 && s.Registrations[i] == r {
			return nil, nil
		}
		if max := c.Limits.MaxRegistrations; i < 0 && max > 0 && len(s.Registrations) >= max {
			return nil, fmt.Errorf("%w: %d registrations, at most %d; disable one first", ErrFull, len(s.Registrations), max)
		}
		return event.One(ids, now, TypeEnabled, Schema, cause, Enabled{r})
	case Disable:
		svc, err := canonical(c.Service)
		if err != nil {
			return nil, err
		}
		d := Disabled{Service: svc, Node: c.Node, All: c.Node == "", Reason: c.Reason}
		if !slices.ContainsFunc(s.Registrations, d.removes) {
			return nil, nil
		}
		return event.One(ids, now, TypeDisabled, Schema, cause, d)
	}
	return nil, fmt.Errorf("%w: %T", errCommand, cmd)
}

// canonical checks a push service's JID (XEP-0357 §5: the 'jid'
// attribute, required) and returns its canonical form.
func canonical(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: a push service's JID is required", ErrInvalid)
	}
	j, err := jid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q is not a JID: %v", ErrInvalid, s, err)
	}
	return j.String(), nil
}

func (s State) find(service, node string) int {
	return slices.IndexFunc(s.Registrations, func(r Registration) bool { return r.Service == service && r.Node == node })
}

func (d Disabled) removes(r Registration) bool {
	return r.Service == d.Service && (d.All || r.Node == d.Node)
}

// Evolve folds one event of the account stream; other types are skipped.
func Evolve(s State, e event.Envelope) (State, error) {
	switch e.Type {
	case TypeEnabled:
		var d Enabled
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		regs := slices.Clone(s.Registrations)
		if i := s.find(d.Service, d.Node); i >= 0 {
			regs[i] = d.Registration
		} else {
			regs = append(regs, d.Registration)
		}
		return State{Registrations: regs}, nil
	case TypeDisabled:
		var d Disabled
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		regs := slices.DeleteFunc(slices.Clone(s.Registrations), d.removes)
		if len(regs) == 0 {
			regs = nil
		}
		return State{Registrations: regs}, nil
	}
	return s, nil
}
