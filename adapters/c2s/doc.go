// Package c2s is the session core of the client-to-server XMPP adapter:
// it accepts client connections, negotiates TLS, SASL (package sasl),
// resource binding and stream management (XEP-0198, CSI), and routes each
// stanza by its destination (router.go): to a service mounted on the mux
// (the rooms), to another server (not reachable yet), or to this server,
// its accounts and their resources, where the mux's feature handlers
// (adapters/features) and the features still built in here (rosters and
// presence, 1:1 messages) serve it. It hands the log's batches to the
// mounted services (Publish) and offers them the sessions (host.go).
//
// It imports no feature package (make depcheck); cmd/ wires them.
//
// Invariants: an unencrypted stream is only ever accepted on a loopback
// address (CheckPlaintext); generated private keys are written readable by
// their owner only; a session's inbound stanza is counted (XEP-0198 h)
// only after its events are durable; every write to a session goes
// through conn.write/deliver, so nothing bypasses counting or CSI.
package c2s
