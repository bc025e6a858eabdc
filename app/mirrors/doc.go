// Package mirrors is the application service of the DMUC3 mirror
// streams ("mirror-<room JID>", issue 13): it decides what the master of
// a mirrored room said, and what the mirror's own users posted, on the
// replica's folded state (domain/mirror) and appends the events, and it
// reads the mirrors read model (projections/mirrors) for history.
//
// Invariants: it is the one owner of the mirror streams in a process
// (one eventstore/owner, which decides again after a conflict); a stale
// master sequence appends nothing and says so (mirror.ErrStale), a gap
// says from where to resend (*mirror.GapError); each event's cause is
// the caller's (event.WithCause), or "s2s".
package mirrors
