// Package vcard holds the rules of vcard-temp (XEP-0054) vCards: an
// account's, kept in its stream ("account-<bare JID>"), and a room's
// (domain/room keeps that one in the room's stream with the same Card).
//
// A vCard is stored whole, as the client sent it (re-serialized by the
// stream reader), with the SHA-1 of each photo's image data computed once
// when it is set: the hash that XEP-0153 puts in the account's presence
// and XEP-0486 in a room's disco#info, so that neither decodes base64 on
// the way.
//
// Invariants: Decide and Evolve are pure; a Card's PhotoHashes are those
// of its XML; a vCard over the caller's byte limit is refused, never cut.
package vcard
