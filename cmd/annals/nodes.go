package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/adapters/cluster"
	"annals.im/annals/adapters/features/muc"
	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore/jetstream"
	"annals.im/annals/projections"
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
func newBus(ls *logStore, opts cluster.Options, runner *projections.Runner) (*cluster.Bus, error) {
	if ls.nc == nil {
		return nil, nil
	}
	opts.Position = func() uint64 { return ls.linear(readModelsAt(runner)) }
	b, err := cluster.New(ls.nc, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: --node: %v", errUsage, err)
	}
	return b, nil
}

// readModelsAt is how far the slowest of runner's projections has
// followed the log.
func readModelsAt(runner *projections.Runner) event.Position {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var at event.Position
	for i, name := range runner.Names() {
		p, err := runner.Position(ctx, name)
		if err != nil {
			return event.Position{}
		}
		if i == 0 || p.Less(at) {
			at = p
		}
	}
	return at
}

// checkBus refuses bus settings no cluster can work with, before
// anything is opened.
func checkBus(opts cluster.Options) error {
	if opts.Heartbeat <= 0 || opts.Missed < 1 || opts.MaxNodes < 1 || opts.MaxSessions < 1 {
		return fmt.Errorf("%w: --cluster-heartbeat, --cluster-missed, --cluster-max-nodes and --cluster-max-sessions must be positive", errUsage)
	}
	return nil
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

// toSessions is the session core (and the room service) as the bus hands
// them what other nodes send or lose.
type toSessions struct {
	srv   *c2s.Server
	rooms *lateRooms
}

// lateRooms is the room service, set once listen made it (nil Service:
// none is served).
type lateRooms struct{ *muc.Service }

func (t toSessions) FromPeer(to, wire string)       { t.srv.FromNode(to, wire) }
func (t toSessions) PeerGone(full, presence string) { t.srv.NodeSessionGone(full, presence) }

func (t toSessions) Replaced(full string) { t.srv.NodeReplaced(full) }

func (t toSessions) AttachmentGone(room, acct string) {
	if t.rooms != nil && t.rooms.Service != nil {
		t.rooms.ElsewhereGone(room, acct)
	}
}

// nodeCmd is `annals node list`: the live nodes of a cluster, each with
// its sessions and how far its read models lag the log.
func nodeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "list" {
		return fmt.Errorf("%w: annals node list --store nats://…", errUsage)
	}
	var c Config
	fs := newFlagSet("node list", stderr)
	c.flags(fs, false)
	wait := fs.Duration("wait", 3*time.Second, "how long to listen for the nodes' heartbeats (they beat every 2s)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Store == "" {
		return fmt.Errorf("%w: node list needs --store nats://… (the embedded store has one node: serve)", errUsage)
	}
	c.raw = true // the log as kept: sealed content stays sealed
	store, err := openStore(ctx, c, false, c.logger(stderr))
	if err != nil {
		return err
	}
	defer store.Close()
	nodes, err := cluster.Watch(ctx, store.nc, "", *wait)
	if err != nil {
		return err
	}
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	h := store.linear(head)
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tSESSIONS\tPOSITION\tLAG")
	for _, n := range nodes {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\n", n.Node, n.Sessions, n.Position, h-min(n.Position, h))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	unit := "KurrentDB's commit positions"
	if _, ok := store.Store.(*jetstream.Store); ok {
		unit = "appends: most hold one event"
	}
	fmt.Fprintf(stdout, "%d node(s) heard within %v; the log's head at %d (positions and lags count %s)\n", len(nodes), *wait, h, unit)
	return nil
}

// startBus joins the other nodes once the session core can take what
// they send.
func startBus(ctx context.Context, b *cluster.Bus, srv *c2s.Server, rooms *lateRooms) error {
	if b == nil {
		return nil
	}
	return b.Start(ctx, toSessions{srv, rooms})
}
