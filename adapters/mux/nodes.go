package mux

import "errors"

// ErrNoNode is what a NodeDisco answers for a node it does not keep.
var ErrNoNode = errors.New("mux: no such node")

// NodeDisco answers service discovery on the nodes a feature keeps at a
// destination (XEP-0030 §3.2, §4.2), such as the ad-hoc command list
// (XEP-0050 §2.2), which depends on who asks. at is the address asked:
// the server's domain, an account's bare JID.
type NodeDisco interface {
	// NodeInfo returns the identities and features of node as s may
	// see them: ErrNoNode when the node is not the feature's, a
	// *stanza.Error to refuse.
	NodeInfo(s Session, at, node string) ([]Identity, []string, error)
	// NodeItems returns the items of node as s may see them, as
	// NodeInfo does.
	NodeItems(s Session, at, node string) ([]Item, error)
}

// Nodes makes n answer discovery on its nodes at d. Registered while
// wiring, before serving.
func (m *Mux) Nodes(d Dest, n NodeDisco) { m.nodes[d] = append(m.nodes[d], n) }

// NodeInfo asks what Nodes registered at d about node, in turn, until
// one keeps it; ErrNoNode when none does.
func (m *Mux) NodeInfo(d Dest, s Session, at, node string) ([]Identity, []string, error) {
	for _, n := range m.nodes[d] {
		ids, features, err := n.NodeInfo(s, at, node)
		if !errors.Is(err, ErrNoNode) {
			return ids, features, err
		}
	}
	return nil, nil, ErrNoNode
}

// NodeItems is NodeInfo for the items of node.
func (m *Mux) NodeItems(d Dest, s Session, at, node string) ([]Item, error) {
	for _, n := range m.nodes[d] {
		items, err := n.NodeItems(s, at, node)
		if !errors.Is(err, ErrNoNode) {
			return items, err
		}
	}
	return nil, ErrNoNode
}
