// Package c2s is the client-to-server XMPP adapter: it accepts client
// connections, negotiates TLS, SASL (package sasl) and resource binding,
// and turns stanzas into domain commands and events into stanzas.
//
// This revision holds the transport pieces that do not depend on the
// stream handling: TLS material and the listener policy.
//
// Invariants: an unencrypted stream is only ever accepted on a loopback
// address (CheckPlaintext); generated private keys are written readable by
// their owner only.
package c2s
