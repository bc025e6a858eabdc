package eventstore

import (
	"context"

	"annals.im/annals/domain/event"
)

// Codec turns what events say into what the log keeps, and back: content
// sealed under keys kept beside the log (adapters/sealing), so that
// destroying a key erases what it sealed while the hash chains, which
// cover what the log keeps, still verify.
//
// A store given a Codec seals each append before it hashes and writes
// it, and opens every event it hands out: appends' answers, reads,
// subscriptions and inline read models. Audit commands open their store
// without one: they check the bytes the log keeps.
type Codec interface {
	// Seal returns evs as the log keeps them; evs is left unchanged. It
	// runs on the appender's goroutine, before the append is queued.
	Seal(ctx context.Context, evs []event.Envelope) ([]event.Envelope, error)
	// Open turns what Seal made back into what the events said, in place
	// and in order (an event can change how later ones open, such as an
	// erasure). Content whose key is gone opens as erased (the event's
	// own schema says how); an error means a key could not be read now.
	Open(ctx context.Context, evs []event.Envelope) error
}

// Plain gives the events of an answered append the Data they were
// proposed with: stored holds what the log keeps (sealed), proposed what
// the caller appended, matched by ID. A retry's answer is the stored
// events of the first attempt, with the same IDs and the same meaning.
func Plain(stored, proposed []event.Envelope) {
	for i := range stored {
		if i < len(proposed) && proposed[i].ID == stored[i].ID {
			stored[i].Data = proposed[i].Data
			continue
		}
		for _, p := range proposed {
			if p.ID == stored[i].ID {
				stored[i].Data = p.Data
				break
			}
		}
	}
}
