package pep

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"annals.im/annals/domain/event"
)

// Event types, written by hand: renaming a Go type must not orphan stored events.
const (
	TypeItemPublished event.Type = "PEPItemPublished"
	TypeItemRetracted event.Type = "PEPItemRetracted"
)

// Schema is the newest schema of each event type that this build reads and writes.
const Schema = 1

// Access models (XEP-0060 §4.5) this service keeps apart.
const (
	Presence  = "presence"
	Roster    = "roster" // the groups in Config.RosterGroups
	Whitelist = "whitelist"
	Open      = "open"
)

// MaxRosterGroups bounds a node's pubsub#roster_groups_allowed.
const MaxRosterGroups = 64

// MaxItems bounds any node when Limits.MaxItems is not set.
const MaxItems = 1000

// Limits bound what one account keeps in PEP; a zero field is no limit
// (MaxItems: the constant MaxItems). Every item is folded into the
// account's state, held in memory while the account is in use, so these
// bound that memory as well as the log's growth per node.
type Limits struct {
	MaxPayload int // bytes of one item's payload
	MaxItems   int // the highest pubsub#max_items a node may have
	MaxNodes   int // nodes per account, emptied ones included (they keep their configuration)
	MaxBytes   int // bytes of all the account's node names, item IDs and payloads
}

// Config is a node's configuration, from publish-options.
type Config struct {
	AccessModel string `json:"access_model"`
	MaxItems    int    `json:"max_items"`
	// RosterGroups are the owner's roster groups whose contacts may read
	// a node with the roster access model.
	RosterGroups []string `json:"roster_groups,omitempty"`
}

// Item is one published item: its ID and payload (the item's child XML).
//
// HasPassword says that passwords were taken out of the payload (a
// bookmark's <password/>, XEP-0402) and are kept beside the log, where
// they can be erased: the log only ever holds the fact that there are
// some. Items published before that was done hold their password in the
// payload, and HasPassword false.
type Item struct {
	ID          string `json:"id"`
	Payload     string `json:"payload"`
	HasPassword bool   `json:"has_password,omitempty"`
	// Erased: the payload's key is destroyed (adapters/sealing); set when
	// the event is read, never written. Evolve drops such an item.
	Erased bool `json:"erased,omitempty"`
}

// ItemPublished is the data of TypeItemPublished.
type ItemPublished struct {
	Node   string `json:"node"`
	Item          // published; replaces an item with the same ID
	Config Config `json:"config"` // the node's configuration after it
}

// ItemRetracted is the data of TypeItemRetracted.
type ItemRetracted struct {
	Node string `json:"node"`
	ID   string `json:"id"`
}

// Node is one node's state: its configuration and items, oldest first.
type Node struct {
	Config Config
	Items  []Item
}

// Item returns the item with id.
func (n Node) Item(id string) (Item, bool) {
	i := slices.IndexFunc(n.Items, func(it Item) bool { return it.ID == id })
	if i < 0 {
		return Item{}, false
	}
	return n.Items[i], true
}

// State is an account's nodes.
type State struct {
	Nodes map[string]Node
}

// Errors, each the XEP-0060 condition it is answered with.
var (
	ErrInvalid       = errors.New("pep: invalid")                         // bad-request
	ErrPrecondition  = errors.New("pep: publish-options do not match")    // conflict + precondition-not-met
	ErrItemNotFound  = errors.New("pep: no such item")                    // item-not-found
	ErrPayloadTooBig = errors.New("pep: payload too big")                 // not-acceptable + payload-too-big
	ErrTooManyNodes  = errors.New("pep: too many nodes")                  // resource-constraint + max-nodes-exceeded
	ErrQuota         = errors.New("pep: the account's items are too big") // resource-constraint
	// Reading another account's node (XEP-0060 §6.5.9).
	ErrNotSubscribed    = errors.New("pep: presence subscription required") // not-authorized + presence-subscription-required
	ErrNotInRosterGroup = errors.New("pep: not in a roster group allowed")  // not-authorized + not-in-roster-group
	ErrClosedNode       = errors.New("pep: the node is the owner's alone")  // not-allowed + closed-node
)

// Reader is who asks to read an account's node, as the owner's roster
// sees them.
type Reader struct {
	Owner      bool     // the account itself
	Subscribed bool     // the owner shares its presence with them (From or Both)
	InRoster   bool     // in the owner's roster, whatever the subscription
	Groups     []string // the owner's roster groups they are in
}

// CanRead reports whether r may read node n (XEP-0060 §4.5), or the
// error that says why not.
func (n Node) CanRead(r Reader) error {
	switch {
	case r.Owner || n.Config.AccessModel == Open:
		return nil
	case n.Config.AccessModel == Presence || n.Config.AccessModel == "":
		if r.Subscribed {
			return nil
		}
		return ErrNotSubscribed
	case n.Config.AccessModel == Roster:
		if r.InRoster && slices.ContainsFunc(r.Groups, func(g string) bool { return slices.Contains(n.Config.RosterGroups, g) }) {
			return nil
		}
		return ErrNotInRosterGroup
	}
	return ErrClosedNode
}

// Publish is the command to publish an item; Options are the
// publish-options (nil: none given).
//
// Passwords are what the caller took out of Item.Payload (leaving empty
// elements in their place) to keep beside the log, one per password
// element of the payload in document order, "" where an element held
// none. They never reach an event: the event records only whether there
// is one (Item.HasPassword), and the caller stores them once the event is
// appended.
//
// Limits are the account's quotas, checked against the state the
// publication is decided on.
type Publish struct {
	Node      string
	Item      Item
	Options   *Config
	Passwords []string
	Limits    Limits
}

// Retract is the command to remove an item.
type Retract struct {
	Node, ID string
}

// DefaultConfig is a new node's configuration without publish-options.
func DefaultConfig() Config { return Config{AccessModel: Presence, MaxItems: 1} }

// Decide applies a command.
func Decide(s State, c any, ids *event.IDs, now time.Time, cause string) ([]event.Envelope, error) {
	emit := func(t event.Type, d any) ([]event.Envelope, error) {
		e, err := event.New(ids, now, t, Schema, cause, d)
		return []event.Envelope{e}, err
	}
	switch c := c.(type) {
	case Publish:
		if c.Node == "" || c.Item.Payload == "" {
			return nil, fmt.Errorf("%w: a publication needs a node and a payload", ErrInvalid)
		}
		if c.Item.ID == "" {
			c.Item.ID = ids.New(now).String()
		}
		c.Item.HasPassword = slices.ContainsFunc(c.Passwords, func(p string) bool { return p != "" })
		lim := c.Limits
		if lim.MaxPayload > 0 && len(c.Item.Payload) > lim.MaxPayload {
			return nil, fmt.Errorf("%w: %d bytes; the limit is %d", ErrPayloadTooBig, len(c.Item.Payload), lim.MaxPayload)
		}
		maxItems := lim.MaxItems
		if maxItems <= 0 {
			maxItems = MaxItems
		}
		n, exists := s.Nodes[c.Node]
		cfg := n.Config
		if !exists {
			cfg = DefaultConfig()
		}
		if o := c.Options; o != nil {
			switch {
			case o.AccessModel != "" && o.AccessModel != Presence && o.AccessModel != Roster && o.AccessModel != Whitelist && o.AccessModel != Open:
				return nil, fmt.Errorf("%w: access model %q", ErrInvalid, o.AccessModel)
			case len(o.RosterGroups) > MaxRosterGroups:
				return nil, fmt.Errorf("%w: %d roster groups (at most %d)", ErrInvalid, len(o.RosterGroups), MaxRosterGroups)
			case o.MaxItems < 0 || o.MaxItems > maxItems:
				return nil, fmt.Errorf("%w: max_items %d (1 to %d)", ErrInvalid, o.MaxItems, maxItems)
			case exists && o.AccessModel != "" && o.AccessModel != cfg.AccessModel:
				// XEP-0223 §3: publish-options are a precondition on an existing node.
				return nil, fmt.Errorf("%w: node %s has access model %s", ErrPrecondition, c.Node, cfg.AccessModel)
			}
			if o.AccessModel != "" {
				cfg.AccessModel = o.AccessModel
			}
			if o.MaxItems > 0 {
				cfg.MaxItems = o.MaxItems
			}
			if o.RosterGroups != nil {
				cfg.RosterGroups = o.RosterGroups
			}
		}
		if lim.MaxNodes > 0 && !exists && len(s.Nodes) >= lim.MaxNodes {
			return nil, fmt.Errorf("%w: the account has %d; the limit is %d", ErrTooManyNodes, len(s.Nodes), lim.MaxNodes)
		}
		if lim.MaxBytes > 0 {
			before := s.bytes()
			after := before - n.bytes(c.Node, exists) + published(n, c.Item, cfg).bytes(c.Node, true)
			// A publication that does not grow the account is always let
			// through: an account over a lowered quota can still edit.
			if after > lim.MaxBytes && after > before {
				return nil, fmt.Errorf("%w: %d bytes after this publication; the limit is %d", ErrQuota, after, lim.MaxBytes)
			}
		}
		return emit(TypeItemPublished, ItemPublished{Node: c.Node, Item: c.Item, Config: cfg})
	case Retract:
		if _, ok := s.Nodes[c.Node].Item(c.ID); !ok {
			return nil, fmt.Errorf("%w: %s in %s", ErrItemNotFound, c.ID, c.Node)
		}
		return emit(TypeItemRetracted, ItemRetracted{Node: c.Node, ID: c.ID})
	}
	return nil, fmt.Errorf("pep: unknown command %T", c)
}

// Evolve folds an account stream's events into its nodes.
func Evolve(s State, e event.Envelope) (State, error) {
	switch e.Type {
	case TypeItemPublished:
		var d ItemPublished
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		nodes := make(map[string]Node, len(s.Nodes)+1)
		for k, v := range s.Nodes {
			nodes[k] = v
		}
		if d.Erased {
			// The node keeps its configuration; the item, whose payload
			// nobody can read any more, goes as if retracted.
			n := nodes[d.Node]
			n.Config = d.Config
			n.Items = slices.DeleteFunc(slices.Clone(n.Items), func(it Item) bool { return it.ID == d.ID })
			nodes[d.Node] = n
		} else {
			nodes[d.Node] = published(nodes[d.Node], d.Item, d.Config)
		}
		s.Nodes = nodes
	case TypeItemRetracted:
		var d ItemRetracted
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		nodes := make(map[string]Node, len(s.Nodes))
		for k, v := range s.Nodes {
			nodes[k] = v
		}
		n := nodes[d.Node]
		n.Items = slices.DeleteFunc(slices.Clone(n.Items), func(it Item) bool { return it.ID == d.ID })
		nodes[d.Node] = n
		s.Nodes = nodes
	}
	return s, nil
}

// WithoutItems is s after its account's content was erased: every node
// keeps its configuration and loses its items.
func (s State) WithoutItems() State {
	nodes := make(map[string]Node, len(s.Nodes))
	for k, n := range s.Nodes {
		nodes[k] = Node{Config: n.Config}
	}
	return State{Nodes: nodes}
}

// published is n after it with configuration cfg: an item with the same ID
// is replaced, and the oldest ones beyond max_items are pushed out.
func published(n Node, it Item, cfg Config) Node {
	items := slices.DeleteFunc(slices.Clone(n.Items), func(old Item) bool { return old.ID == it.ID })
	items = append(items, it)
	if max := max(cfg.MaxItems, 1); len(items) > max {
		items = items[len(items)-max:]
	}
	return Node{Config: cfg, Items: items}
}

// bytes is what node n named name weighs, as Limits.MaxBytes counts: its
// name, its items' IDs and payloads; nothing if it does not exist.
func (n Node) bytes(name string, exists bool) int {
	if !exists {
		return 0
	}
	total := len(name)
	for _, it := range n.Items {
		total += len(it.ID) + len(it.Payload)
	}
	return total
}

// bytes is what all the account's nodes weigh.
func (s State) bytes() int {
	total := 0
	for name, n := range s.Nodes {
		total += n.bytes(name, true)
	}
	return total
}
