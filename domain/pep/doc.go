// Package pep holds the rules of an account's personal eventing nodes
// (XEP-0163): items published to named nodes of the account's own
// pubsub service, kept in the account's stream. Bookmarks (XEP-0402) are
// its first user.
//
// Invariants: Decide is pure; a node holds at most MaxItems items (the
// oldest go first); an item ID names at most one item of a node.
package pep
