// Package sqlite is the embedded event store: one SQLite database in WAL
// mode, written by a single goroutine that commits many appends in one
// transaction (group commit: one fsync for all of them), read by a separate
// pool of connections.
//
// Invariants:
//   - Only the writer goroutine writes events, and it reads each stream's
//     head inside its write transaction, so a second process appending to
//     the same file (a CLI command beside a running server) cannot fork a
//     stream: SQLite's write lock serializes the two.
//   - An Append returns after its transaction commits: with DurabilityFull
//     after the WAL is fsynced, with DurabilityNormal after the WAL is
//     written (survives a process crash, not a power loss).
//   - Position is the events table's rowid; it grows with every commit, so
//     a reader that has seen position p never later finds a new event below p.
//   - The streams table holds each stream's head, written in the same
//     transaction as its events; Verify uses it to detect a deleted last event.
//
// The database file may also hold read models (see OpenDB): projections
// that must be updated in the same file keep their tables beside the log.
package sqlite
