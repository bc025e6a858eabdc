package sasl

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"annals.im/annals/adapters/credentials"
)

func vectors(t *testing.T) Lookup {
	t.Helper()
	// The salts of RFC 5802 §5 (SHA-1) and RFC 7677 §3 (SHA-256), password "pencil".
	s1, _ := base64.StdEncoding.DecodeString("QSXCR+Q6sek8bf92")
	s256, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	c, err := credentials.DeriveSalted("pencil", s1, s256, 4096)
	if err != nil {
		t.Fatal(err)
	}
	return func(_ context.Context, user string) (credentials.Credentials, error) {
		if user != "user" {
			return credentials.Credentials{}, credentials.ErrNotFound
		}
		return c, nil
	}
}

// The exchanges printed in RFC 5802 §5 and RFC 7677 §3, byte for byte.
func TestRFCExchanges(t *testing.T) {
	cases := []struct {
		mech, snonce                                       string
		clientFirst, serverFirst, clientFinal, serverFinal string
	}{
		{"SCRAM-SHA-1", "3rfcNHYJY1ZVvWVs7j",
			"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
			"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="},
		{"SCRAM-SHA-256", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
			"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
			"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="},
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.mech, func(t *testing.T) {
			x, err := Start(c.mech, vectors(t), []byte("k"), WithNonce(c.snonce))
			if err != nil {
				t.Fatal(err)
			}
			out, done, err := x.Next(ctx, []byte(c.clientFirst))
			if err != nil || done || string(out) != c.serverFirst {
				t.Fatalf("server-first = %q, %v, %v; want %q", out, done, err, c.serverFirst)
			}
			out, done, err = x.Next(ctx, []byte(c.clientFinal))
			if err != nil || !done || string(out) != c.serverFinal {
				t.Fatalf("server-final = %q, %v, %v; want %q", out, done, err, c.serverFinal)
			}
			if x.User() != "user" {
				t.Fatalf("User() = %q", x.User())
			}
			if _, _, err := x.Next(ctx, nil); !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("a third message: %v", err)
			}
		})
	}
}

func TestSCRAMRefusals(t *testing.T) {
	ctx := context.Background()
	const nonce = "3rfcNHYJY1ZVvWVs7j"
	good := "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
	cases := []struct {
		name, first, final string
		want               error
	}{
		{"wrong proof", "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
			strings.Replace(good, "p=v0X8", "p=w0X8", 1), ErrNotAuthorized},
		{"unknown user", "n,,n=nobody,r=fyko+d2lbbFgONRv9qkxdawL", good, ErrNotAuthorized},
		{"wrong nonce", "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
			strings.Replace(good, "r=fyko", "r=gyko", 1), ErrNotAuthorized},
		{"channel binding mismatch", "y,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", good, ErrNotAuthorized},
		{"channel binding asked", "p=tls-unique,,n=user,r=abc", "", ErrNotAuthorized},
		{"no GS2 header", "n=user,r=abc", "", ErrMalformedRequest},
		{"bad flag", "x,,n=user,r=abc", "", ErrMalformedRequest},
		{"no nonce", "n,,n=user", "", ErrMalformedRequest},
		{"bad escape", "n,,n=us=er,r=abc", "", ErrMalformedRequest},
		{"mandatory extension", "n,,m=x,n=user,r=abc", "", ErrMalformedRequest},
		{"other authzid", "n,a=admin,n=user,r=abc", "", ErrInvalidAuthzid},
		{"no proof", "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", "c=biws,r=fyko", ErrMalformedRequest},
	}
	for _, c := range cases {
		x, _ := Start("SCRAM-SHA-1", vectors(t), []byte("k"), WithNonce(nonce))
		_, _, err := x.Next(ctx, []byte(c.first))
		if err == nil {
			_, _, err = x.Next(ctx, []byte(c.final))
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := Start("DIGEST-MD5", vectors(t), nil); !errors.Is(err, ErrInvalidMechanism) {
		t.Errorf("DIGEST-MD5: %v", err)
	}
}

// An unknown user gets a salt as stable and as random-looking as a real
// one, so the first reply does not tell who has an account.
func TestUnknownUserSalt(t *testing.T) {
	ctx := context.Background()
	salt := func(key, user string) string {
		x, _ := Start("SCRAM-SHA-256", vectors(t), []byte(key), WithNonce("n"))
		out, _, err := x.Next(ctx, []byte("n,,n="+user+",r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(string(out), ",")[1]
	}
	if salt("k", "ghost") != salt("k", "ghost") || salt("k", "ghost") == salt("k", "spirit") || salt("k", "ghost") == salt("j", "ghost") {
		t.Fatal("made-up salts are not stable per user and key")
	}
}

func TestPlain(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		in   string
		want error
	}{
		{"\x00user\x00pencil", nil},
		{"user\x00user\x00pencil", nil},
		{"user@localhost\x00user\x00pencil", nil},
		{"\x00user\x00pen", ErrNotAuthorized},
		{"\x00ghost\x00pencil", ErrNotAuthorized},
		{"admin\x00user\x00pencil", ErrInvalidAuthzid},
		{"user\x00pencil", ErrMalformedRequest},
		{"\x00\x00pencil", ErrMalformedRequest},
	}
	for _, c := range cases {
		x, _ := Start("PLAIN", vectors(t), nil)
		_, done, err := x.Next(ctx, []byte(c.in))
		if !errors.Is(err, c.want) || (c.want == nil) != done {
			t.Errorf("PLAIN %q: done %v, err %v; want %v", c.in, done, err, c.want)
		}
	}
}

// A name longer than any local part is refused before it is looked up.
func TestLongUsername(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("a", MaxUsername+1)
	lookup := func(context.Context, string) (credentials.Credentials, error) {
		t.Fatal("a name longer than any local part was looked up")
		return credentials.Credentials{}, nil
	}
	for mech, in := range map[string]string{
		"PLAIN":         "\x00" + long + "\x00pencil",
		"SCRAM-SHA-256": "n,,n=" + long + ",r=abc",
	} {
		x, _ := Start(mech, lookup, []byte("k"))
		if _, _, err := x.Next(ctx, []byte(in)); !errors.Is(err, ErrNotAuthorized) {
			t.Errorf("%s: %v, want not-authorized", mech, err)
		}
		if x.User() != "" {
			t.Errorf("%s: the long name is kept as the user", mech)
		}
	}
}

// PLAIN does the same key derivation for an unknown name as for a known
// one with a wrong password, so answer times do not tell names apart.
func TestPlainEqualWork(t *testing.T) {
	ctx := context.Background()
	type work struct{ calls, iterations, saltLen int }
	measure := func(in string) work {
		var w work
		count := func(c credentials.Credentials, pw string) bool {
			w.calls++
			w.iterations += c.SHA256.Iterations
			w.saltLen = len(c.SHA256.Salt)
			return c.Verify(pw)
		}
		x, _ := Start("PLAIN", vectors(t), []byte("k"), func(o *options) { o.verify = count })
		if _, _, err := x.Next(ctx, []byte(in)); !errors.Is(err, ErrNotAuthorized) {
			t.Fatalf("%q: %v, want not-authorized", in, err)
		}
		return w
	}
	known, unknown := measure("\x00user\x00wrong"), measure("\x00ghost\x00wrong")
	if known.calls != 1 || known != unknown {
		t.Fatalf("known user: %+v, unknown user: %+v; want the same derivation", known, unknown)
	}
}
