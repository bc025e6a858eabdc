package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// NodeStatus is what a node's heartbeat says of it.
type NodeStatus struct {
	Node     string
	Sessions int    // bound client sessions
	Position uint64 // how far its read models have followed the log
	Seen     time.Time
}

// Watch listens to the nodes' heartbeats on nc for d (a little more than
// a heartbeat finds every live node) and returns the last each sent, by
// node name. It joins nothing: an operator's command uses it.
func Watch(ctx context.Context, nc *nats.Conn, prefix string, d time.Duration) ([]NodeStatus, error) {
	if prefix == "" {
		prefix = "annals.bus"
	}
	beats := make(chan announcement, 256)
	sub, err := nc.Subscribe(prefix+".sessions", func(m *nats.Msg) {
		var a announcement
		if json.Unmarshal(m.Data, &a) == nil && a.Beat {
			select {
			case beats <- a:
			default: // a thousand nodes' worth in one window: the next beat says it again
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	defer sub.Unsubscribe()
	seen := map[string]NodeStatus{}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case a := <-beats:
			if len(seen) < 4096 {
				seen[a.Node] = NodeStatus{Node: a.Node, Sessions: a.Clients, Position: a.Position, Seen: time.Now()}
			}
		case <-timer.C:
			out := slices.Collect(maps.Values(seen))
			slices.SortFunc(out, func(x, y NodeStatus) int { return strings.Compare(x.Node, y.Node) })
			return out, nil
		case <-ctx.Done():
			return nil, errors.Join(fmt.Errorf("cluster: watching the nodes"), ctx.Err())
		}
	}
}
