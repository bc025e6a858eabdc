package c2s

import (
	"sync"
	"time"
)

// throttle counts failed logins per key (an account, an IP address) over a
// sliding window. A key with too many recent failures is refused outright,
// even with the right password, until its failures age out: that is what
// stops a password guesser, who would otherwise just keep going.
type throttle struct {
	mu     sync.Mutex
	window time.Duration
	now    func() time.Time
	fails  map[string][]time.Time
}

// maxThrottleKeys bounds the memory an attacker cycling through names or
// addresses can make the server spend; past it, old entries are dropped.
const maxThrottleKeys = 1 << 16

func newThrottle(window time.Duration) *throttle {
	return &throttle{window: window, now: time.Now, fails: make(map[string][]time.Time)}
}

// recent returns key's failures within the window, dropping older ones.
func (t *throttle) recent(key string) int {
	cut := t.now().Add(-t.window)
	fs := t.fails[key]
	i := 0
	for i < len(fs) && fs[i].Before(cut) {
		i++
	}
	if i == len(fs) {
		delete(t.fails, key)
		return 0
	}
	t.fails[key] = fs[i:]
	return len(fs) - i
}

// blocked reports whether key has max or more recent failures.
func (t *throttle) blocked(key string, max int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.recent(key) >= max
}

// fail records a failure for each key.
func (t *throttle) fail(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.fails) > maxThrottleKeys {
		for k := range t.fails {
			t.recent(k)
		}
	}
	now := t.now()
	for _, k := range keys {
		t.fails[k] = append(t.fails[k], now)
	}
}
