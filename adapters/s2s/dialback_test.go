package s2s

import (
	"strings"
	"testing"
)

// The keys of XEP-0220's own examples (§2.1.1 and §2.2.2), and what is
// refused: another pair, another stream, another secret, junk.
func TestDialbackKey(t *testing.T) {
	for _, tc := range []struct {
		secret, receiving, originating, id, key string
	}{
		{"s3cr3tf0rd14lb4ck", "montague.example", "capulet.example", "D60000229F",
			"b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"},
		{"d14lb4ck43v3r", "capulet.example", "montague.example", "417GAF25",
			"225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"},
	} {
		if got := DialbackKey([]byte(tc.secret), tc.receiving, tc.originating, tc.id); got != tc.key {
			t.Errorf("key for %s→%s: %s, want %s", tc.originating, tc.receiving, got, tc.key)
		}
		secret := []byte(tc.secret)
		for _, key := range []string{tc.key, "\n  " + tc.key + "\n", strings.ToUpper(tc.key)} {
			if !VerifyDialbackKey(secret, tc.receiving, tc.originating, tc.id, key) {
				t.Errorf("the right key %q refused", key)
			}
		}
		for name, ok := range map[string]bool{
			"pair swapped": VerifyDialbackKey(secret, tc.originating, tc.receiving, tc.id, tc.key),
			"other stream": VerifyDialbackKey(secret, tc.receiving, tc.originating, tc.id+"0", tc.key),
			"other secret": VerifyDialbackKey([]byte("x"), tc.receiving, tc.originating, tc.id, tc.key),
			"not hex":      VerifyDialbackKey(secret, tc.receiving, tc.originating, tc.id, "zz"+tc.key[2:]),
			"short":        VerifyDialbackKey(secret, tc.receiving, tc.originating, tc.id, tc.key[:62]),
			"empty":        VerifyDialbackKey(secret, tc.receiving, tc.originating, tc.id, ""),
		} {
			if ok {
				t.Errorf("%s: accepted", name)
			}
		}
	}
}
