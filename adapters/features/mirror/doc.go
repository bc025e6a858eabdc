// Package mirror is the DMUC3 mirror service (issue 13, docs/dmuc.md),
// mounted on mirror.<domain>: it keeps replicas of rooms whose masters
// are on other servers, fans what they say out to this server's
// accounts, sends what those accounts say to the master (Post), and
// keeps them talking to each other while the link to the master is lost
// (link.go): it pings each master, and when one answers again catches
// its rooms up by resend, joins its accounts again and sends what they
// said meanwhile.
//
// Invariants: nothing a master sends is applied without its sequence,
// and nothing is told to the accounts here that the replica did not
// apply just now (a stanza after a gap waits for the resend, a repeat is
// dropped, a post the accounts saw when it was posted is not told
// again); what the service hands on is the master's stanza without the
// sequence element, never the peer's bytes (the stream reader
// re-serialized it); one resync per room runs at a time.
package mirror
