// Package mirror is the DMUC3 mirror service (issue 13, docs/dmuc.md),
// mounted on mirror.<domain>: it keeps replicas of rooms whose masters
// are on other servers and fans what they say out to this server's
// users. So far it reads what a master sends (Read, ReadRoster): the
// sequence and what the stanza says, as a domain/mirror command.
//
// Invariants: nothing a master sends is applied without its sequence;
// what a mirror hands on is the master's stanza without the sequence
// element, never the peer's bytes (the stream reader re-serialized it).
package mirror
