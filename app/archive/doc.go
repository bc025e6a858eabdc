// Package archive is the application service of the message archive
// (XEP-0313) and of 1:1 messages: a message is an event in its
// conversation's stream ("chat-<a>/<b>"), the archive read model
// (projections/archive, kept inline by the store) answers queries, and
// archiving preferences and offline deliveries are events in the account
// streams, appended through the accounts service (app/accounts).
//
// Invariants:
//   - A message is stored only when a party archives it, and is refused
//     (archive.ErrDuplicate) when the sender's archive already holds its
//     computed ID: a retry is stored once.
//   - A message that would be stored past the sender's quota or the
//     recipient's offline queue is refused before anything is appended
//     (Limits); what is not stored costs nothing and is never refused.
//   - Each event's cause is the one the caller put in the context
//     (event.WithCause), or "c2s", the adapter that has not given one.
//
// The package imports no adapter that serves clients: the c2s adapter
// declares the small interface it needs (c2s.Archive).
package archive
