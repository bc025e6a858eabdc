// Package s2s is federation: XMPP streams between this server and others
// (RFC 6120 server-to-server, XEP-0220 dialback, XEP-0178 SASL EXTERNAL,
// XEP-0288 bidi, XEP-0368 direct TLS), wired into serve by
// cmd/annals/federation.go. The dialback keys; inbound streams (Server:
// TLS required, by STARTTLS or, on the same port, direct TLS told by the
// first byte; asking for a client certificate; then SASL EXTERNAL offered
// when that certificate verifies against Config.Roots and names the
// stream's from domain, and dialback always, as receiving server asking
// the authoritative one through Config.Verify, and as authoritative
// server answering <db:verify/>); outbound streams (Config.Dial:
// STARTTLS, or direct TLS at a "tls:" address, presenting our
// certificate, then EXTERNAL when the peer offers it and its certificate
// verified, else dialback;
// Config.VerifyKey); XEP-0288 bidi both ways (Config.Bidi hands the
// pool a stream a peer opened, Pool.Adopt; an outbound stream with bidi
// delivers the peer's stanzas from its domain); and the Pool, one
// outbound stream per domain pair, reused, with what waits for it
// bounded and bounced with the right condition; the Resolver
// (--s2s-route, then _xmpps-server and _xmpp-server SRV records as one
// set, then the domain on 5269); and caps on inbound streams, in all and
// per address (adapters/connlimit), on the domains one stream may
// authenticate, on SASL attempts, and on each peer stream's stanza rate.
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
