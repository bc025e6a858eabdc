package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/adapters/cluster"
	"annals.im/annals/eventstore/jetstream"
)

// defaultNode names a node after its host, which is unique among the
// machines of a cluster as long as one node runs per machine.
func defaultNode() string {
	if n := os.Getenv("ANNALS_NODE"); n != "" {
		return n
	}
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	h, _, _ = strings.Cut(h, ".")
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			return r
		}
		return '_'
	}, h)
}

// newBus prepares this node's place on a cluster's bus, over the log's
// connection: nil when the log is the embedded store (one node alone).
func newBus(ls *logStore, node string, log *slog.Logger) (*cluster.Bus, error) {
	js, ok := ls.Store.(*jetstream.Store)
	if !ok {
		return nil, nil
	}
	b, err := cluster.New(js.Conn(), cluster.Options{Node: node, Log: log})
	if err != nil {
		return nil, fmt.Errorf("%w: --node: %v", errUsage, err)
	}
	return b, nil
}

// nodesOf is the bus as the session core sees it.
type nodesOf struct{ *cluster.Bus }

func (n nodesOf) Sessions(bare string) []c2s.NodeSession {
	ss := n.Bus.Sessions(bare)
	out := make([]c2s.NodeSession, len(ss))
	for i, s := range ss {
		out[i] = c2s.NodeSession{JID: s.JID, Node: s.Node, Presence: s.Presence}
	}
	return out
}

// toSessions is the session core as the bus hands it stanzas.
type toSessions struct{ srv *c2s.Server }

func (t toSessions) FromPeer(to, wire string)       { t.srv.FromNode(to, wire) }
func (t toSessions) PeerGone(full, presence string) { t.srv.NodeSessionGone(full, presence) }

// startBus joins the other nodes once the session core can take what
// they send.
func startBus(ctx context.Context, b *cluster.Bus, srv *c2s.Server) error {
	if b == nil {
		return nil
	}
	return b.Start(ctx, toSessions{srv})
}
