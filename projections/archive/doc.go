// Package archive is the message archive read model (XEP-0313): one row
// per party and archived 1:1 message, folded from the log's
// ChatMessageSent events, with the queries MAM answers from it.
//
// The store keeps it inline (in the append's own transaction), so an
// append that returned is in the archive; the Reader hides rows that are
// committed but not yet durable, so nothing a client reads can vanish in
// a crash.
//
// Invariants: within one account, archive timestamps never decrease in log
// order (a row is stamped no earlier than the one before it), so time and
// log order agree and every query walks one index in one direction; an
// archive ID names at most one row of its account.
package archive
