// Package rooms is the rooms read model: every room that exists, its
// configuration, occupants (accounts, with nick, role and presence) and
// affiliations, folded from the room streams' events. It serves the MUC
// service's room list (disco#items) and auditors; the rules themselves
// decide on the streams (eventstore/owner), not on this model.
//
// Invariants: a row exists for a room exactly while the room does;
// replaying the log gives the same tables.
package rooms
