package room

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
)

// A room password is kept in the log only as a verifier: an auditor (or
// anyone who copies the log) learns that a room has a password, and must
// pay a slow key derivation per guess to find it.
//
// The verifier is a PHC-style string that names its function, its cost and
// its random salt, so the cost can be raised later without a new schema:
//
//	$pbkdf2-sha256$i=20000$<salt, base64>$<key, base64>
//
// Rooms whose password was set before that format have the legacy hex
// SHA-256 of the room JID and the password (LegacyPasswordHash) in the
// same field, Config.PasswordHash; they still verify, and the next
// password their owner sets uses the new format. The field's meaning (the
// value that checks the password) did not change and the formats cannot
// be mistaken for each other, so RoomCreated and RoomConfigured keep
// schema 1; a build from before verifiers refuses every password for a
// room with a new verifier rather than letting anyone in.

// PasswordIterations is the PBKDF2-SHA256 cost of new room passwords.
//
// Measured on the development machine (go1.26, SHA-NI): about 140 ns per
// iteration, so 20,000 iterations cost a joining client about 2.8 ms of one
// core, paid only by joins to a password-protected room by an account not
// in it yet. A dictionary attack against a copied log pays the same per
// guess and per room (the salt is random), about 14,000 times the single
// SHA-256 it replaced.
const PasswordIterations = 20000

// SaltSize is the length of a new verifier's random salt, in bytes.
const SaltSize = 16

const pbkdf2Prefix = "$pbkdf2-sha256$"

var b64 = base64.RawStdEncoding

// HashPassword returns the verifier of a new room password with salt (the
// caller draws it at random: Decide and this package stay pure), or "" for
// no password.
func HashPassword(password string, salt []byte) string {
	if password == "" {
		return ""
	}
	return hashPassword(password, salt, PasswordIterations)
}

func hashPassword(password string, salt []byte, iter int) string {
	key, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		// Only out-of-range parameters fail, and these are ours.
		panic("room: pbkdf2: " + err.Error())
	}
	return pbkdf2Prefix + "i=" + strconv.Itoa(iter) + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key)
}

// LegacyPasswordHash is how room passwords were kept before verifiers: a
// fast SHA-256 salted with the room JID. It is only compared against, never
// written.
func LegacyPasswordHash(room, password string) string {
	if password == "" {
		return ""
	}
	h := sha256.Sum256([]byte("annals room password\x00" + room + "\x00" + password))
	return hex.EncodeToString(h[:])
}

// maxIterations bounds the cost a stored verifier may ask for, so that a
// damaged or hostile log cannot make each join spin for minutes.
const maxIterations = 10_000_000

// CheckPassword reports whether password matches the verifier stored for
// the room (either format), in constant time for a given verifier. It is
// slow on purpose: callers run it outside the room's command pipeline and
// pass the verifier it matched in Join.Verified.
func CheckPassword(verifier, room, password string) bool {
	if verifier == "" || password == "" {
		return false
	}
	rest, ok := strings.CutPrefix(verifier, pbkdf2Prefix)
	if !ok {
		return subtle.ConstantTimeCompare([]byte(LegacyPasswordHash(room, password)), []byte(verifier)) == 1
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "i=") {
		return false
	}
	iter, err := strconv.Atoi(parts[0][2:])
	salt, err2 := b64.DecodeString(parts[1])
	if err != nil || err2 != nil || iter < 1 || iter > maxIterations {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(hashPassword(password, salt, iter)), []byte(verifier)) == 1
}

// NeedsPassword reports whether a Join by acct would be decided on its
// password: the room has one, acct is not in it, and no earlier rule
// (lock, ban, members-only) refuses it first. Only then is the slow
// CheckPassword worth running.
func (s State) NeedsPassword(acct string) bool {
	if !s.Exists || s.Config.PasswordHash == "" {
		return false
	}
	if _, in := s.Occupants[acct]; in {
		return false
	}
	a := s.Affiliation(acct)
	return !(s.Locked && a != Owner) && a != Outcast && !(s.Config.MembersOnly && affRank[a] < affRank[Member])
}
