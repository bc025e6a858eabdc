// Package room holds the rules of a multi-user chat room (XEP-0045) whose
// occupants are accounts, not client sessions: who may enter under which
// nick and role, who may say what, change whom, and configure the room.
// Each room is one stream, "room-<room bare JID>".
//
// Sessions are not here: which of an account's clients are attached to a
// room is the c2s adapter's business. A room sees one occupant per
// account, joining once and leaving once, whatever its clients do.
//
// Invariants: Decide is pure; a nick belongs to at most one occupant; an
// outcast is never an occupant; a room that exists has at least one
// owner; a room password is never stored, only a hash of it.
package room
