// Package rooms is the application service of the room streams
// ("room-<room JID>"): it decides the MUC commands (domain/room) on each
// room's folded state and appends their events, folds a room up to a
// version for the log follower, and reads the rooms read model
// (projections/rooms) for the public list and for the rooms an account
// is in.
//
// Invariants:
//   - It is the one owner of the room streams in a process: every room
//     command goes through one eventstore/owner, which decides again
//     after a conflict with another process.
//   - A state it returns carries the room's JID, also for a room that
//     does not exist (yet).
//   - What it reads from the read model follows the log a moment behind,
//     except Of, which first waits for the model to reach the log's head
//     as of the call.
//   - Each event's cause is the one the caller put in the context
//     (event.WithCause), or "c2s", the adapter that has not given one.
//
// The package imports no adapter that serves clients: the c2s adapter
// declares the small interface it needs (c2s.Rooms).
package rooms
