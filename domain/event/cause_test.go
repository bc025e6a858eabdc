package event_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"annals.im/annals/domain/event"
)

func TestCause(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", event.MaxCause-1) + "é" // é straddles the bound
	cases := []struct {
		name, given, fallback, want string
	}{
		{"none given", "", "c2s", "c2s"},
		{"stanza id", "purple4f1a", "c2s", "purple4f1a"},
		{"command", "cli:user del", "remove", "cli:user del"},
		{"at the bound", strings.Repeat("b", event.MaxCause), "x", strings.Repeat("b", event.MaxCause)},
		{"cut on a rune boundary", long, "x", strings.Repeat("a", event.MaxCause-1)},
		{"far too long", strings.Repeat("c", 1<<20), "x", strings.Repeat("c", event.MaxCause)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := event.Cause(event.WithCause(context.Background(), c.given), c.fallback)
			if got != c.want || !utf8.ValidString(got) {
				t.Fatalf("cause %q (%d bytes), want %q (%d bytes)", got, len(got), c.want, len(c.want))
			}
		})
	}
	// The innermost cause wins: a command run on behalf of a stanza.
	ctx := event.WithCause(event.WithCause(context.Background(), "outer"), "inner")
	if got := event.Cause(ctx, "x"); got != "inner" {
		t.Fatalf("nested: %q, want inner", got)
	}
}
