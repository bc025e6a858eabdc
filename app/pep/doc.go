// Package pep is the application service of the accounts' personal
// eventing nodes (XEP-0163), bookmarks among them: publications and
// retractions are events in the account's stream, appended through the
// accounts service (app/accounts), the streams' one owner; the passwords
// a bookmark carries are taken out of its item and kept beside the log
// (adapters/secrets).
//
// Invariants:
//   - A password is never in the log, and never kept for an item that is
//     not there: it is stored after its publication's event is appended,
//     and goes when the item is retracted or pushed out of its node.
//   - Two commands of one account run one after the other, so that the
//     last event and the last passwords kept are of the same publication.
//   - Each event's cause is the one the caller put in the context
//     (event.WithCause), or "c2s", the adapter that has not given one.
//
// The package imports no adapter that serves clients: the c2s adapter
// declares the small interface it needs (c2s.PEP).
package pep
