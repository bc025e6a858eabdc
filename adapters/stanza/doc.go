// Package stanza is what the XMPP adapters and the features they serve
// share about stanzas: the element as read from a stream (kept as its
// re-serialized bytes, so it can be routed without a round trip through
// Go structs), namespaces of RFC 6120/6121, escaping, and stanza errors
// (RFC 6120 §8.3) with the one table from conditions to their types.
//
// It imports nothing of Annals but the domain (the strict reader, and the
// rule errors it maps to stanza errors in one table, ErrorFor): the session
// core, the mux and every feature package may import it.
package stanza
