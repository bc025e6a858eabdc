package credentials

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"testing"
)

// RFC 5802 §5 gives a SCRAM-SHA-1 exchange for user "user", password
// "pencil", salt QSXCR+Q6sek8bf92, 4096 iterations. Its ClientProof and
// ServerSignature follow from StoredKey and ServerKey, so matching them
// proves the derivation.
func TestKeysMatchRFC5802(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("QSXCR+Q6sek8bf92")
	k, err := keysFrom(sha1.New, "pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	authMessage := "n=user,r=fyko+d2lbbFgONRv9qkxdawL," +
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096," +
		"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
	serverSig := base64.StdEncoding.EncodeToString(mac(sha1.New, k.ServerKey, authMessage))
	if serverSig != "rmF9pqV8S7suAoZWja4dJRkFsKQ=" {
		t.Fatalf("ServerSignature = %s, want rmF9pqV8S7suAoZWja4dJRkFsKQ= (RFC 5802 §5)", serverSig)
	}
	// ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage); the RFC's
	// proof recovers a ClientKey whose hash must be our StoredKey.
	proof, _ := base64.StdEncoding.DecodeString("v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")
	sig := mac(sha1.New, k.StoredKey, authMessage)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	h := sha1.New()
	h.Write(clientKey)
	if string(h.Sum(nil)) != string(k.StoredKey) {
		t.Fatal("the RFC's ClientProof does not match our StoredKey")
	}
}

func TestDeriveAndVerify(t *testing.T) {
	c, err := Derive("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Verify("correct horse") || c.Verify("correct hors") || c.Verify("") {
		t.Fatal("Verify accepts the wrong password or refuses the right one")
	}
	d, _ := Derive("correct horse")
	if string(c.SHA256.Salt) == string(d.SHA256.Salt) || string(c.SHA256.StoredKey) == string(d.SHA256.StoredKey) {
		t.Fatal("two derivations share a salt")
	}
	if c.SHA1.Iterations < 4096 || c.SHA256.Iterations < 4096 {
		t.Fatal("fewer than 4096 iterations")
	}
	for _, bad := range []string{"", string(make([]byte, MaxPassword+1)), "\xff"} {
		if _, err := Derive(bad); !errors.Is(err, ErrPassword) {
			t.Errorf("Derive(%q) err = %v, want ErrPassword", bad, err)
		}
	}
}
