package event

import (
	"context"
	"unicode/utf8"
)

// The cause of the events a request appends travels in its context, so
// that the application services (app/...) record the stanza or command
// id that asked without every port between an adapter and them growing a
// parameter. It lives here, beside Envelope.Cause, rather than in app/,
// because the adapters that set it must not import app/ (make depcheck).

// MaxCause bounds a cause in bytes: a stanza id is chosen by the client
// and is copied into every event of its request, so a longer one is cut.
const MaxCause = 256

type causeKey struct{}

// WithCause returns ctx carrying cause (cut to MaxCause bytes on a rune
// boundary) for the events appended on its behalf. An empty cause leaves
// ctx as it is.
func WithCause(ctx context.Context, cause string) context.Context {
	if cause == "" {
		return ctx
	}
	if len(cause) > MaxCause {
		cut := MaxCause
		for cut > 0 && !utf8.RuneStart(cause[cut]) {
			cut--
		}
		cause = cause[:cut]
	}
	return context.WithValue(ctx, causeKey{}, cause)
}

// Cause returns the cause ctx carries, or fallback when it carries none:
// the service's own name for what it does unasked.
func Cause(ctx context.Context, fallback string) string {
	if c, ok := ctx.Value(causeKey{}).(string); ok {
		return c
	}
	return fallback
}
