// Package blocking holds the rules of an account's block list (XEP-0191):
// the JIDs whose stanzas the account does not take and to which it sends
// none, kept in the account's stream as JIDsBlocked and JIDsUnblocked.
//
// Invariants: Decide is pure; the list holds each JID once, in canonical
// form (mellium.im/xmpp/jid), in the order blocked; a command that changes
// nothing makes no event; a block never grows the list past the limit
// the command carries.
package blocking
