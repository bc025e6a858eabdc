// Package keys derives the server's keys, one per purpose, from its one
// secret (kept in the data directory, stable across restarts). Each
// purpose that needs a key gets its own, derived with HKDF-SHA-256 (RFC
// 5869) and the purpose's label, so that a value one purpose shows a
// client (a made-up SCRAM salt) or a peer (a dialback key) is never a
// value another one keeps secret (an occupant id in a semi-anonymous room,
// which hides the account behind it). HKDF's extract step reads the secret
// as HMAC's message under a fixed key, never as a key, so even the SCRAM
// salts, which keep using the secret itself as their HMAC key (adapters/
// c2s), reveal nothing about a derived key.
//
// A label never changes once released: the keys derived from it (occupant
// ids clients have stored, dialback secrets peers are verifying against)
// would change with it.
package keys

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// Purposes, each its label.
const (
	// OccupantID keys the room service's occupant ids (XEP-0421).
	OccupantID = "annals/occupant-id/v1"
	// Dialback is the server's dialback secret (XEP-0220, XEP-0185).
	Dialback = "annals/dialback/v1"
	// ContentKeys wraps the data keys that seal users' content in the
	// log (adapters/sealing).
	ContentKeys = "annals/content-keys/v1"
)

// Derive returns the 32-byte key for purpose from secret.
func Derive(secret []byte, purpose string) ([]byte, error) {
	if len(secret) < 16 {
		return nil, fmt.Errorf("keys: the server secret is missing or shorter than 16 bytes")
	}
	k, err := hkdf.Key(sha256.New, secret, nil, purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("keys: derive the %s key: %w", purpose, err)
	}
	return k, nil
}
