// Package archive is the message archive read model (XEP-0313): one row
// per party and archived 1:1 message, folded from the log's
// ChatMessageSent events, and the rooms' messages, with the queries MAM
// answers from it. A room's message is copied into the archive of each
// account in the room (Projection{}), or kept once and read through each
// account's stays in its rooms (Projection{Stays: true}, stays.go); both
// answer every query alike where event times do not go back in log order
// (TestStaysAnswerAsCopies, TestStaysClock).
//
// The store keeps it inline (in the append's own transaction), so an
// append that returned is in the archive; the Reader hides rows that are
// committed but not yet durable, so nothing a client reads can vanish in
// a crash.
//
// Invariants: within one account, archive timestamps never decrease in log
// order (a row is stamped no earlier than the one before it; with stays,
// no earlier than any row before it), so time and log order agree and a
// query walks an index in one direction (with stays, one per room of the
// account and one for its own rows, merged); an archive ID names at most
// one row of its account.
package archive
