// Package push holds the rules of an account's push registrations (XEP-0357):
// the app servers' pubsub services and nodes to which the account's
// server publishes a notification when a message arrives for a client
// that cannot take it now, kept in the account's stream as
// AccountPushEnabled and AccountPushDisabled.
//
// Invariants: Decide is pure; a registration is one (service, node)
// pair, held once, owned by the resource of the client that enabled it
// (a new enable of the same pair replaces it: XEP-0357 §5, the last
// request wins); a command that changes nothing makes no event; an enable
// never grows the list past the limit the command carries. The
// publish-options a client gives (an app server's credentials) are not
// in the events: the event says only that there are some, and they are
// kept beside the log, where they can be erased.
package push
