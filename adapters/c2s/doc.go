// Package c2s is the client-to-server XMPP adapter: it accepts client
// connections, negotiates TLS, SASL (package sasl), resource binding and
// stream management, and turns stanzas into domain commands (rosters,
// 1:1 messages, rooms, PEP) and their outcomes into stanzas. It also
// serves the multi-user chat service, whose occupants are accounts; the
// sessions attached to each room are the only room state it keeps.
//
// Invariants: an unencrypted stream is only ever accepted on a loopback
// address (CheckPlaintext); generated private keys are written readable by
// their owner only; a session's inbound stanza is counted (XEP-0198 h)
// only after its events are durable; every write to a session goes
// through conn.write/deliver, so nothing bypasses counting or CSI.
package c2s
