// Package s2s is federation: XMPP streams between this server and others
// (RFC 6120 server-to-server, XEP-0220 dialback, XEP-0178 SASL EXTERNAL,
// XEP-0288 bidi). It is being built for issue 12 and is not wired into
// serve yet. So far: the dialback keys; inbound streams (Server: STARTTLS
// required, asking for a client certificate; then SASL EXTERNAL offered
// when that certificate verifies against Config.Roots and names the
// stream's from domain, and dialback always, as receiving server asking
// the authoritative one through Config.Verify, and as authoritative
// server answering <db:verify/>); outbound streams (Config.Dial:
// STARTTLS presenting our certificate, then EXTERNAL when the peer
// offers it and its certificate verified, else dialback;
// Config.VerifyKey); XEP-0288 bidi both ways (Config.Bidi hands the
// pool a stream a peer opened, Pool.Adopt; an outbound stream with bidi
// delivers the peer's stanzas from its domain); and the Pool, one
// outbound stream per domain pair, reused, with what waits for it
// bounded and bounced with the right condition; the Resolver (--s2s-route, SRV, the domain on 5269); and
// caps on inbound streams, in all and per address (adapters/connlimit),
// on the domains one stream may authenticate, and on SASL attempts.
// Not yet: direct TLS (_xmpps-server), stanza rates per peer, and
// flags for the bounds (they are Config fields).
//
// Invariants: a dialback key is a function of the server's dialback
// secret (derived from its one secret, adapters/keys) and of the domain
// pair and stream id only, so any of our processes can verify a key
// another one sent; keys are compared in constant time; a certificate
// authenticates a domain only if it verifies and names the domain, never
// an insecure domain's (Config.Insecure); a peer's stanza
// is taken only from a domain its stream authenticated (invalid-from
// otherwise) and to one of ours; nothing is sent or read before TLS but
// the negotiation.
package s2s
