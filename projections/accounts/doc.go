// Package accounts keeps the list of accounts that exist, with when each was
// created and last changed its password. It reads only account lifecycle
// events (domain/account) and ignores every other type.
//
// Invariant: a row exists for an account exactly when its stream's last
// lifecycle event is AccountCreated or AccountPasswordChanged. An event about
// an account the table does not have stops the projection: the log and the
// read model disagree, and that must be seen, not skipped.
package accounts
