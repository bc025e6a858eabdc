// Package roster holds the rules of an account's roster and presence
// subscriptions (RFC 6121 §2-3): items with names and groups, and the
// subscription state machine in both directions with pending requests.
//
// Roster events live in the account's stream ("account-<bare JID>"), so
// the roster version (XEP-0237) is the version of the last roster event
// there: stable across replays.
//
// Decide is pure and returns the events a command causes, or nothing when
// the command changes nothing (RFC 6121 says many redundant subscription
// stanzas are to be ignored). The caller routes stanzas from the Outcome.
package roster
