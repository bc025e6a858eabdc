// Package push is the user's server side of Push Notifications
// (XEP-0357): a client enables or disables an app server's pubsub node
// for itself (enable.go), and when a message arrives for an account while
// the client that enabled a node sleeps (offline, detached awaiting
// resumption, or inactive by XEP-0352) the server publishes a
// notification to that node from the account's bare JID, over
// federation (notify.go).
//
// Registrations are events in the account's stream (domain/push), so
// they survive restarts and `annals rebuild`; the publish-options a
// client gives (the app server's credentials) are kept beside the log
// (adapters/secrets), never in it. A notification says only how many
// messages it stands for, unless the operator asks for the sender or the
// body too (--push-with-sender, --push-with-body): what it carries goes
// to a third party.
//
// Invariants: the session core is never held up: it hands each message
// to a bounded queue (Limits.Queue), dropped past it, and the work runs
// on a few workers; an account known to have no registrations costs a
// map lookup; a node that answers with an error of type cancel or auth,
// or with MaxErrors errors in a row, is disabled, as an event whose
// cause is the server.
package push
