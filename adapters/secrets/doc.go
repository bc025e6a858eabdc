// Package secrets keeps the secrets that clients store with Annals
// outside the event log, where they can be erased: the room passwords in
// an account's bookmarks (XEP-0402, XEP-0048), keyed by account, PEP node
// and item ID, and the publish-options of its push registrations
// (XEP-0357: an app server's credentials), keyed by account,
// urn:xmpp:push:0 and service and node.
//
// Invariants: such a password never reaches the log (the PEPItemPublished
// event says only that the item has one); a row lives as long as its item:
// a new publication of the item replaces it, a retraction, the item being
// pushed out of its node, or the account's deletion removes it. The table
// is not a read model: `annals rebuild` leaves it alone, and nothing in
// the log could rebuild it.
package secrets
