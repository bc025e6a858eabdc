// Package archive holds the rules of 1:1 message archiving (XEP-0313):
// which message lands in whose archive under which ID, archive
// preferences, offline delivery marks, and the shape of an archive query.
//
// A 1:1 message is one event, MessageSent, in the stream of its
// conversation ("chat-<bare JID>/<bare JID>", the two accounts in byte
// order). The event names the archive ID it has in each party's archive;
// the archive read model holds one row per party and event. So a message
// is stored once per party however many clients each has, and the two
// parties' IDs differ.
//
// The sender's archive ID is computable by the sender's client before the
// server answers: ArchiveID(session, message id), where session is the id
// of the stream header on which the client bound its resource (also its
// XEP-0198 resumption id). The recipient's ID is a ULID.
//
// Invariants: Decide is pure; a MessageSent names at least one archive ID;
// the two IDs of one event differ.
package archive
