// Package s2s is federation: XMPP streams between this server and others
// (RFC 6120 server-to-server, XEP-0220 dialback, XEP-0178 SASL EXTERNAL,
// XEP-0288 bidi). It is being built for issue 12; so far it holds the
// dialback keys, the part every dialback exchange turns on.
//
// Invariants (those that hold now, and those the streams will keep):
// a dialback key is a function of the server's dialback secret (derived
// from its one secret, adapters/keys) and of the domain pair and stream id
// only, so any of our processes can verify a key another one sent; keys
// are compared in constant time; nothing a peer sends is trusted before
// the stream it came on authenticated its domain.
package s2s
