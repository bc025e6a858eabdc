package sasl

import (
	"context"
	"testing"
)

// FuzzExchange feeds arbitrary client messages to every mechanism: it must
// answer with an error or a reply, never panic, and never succeed without
// the password.
func FuzzExchange(f *testing.F) {
	f.Add("SCRAM-SHA-1", "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")
	f.Add("SCRAM-SHA-256", "y,a=user,n=us=2Cer,r=x", "c=eSxhPXVzZXIs,r=xn,p=AAAA")
	f.Add("PLAIN", "\x00user\x00pencil", "")
	f.Add("SCRAM-SHA-1", "n,,n=user,r=,,,", "p=,c=,r=")
	f.Fuzz(func(t *testing.T, mech, first, final string) {
		x, err := Start(mech, vectors(t), []byte("k"), WithNonce("3rfcNHYJY1ZVvWVs7j"))
		if err != nil {
			return
		}
		ctx := context.Background()
		_, done, err := x.Next(ctx, []byte(first))
		if err == nil && !done {
			_, done, err = x.Next(ctx, []byte(final))
		}
		const goodFirst = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
		const goodFinal = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
		if err == nil && done && mech != "PLAIN" && (first != goodFirst || final != goodFinal) {
			t.Fatalf("%s succeeded with %q / %q", mech, first, final)
		}
	})
}
