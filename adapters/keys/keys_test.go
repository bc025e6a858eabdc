package keys

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// Keys differ per purpose and per secret, and stay what they were: a
// changed derivation would change every stored occupant id.
func TestDerive(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	occ, err := Derive(secret, OccupantID)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := Derive(secret, Dialback)
	other, _ := Derive([]byte("fedcba9876543210fedcba9876543210"), OccupantID)
	if bytes.Equal(occ, db) || bytes.Equal(occ, other) || len(occ) != 32 {
		t.Fatalf("keys collide: %x %x %x", occ, db, other)
	}
	// Pinned: HKDF-SHA-256(secret, no salt, "annals/occupant-id/v1").
	if got := hex.EncodeToString(occ); got != "fa8d835f6414a915a8f16c08e96e7a4fe29b26f2d4f997d3ec712653b9aafd42" {
		t.Errorf("the occupant id key changed: %s", got)
	}
	if _, err := Derive([]byte("short"), OccupantID); err == nil {
		t.Error("a short secret was accepted")
	}
}
