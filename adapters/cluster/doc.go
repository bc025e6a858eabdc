// Package cluster is the bus between the nodes that serve one set of
// domains from one log: what is not in the log travels here. Each node
// tells the others which client sessions it holds (bound, and their
// available presence), and hands them the stanzas for sessions it does not
// hold: presence broadcasts, directed presence, IQs to full JIDs, messages
// that are not archived. What is archived reaches every node from the log
// instead (cmd/annals follows it), which loses nothing a bus could drop.
//
// # Subjects (under Options.Prefix, "annals.bus")
//
//	<prefix>.sessions              every node's session changes and heartbeats
//	<prefix>.node.<node>.deliver   stanzas for one node's sessions
//	<prefix>.node.<node>.sync      a node's whole session table, in pages, on request
//
// # Invariants
//
//   - A node's view of another's sessions is the other's announcements
//     applied in order: each carries the sender's incarnation (a random ID
//     per start) and a sequence number. A gap (a lost message, a slow
//     subscriber), a heartbeat whose sequence or session count disagrees
//     with the view, or a new incarnation, makes the node fetch the whole
//     table again (sync). So views converge within a heartbeat of any loss.
//   - A node not heard from for Missed heartbeats is gone: its available
//     sessions are reported to the Handler (PeerGone), which tells their
//     contacts they are unavailable. A node that stops cleanly says so.
//   - Every table is bounded: sessions kept per other node
//     (MaxSessions), nodes (MaxNodes), the bytes of a forwarded stanza
//     (MaxStanza) and of a presence kept (MaxPresence). What passes a
//     bound is dropped and logged, never stored.
//   - Node names are unique: Start refuses a name another live node
//     answers to.
package cluster
