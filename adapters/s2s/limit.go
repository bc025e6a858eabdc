package s2s

import (
	"fmt"
	"time"
)

// Defaults of the stanza rate one peer stream may send (Config).
const (
	DefaultMaxStanzaRate = 1000 // stanzas per second, sustained
	DefaultStanzaBurst   = 5000 // stanzas above the rate, absorbed at once
)

// limiter is a token bucket over one stream's stanzas: a peer may send
// burst stanzas at once and rate per second after that. Past it the
// stream ends (policy-violation): a peer that floods is cut off, and
// other peers and local users keep the server's time. One goroutine (the
// stream's reader) uses it.
type limiter struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// take counts one stanza received at now; an error ends the stream.
func (l *limiter) take(now time.Time) error {
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		return &streamError{cond: "policy-violation", text: fmt.Sprintf("more than %g stanzas per second (burst %g)", l.rate, l.burst)}
	}
	l.tokens--
	return nil
}
