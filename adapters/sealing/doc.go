// Package sealing keeps users' content in the log encrypted under keys
// kept beside it, so that destroying keys erases content from a log that
// is never rewritten (crypto-shredding).
//
// What is sealed, and under whose key (rules.go): the stanza of a 1:1
// message (ChatMessageSent) and of a room message (RoomMessagePosted)
// under their author's message key for the UTC day they were sent; a PEP
// item's payload (bookmarks among them) and a vCard under the account's
// state key. Each sealed field becomes {"sealed": key id, "box": base64
// of nonce and AES-256-GCM ciphertext}, with the event's ID and the
// field's name as additional data, so a box cannot be moved to another
// event or field. Everything else (who, when, which stream, room names,
// nicks, presence status) stays as it was: auditors need it.
//
// Keys (Keys, SQLKeys) are 32 random bytes each, stored wrapped under a
// key-encryption key derived from the server secret: the database file
// alone does not open them. A cluster keeps them the same way in its
// replicated bucket (KVKeys), where destroying a key purges its value. A key is destroyed by deleting its row
// (secure_delete zeroes the bytes), after an AccountContentErased event
// names it, or when --archive-expiry passes the end of its day
// (ArchiveExpired).
//
// Invariants:
//   - A field that cannot be opened because its key is gone opens as
//     erased: the field empty, "erased": true and "erased_bytes" its
//     length. Read models treat that the way they treat the erasure
//     itself, so `annals rebuild` after an erasure gives the tables the
//     live server left.
//   - Open follows the log: once it has seen an erasure (or expiry), the
//     keys it names open nothing more in this process, even before the
//     rows are deleted, and a new key is made for what is sealed next.
//   - Plain strings in sealed fields (events written before sealing, or
//     with --seal-content=false) open as they are and cannot be erased
//     by destroying keys.
package sealing
