// Package sasl is the server side of the SASL mechanisms Annals offers to
// clients: SCRAM-SHA-256, SCRAM-SHA-1 (RFC 5802, RFC 7677) and PLAIN
// (RFC 4616). It checks proofs against the salted keys kept by package
// credentials (StoredKey, ServerKey), so the server never holds anything
// that would let it log in as the user.
//
// Invariants: the authenticated identity is the authentication identity
// proven here, never a name the client merely claims; an unknown user and
// a wrong password fail the same way, after the same exchange, with a salt
// that does not reveal whether the account exists.
//
// NOTSPEC(RFC 5802 §5.1): usernames and passwords are not SASLprep-mapped
// beyond what the client sent; channel binding (-PLUS) is not offered, so
// a client flag of "p" is refused and "y" accepted, as §6 requires.
package sasl
