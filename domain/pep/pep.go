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
	Whitelist = "whitelist"
	Open      = "open"
)

// MaxItems bounds any node.
const MaxItems = 1000

// Config is a node's configuration, from publish-options.
type Config struct {
	AccessModel string `json:"access_model"`
	MaxItems    int    `json:"max_items"`
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
	ErrInvalid      = errors.New("pep: invalid")                      // bad-request
	ErrPrecondition = errors.New("pep: publish-options do not match") // conflict + precondition-not-met
	ErrItemNotFound = errors.New("pep: no such item")                 // item-not-found
)

// Publish is the command to publish an item; Options are the
// publish-options (nil: none given).
//
// Passwords are what the caller took out of Item.Payload (leaving empty
// elements in their place) to keep beside the log, one per password
// element of the payload in document order, "" where an element held
// none. They never reach an event: the event records only whether there
// is one (Item.HasPassword), and the caller stores them once the event is
// appended.
type Publish struct {
	Node      string
	Item      Item
	Options   *Config
	Passwords []string
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
		n, exists := s.Nodes[c.Node]
		cfg := n.Config
		if !exists {
			cfg = DefaultConfig()
		}
		if o := c.Options; o != nil {
			switch {
			case o.AccessModel != "" && o.AccessModel != Presence && o.AccessModel != Whitelist && o.AccessModel != Open:
				return nil, fmt.Errorf("%w: access model %q", ErrInvalid, o.AccessModel)
			case o.MaxItems < 0 || o.MaxItems > MaxItems:
				return nil, fmt.Errorf("%w: max_items %d (1 to %d)", ErrInvalid, o.MaxItems, MaxItems)
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
		n := nodes[d.Node]
		items := slices.DeleteFunc(slices.Clone(n.Items), func(it Item) bool { return it.ID == d.Item.ID })
		items = append(items, d.Item)
		if max := max(d.Config.MaxItems, 1); len(items) > max {
			items = items[len(items)-max:]
		}
		nodes[d.Node] = Node{Config: d.Config, Items: items}
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
