package jetstream

import (
	"context"

	"github.com/nats-io/nats.go"

	"annals.im/annals/domain/event"
)

// Head returns the position of the log's last event as the stream leader
// has it: every append acknowledged before the call is at or before it.
// A node that wants to read its own writes, or any node's acknowledged
// ones, waits until its read models have passed it. The log stream holds
// appends only, and its last message is one get (">" is the stream's last
// sequence on the server, whatever its length).
func (s *Store) Head(ctx context.Context) (event.Position, error) {
	m, found, err := s.leaderGet(ctx, s.log, getReq{LastFor: ">"})
	if err != nil || !found {
		return event.Position{}, err
	}
	evs, err := s.decode(m)
	if err != nil {
		return event.Position{}, err
	}
	return evs[len(evs)-1].Position, nil
}

// Conn is the store's connection to the servers, for what else a node
// says to the others over them (adapters/cluster).
func (s *Store) Conn() *nats.Conn { return s.nc }
