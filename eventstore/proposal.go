package eventstore

import (
	"fmt"

	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
)

// Proposal returns the events of an append to stream as a store keeps
// them: each normalized, with Stream set and Version, Position and Hash
// cleared for the store to fill in. It refuses an append of no events, an
// invalid event and an ID given twice. It writes nothing.
func Proposal(stream string, evs []event.Envelope) ([]event.Envelope, error) {
	if len(evs) == 0 {
		return nil, fmt.Errorf("%w: append of no events", event.ErrInvalid)
	}
	own := make([]event.Envelope, len(evs))
	var seen map[ulid.ULID]bool // only for long appends: most hold one event
	if len(evs) > 16 {
		seen = make(map[ulid.ULID]bool, len(evs))
	}
	for i, e := range evs {
		if err := e.Normalize(); err != nil {
			return nil, err
		}
		dup := seen[e.ID]
		if seen != nil {
			seen[e.ID] = true
		} else {
			for _, o := range own[:i] {
				dup = dup || o.ID == e.ID
			}
		}
		if dup {
			return nil, fmt.Errorf("%w: id %s twice in one append", event.ErrInvalid, e.ID)
		}
		e.Stream, e.Version, e.Position, e.Hash = stream, 0, event.Position{}, nil
		own[i] = e
	}
	return own, nil
}
