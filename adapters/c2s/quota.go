package c2s

import (
	"cmp"
	"sync"
	"time"

	"annals.im/annals/domain/blocking"
)

// Account quotas: how many accounts one address may register in-band, how
// many resources one account may bind at once, how many contacts one
// roster holds, how many JIDs one block list (PEP's limits are the pep
// feature's). Each bounds
// what one client can make the server hold, whatever it sends.

// Defaults of the account quotas (Config fields of the same names).
const (
	// DefaultRegistrationsPerAddress accounts per DefaultRegistrationWindow
	// from one address: ejabberd allows one per address per 600 s
	// (registration_timeout); a few let a family behind one NAT sign up
	// together.
	DefaultRegistrationsPerAddress = 3
	DefaultRegistrationWindow      = 10 * time.Minute
	// DefaultMaxResources is how many sessions of one account may be bound
	// at once, detached resumable ones included (ejabberd's example
	// configuration: max_user_sessions 10).
	DefaultMaxResources = 100
	// DefaultMaxRosterItems is how many contacts one roster holds.
	DefaultMaxRosterItems = 1000
)

// registrationKeys bounds the addresses whose registrations are
// remembered: 65,536 keys of a few dozen bytes each, a few MiB. It is no
// flag: it only matters to a flood from more addresses than that within
// one window, and then registration is refused to new addresses (fail
// closed) until the window frees keys, rather than letting the flood
// evict the addresses it has already used.
const registrationKeys = 1 << 16

// quotaDefaults fills in the account quotas cfg leaves at zero; a negative
// registration limit, resource limit, roster limit or block list limit
// means none.
func (cfg *Config) quotaDefaults() {
	cfg.RegistrationsPerAddress = cmp.Or(cfg.RegistrationsPerAddress, DefaultRegistrationsPerAddress)
	cfg.RegistrationWindow = cmp.Or(cfg.RegistrationWindow, DefaultRegistrationWindow)
	cfg.MaxResources = cmp.Or(cfg.MaxResources, DefaultMaxResources)
	cfg.MaxRosterItems = cmp.Or(cfg.MaxRosterItems, DefaultMaxRosterItems)
	cfg.MaxBlockedJIDs = cmp.Or(cfg.MaxBlockedJIDs, blocking.DefaultMaxJIDs)
}

// registrations counts in-band registrations per address (connlimit.Key: an
// IPv4 address or an IPv6 /64) over a sliding window. Loopback is an
// address like any other: a TLS proxy on the host would otherwise lift
// the limit for everyone behind it.
type registrations struct {
	limit  int // per key per window; <= 0: no limit
	window time.Duration
	keys   int // at most this many keys are held

	mu    sync.Mutex
	seen  map[string][]time.Time // key -> times of its registrations in the window, oldest first
	next  time.Time              // when to sweep next
	swept time.Time              // when it last swept
}

func newRegistrations(limit int, window time.Duration, keys int) *registrations {
	return &registrations{limit: limit, window: window, keys: keys, seen: make(map[string][]time.Time)}
}

// allow counts one registration attempt from key at now, and reports
// whether it may go ahead. Attempts are counted whether the account is
// then made or not: each costs a key derivation.
func (r *registrations) allow(key string, now time.Time) bool {
	if r.limit <= 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Full, it sweeps at most once a second: a flood of new addresses
	// must not make every attempt walk every key.
	if now.After(r.next) || len(r.seen) >= r.keys && now.Sub(r.swept) >= time.Second {
		r.sweep(now)
	}
	times := r.recent(r.seen[key], now)
	if len(times) >= r.limit {
		r.seen[key] = times
		return false
	}
	if len(times) == 0 && len(r.seen) >= r.keys {
		if _, held := r.seen[key]; !held {
			return false // full of addresses still in their window
		}
	}
	r.seen[key] = append(times, now)
	return true
}

// recent drops the times that left the window.
func (r *registrations) recent(times []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(times) && now.Sub(times[i]) >= r.window {
		i++
	}
	if i == len(times) {
		return nil
	}
	return times[i:]
}

// sweep forgets the keys whose registrations all left the window; it
// runs once a window, or once a second while the keys are full. Caller
// holds mu.
func (r *registrations) sweep(now time.Time) {
	for k, times := range r.seen {
		if len(r.recent(times, now)) == 0 {
			delete(r.seen, k)
		}
	}
	r.next, r.swept = now.Add(r.window), now
}

func (r *registrations) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}
