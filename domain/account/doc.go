// Package account holds the rules of an account's lifecycle: created,
// password changed, deleted. Each account is one stream, "account-<bare JID>".
//
// Password material never appears in these events: they record only that a
// change happened. Salted SCRAM keys live outside the log.
//
// Decide and Evolve are pure; replaying a stream through Evolve rebuilds State.
package account
