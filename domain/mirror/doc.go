// Package mirror holds the rules of a DMUC3 mirror's replica of a room
// whose master is on another server (issue 13, docs/dmuc.md): what the
// master said, applied in the master's order by its sequence numbers,
// and the messages the mirror's own users posted that the master has not
// accepted yet.
//
// Invariants: a master sequence is applied at most once, and only right
// after the one before it (the gap rule: a stale one is ignored, one
// further ahead is a gap the caller resyncs), but for a roster, the
// room's whole state at its sequence, which may jump ahead; a posted message is
// accepted at most once, by the master's copy naming its local id, and
// leaves the pending list then; the replica is a fold of its stream
// alone, so replaying the stream rebuilds it.
package mirror
