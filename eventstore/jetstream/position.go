package jetstream

import "annals.im/annals/domain/event"

// posBits: an event's Position packs the log sequence of its append and
// its index in the append, Commit = Prepare = seq<<posBits | index. Commit
// is then unique per event, which read models key on (the archive orders
// and pages by it), and orders as the log does: by append, then within
// it. Sequences up to 2^54 fit, some 10^16 appends.
const posBits = 10

// maxAppendEvents is the most events an append's index can number.
const maxAppendEvents = 1 << posBits

// position is the Position of event index i of the append at seq.
func position(seq uint64, i int) event.Position {
	p := seq<<posBits | uint64(i)
	return event.Position{Commit: p, Prepare: p}
}

// seqOf is the log sequence of the append holding the event at p.
func seqOf(p event.Position) uint64 { return p.Commit >> posBits }

// Sequence is the log sequence of the append holding the event at p:
// positions counted in appends (most hold one event), for the lags a
// node reports.
func (s *Store) Sequence(p event.Position) uint64 { return seqOf(p) }
