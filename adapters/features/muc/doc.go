// Package muc is the multi-user chat service (XEP-0045), mounted on its
// own domain (conference.<domain>), where the account, not the session,
// occupies a room: a session's join presence attaches it to the account's
// occupancy, messages are forked to every attached session, and the room
// sees one occupant per account whatever its clients do.
//
// Rooms are streams of events (domain/room) kept by a Rooms port; what
// the events did reaches the sessions from the log (Publish), never from
// the command that appended them, so events of another process or node
// are delivered alike. The only state kept here is which session is
// attached to which room (attach.go), the rooms as the log follower folded
// them, and the IQs forwarded to occupants awaiting an answer.
//
// The package imports the mux and stanza packages, never the session
// core; what it needs of the core (the sessions of a JID) comes through
// Host, and of other features through RoomArchive (MAM on rooms) and
// Bookmarks, which cmd/ wires.
package muc
