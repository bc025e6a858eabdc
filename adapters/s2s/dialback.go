package s2s

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// DialbackKey is the key that proves, for a stream whose header had id
// streamID, that the server holding secret speaks for originating when it
// connects to receiving (XEP-0185 §3, used by XEP-0220 §2.1.1):
//
//	key = hex(HMAC-SHA256(hex(SHA256(secret)), receiving + " " + originating + " " + streamID))
//
// The domains are as on the wire, already in their canonical (lowercase,
// IDNA) form.
func DialbackKey(secret []byte, receiving, originating, streamID string) string {
	sum := sha256.Sum256(secret)
	m := hmac.New(sha256.New, []byte(hex.EncodeToString(sum[:])))
	m.Write([]byte(receiving + " " + originating + " " + streamID))
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyDialbackKey reports whether key, as a peer sent it (surrounding
// white space allowed, hex in either case), is DialbackKey's for these
// inputs. It compares in constant time: a peer must not learn a key byte
// by byte from how long a refusal takes.
func VerifyDialbackKey(secret []byte, receiving, originating, streamID, key string) bool {
	got, err := hex.DecodeString(strings.TrimSpace(key))
	if err != nil {
		return false
	}
	want, _ := hex.DecodeString(DialbackKey(secret, receiving, originating, streamID))
	return hmac.Equal(got, want)
}
