package c2s

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// Keys per purpose. The server has one secret (Config.Secret); every
// purpose that needs a key gets its own, derived with HKDF-SHA-256 (RFC
// 5869) and the purpose's label, so that a value one purpose shows a client
// (a made-up SCRAM salt) is never a value another one keeps secret (an
// occupant id in a semi-anonymous room, which hides the account behind
// it). HKDF's extract step reads the secret as HMAC's message under a fixed
// key, never as a key, so even the SCRAM salts below, which keep using the
// secret itself as their HMAC key, reveal nothing about a derived key.
const (
	// PurposeOccupantID keys the room service's occupant ids (XEP-0421).
	PurposeOccupantID = "annals/occupant-id/v1"
)

// DeriveKey derives the 32-byte key for purpose from secret, for the core
// and for the services mounted on it (cmd/ hands them their keys).
func DeriveKey(secret []byte, purpose string) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, secret, nil, purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("c2s: derive the %s key: %w", purpose, err)
	}
	return k, nil
}
