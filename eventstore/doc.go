// Package eventstore defines the Store every log backend implements, and
// the checks that are the same for all of them (Verify, Heads).
//
// Invariants every Store keeps, checked by the storetest conformance suite:
//   - Versions are dense per stream from 1; Append with an expected version
//     that is not the stream's head fails with ErrConflict and writes nothing.
//   - An Append whose event IDs are already stored, in order, in that stream
//     succeeds again without writing (idempotent retry), whatever the
//     expected version says.
//   - The store computes each event's Hash from the previous one in its
//     stream (event.Chain); callers never set it.
//   - Append returns only when the events are committed at the configured
//     durability; nothing is readable or delivered to subscribers before.
//   - ReadAll and subscriptions give every committed event exactly once, in
//     Position order.
//
// The interface fits KurrentDB as well as SQLite: an expected version v is
// KurrentDB revision v-1 (NoStream for 0), Position is KurrentDB's
// commit/prepare pair, and the ULID is the KurrentDB event ID, which is what
// makes retries idempotent there too.
package eventstore
