// Package event defines the envelope every fact in Annals is stored in, and
// the rules that make the log verifiable.
//
// Invariants:
//   - An Envelope's Version is dense per stream, starting at 1.
//   - Position is assigned by the store at commit; it orders the whole log and
//     is opaque to everyone but the store that issued it.
//   - Hash = SHA-256(previous hash in the stream ‖ Canonical(envelope)), with
//     the empty string before version 1. Canonical covers every field except
//     Position (unknown until commit on a remote store) and Hash itself.
//   - Type strings are written by hand as constants in the domain packages;
//     they are never derived from Go type names.
//   - Data is compact JSON with snake_case fields. A decoder refuses a Schema
//     newer than it knows (ErrSchemaTooNew) instead of guessing.
//
// The package does no I/O and keeps no global state: the ULID generator is a
// value (IDs) that the caller creates once and shares.
package event
