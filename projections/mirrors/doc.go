// Package mirrors is the read model of the DMUC3 mirrors this server
// keeps (issue 13, docs/dmuc.md): each mirrored room's last master
// sequence, subject and occupants, and its messages in the master's order,
// the ones its own users posted and the master has not accepted yet last,
// in posting order. The mirror answers its local users (join, history)
// from it.
//
// Invariants: a message is one row, whether it came from the master or
// from a local user (accepted: the row takes the master's sequence);
// replaying the mirror streams gives the same tables (`annals rebuild`,
// `annals mirror rebuild`).
package mirrors
