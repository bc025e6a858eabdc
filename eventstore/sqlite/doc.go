// Package sqlite is the embedded event store: one SQLite database in WAL
// mode, written by a single goroutine that commits many appends in one
// transaction (group commit), read by a separate pool of connections.
//
// Invariants:
//   - Only the writer goroutine writes events. It caches stream heads and
//     the log's tip between batches; any other process that appends to the
//     same file (a CLI command beside a running server) takes the position
//     after that tip, so the writer's next insert collides on it and the
//     batch is redone "the careful way", reading heads and tip inside the
//     write transaction. Streams never fork.
//   - An Append returns after its transaction commits: with DurabilityFull
//     only after an fdatasync of the WAL that started after the commit
//     (the syncer goroutine runs it while the writer builds the next
//     batch); with DurabilityNormal once the WAL is written (survives a
//     process crash, not a power loss). Readers and subscribers in this
//     process never see a committed event before it is durable.
//   - Position is the events table's rowid, one more than the tip for each
//     event; a reader that has seen position p never later finds a new
//     event below p.
//   - Each event row links to its stream's previous event (prev) and
//     every MarkEvery-th version is in stream_marks, in the same transaction
//     as the events. Each stream's head is in streams: written in the same
//     transaction too, or, by the one writer with Options.LazyHeads (serve),
//     every few batches; store_meta's heads_position says up to where the
//     table is complete, and a head lookup scans the events after it. Each
//     row also carries log_hash, a chain over the whole log in position
//     order. Verify checks all of them, so an edited, deleted or moved row
//     is named by stream and version.
//   - Checkpoints run on a connection of their own, never inside a commit.
//
// The database file may also hold read models (see OpenDB): projections
// that must be updated in the same file keep their tables beside the log.
package sqlite
