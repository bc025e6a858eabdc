// Package credentials keeps account secrets outside the event log: the
// salted SCRAM keys (RFC 5802, RFC 7677) from which a server checks
// SCRAM-SHA-1, SCRAM-SHA-256 and PLAIN logins without ever storing the
// password.
//
// Invariants: a password never reaches the log, a log line or this table;
// only its salted, iterated derivatives are stored. The log records that a
// password changed (account.PasswordChanged), this table records what it
// changed to.
package credentials
