package jetstream

import (
	"context"

	"github.com/nats-io/nats.go"

	"annals.im/annals/domain/event"
)

// Head returns the position of the log's last event as the stream leader
// has it: every append acknowledged before the call is at or before it.
// A node that wants to read its own writes, or any node's acknowledged
// ones, waits until its read models have passed it.
func (s *Store) Head(ctx context.Context) (event.Position, error) {
	m, found, err := s.leaderGet(ctx, getReq{LastFor: s.logSubj + ".>"})
	if err != nil || !found {
		return event.Position{}, err
	}
	return event.Position{Commit: m.seq, Prepare: m.seq}, nil
}

// Conn is the store's connection to the servers, for what else a node
// says to the others over them (adapters/cluster).
func (s *Store) Conn() *nats.Conn { return s.nc }
