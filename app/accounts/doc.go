// Package accounts is the application service of the account streams
// ("account-<bare JID>"): it registers, re-keys and deletes accounts,
// runs the roster rules, and is the one owner of those streams in a
// process, through which the archive (app/archive) and PEP (app/pep)
// services append their account events too.
//
// Invariants:
//   - Every account event is decided on the stream's folded State and
//     appended through one eventstore/owner, so that the events of one
//     account never race inside a process and a conflict with another
//     process is decided again.
//   - State is folded per incarnation: AccountCreated starts it afresh,
//     so an account registered under a deleted one's name inherits none
//     of its roster, bookmarks or preferences.
//   - An account's event is in the log before its keys are stored beside
//     it (Register), and its keys go before its deletion is logged
//     (Remove): a crash leaves an account without a password, never a
//     password without an account.
//   - Each event's cause is the one the caller put in the context
//     (event.WithCause), or the service's own name for the operation.
//     A password change made by a client session is caused by
//     "session:<id>" whatever the context says: the log follower keeps
//     that session and ends the account's others (KeptSession).
//
// The package imports no adapter that serves clients: the c2s adapter
// declares the small interfaces it needs, which Service satisfies.
package accounts
