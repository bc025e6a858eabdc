package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
)

// canonicalTag starts every canonical encoding, so that a future layout can
// be told apart from this one.
const canonicalTag = "annals.event.v1\x00"

// Canonical returns the bytes the hash chain covers: every field of e except
// Position and Hash, each length-prefixed or fixed-width so that no two
// envelopes share an encoding. Data must already be normalized.
func Canonical(e Envelope) []byte {
	return appendCanonical(make([]byte, 0, canonicalSize(e)), e)
}

func canonicalSize(e Envelope) int {
	return len(canonicalTag) + 16 + 8 + 8 + 8 + len(e.Stream) + len(e.Type) + len(e.Cause) + len(e.Data) + 4*binary.MaxVarintLen64
}

func appendCanonical(b []byte, e Envelope) []byte {
	b = append(b, canonicalTag...)
	b = append(b, e.ID[:]...)
	b = appendString(b, e.Stream)
	b = binary.BigEndian.AppendUint64(b, e.Version)
	b = appendString(b, string(e.Type))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Schema))
	b = binary.BigEndian.AppendUint64(b, uint64(e.OccurredAt.UnixNano()))
	b = appendString(b, e.Cause)
	b = appendString(b, string(e.Data))
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Chain returns the hash of e given the hash of the event before it in the
// same stream (nil for version 1).
func Chain(prev []byte, e Envelope) []byte {
	// One buffer on the stack for the common small event: the store hashes
	// every event it appends, on the writer's path.
	var buf [1024]byte
	b := append(buf[:0], prev...)
	sum := sha256.Sum256(appendCanonical(b, e))
	return sum[:]
}

// Verify reports whether e.Hash is what Chain computes from prev.
func Verify(prev []byte, e Envelope) bool {
	return bytes.Equal(e.Hash, Chain(prev, e))
}
