package c2s

import (
	"container/list"
	"hash/maphash"
	"net"
	"net/netip"
	"sync"
	"time"
)

// throttle slows password guessing down without locking anyone out.
//
// Failed logins are counted per source address (IPv4 address, IPv6 /64)
// and per account. The first few failures of a key cost nothing, then each
// further attempt waits before its password is checked: the delay doubles
// with every failure up to a cap, so that a guesser gets a few tries a
// minute. The wait comes before the check, and the same wait whatever the
// password, so a throttled right password and a throttled wrong one are
// told apart only by the answer the check gives after it; there is no
// "blocked" answer that would confirm a password.
//
// An address's attempts are serialised: each one reserves the next slot, so
// parallel streams from one source do not multiply its rate. A source whose
// queue reaches twice the longest delay is refused outright with
// not-authorized, without checking the password, so holding a stream costs
// a bounded time. An account's delay only makes an attempt wait for the
// account's last failure plus its delay, at most the longest delay, and
// never refuses: that way a guesser at another address slows the owner's
// login down by at most the longest delay but cannot lock them out.
//
// Successful logins are not counted and reserve nothing while a key has
// failures to spare, so busy proxies and benchmarks run at full speed. A
// success clears its account's failures (the owner proved the password),
// never its address's (a guesser with an account of its own would clear
// its own record between guesses).
//
// The state is bounded: keys are fixed-size hashes (a username of any
// length costs the same), a key is forgotten once it has been quiet for
// the window, and beyond maxKeys the least recently used key goes.
type throttle struct {
	cfg  throttleConfig
	now  func() time.Time
	seed maphash.Seed

	mu    sync.Mutex
	keys  map[uint64]*list.Element // of *failures
	order list.List                // least recently used first
}

type throttleConfig struct {
	freeAccount, freeAddress int           // failures a key makes before delays begin
	delay, delayMax          time.Duration // the first delay and the cap of the doubling
	window                   time.Duration // a key quiet this long is forgotten
	maxKeys                  int
	trusted                  []netip.Prefix // proxies: not throttled by address
}

// failures is what the throttle knows about one key.
type failures struct {
	key  uint64
	n    int       // failures since the key was last forgotten
	last time.Time // the latest failure
	next time.Time // addresses: when the next reserved slot begins
}

func newThrottle(cfg throttleConfig) *throttle {
	t := &throttle{cfg: cfg, now: time.Now, seed: maphash.MakeSeed(), keys: make(map[uint64]*list.Element)}
	t.order.Init()
	return t
}

// ticket names the keys one login attempt is counted under; a zero key is
// none (a trusted proxy's address, a name that is no account).
type ticket struct{ addr, acct uint64 }

// addressKey returns the key of the client at remote, or 0 when remote is
// a trusted proxy. IPv6 clients are keyed by their /64: one host usually
// has a whole /64 to pick addresses from.
func (t *throttle) addressKey(remote net.Addr) uint64 {
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return t.hash("addr\x00" + remote.String())
	}
	a := ap.Addr().Unmap().WithZone("")
	for _, p := range t.cfg.trusted {
		if p.Contains(a) {
			return 0
		}
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return t.hash("addr\x00" + p.String())
	}
	return t.hash("addr\x00" + a.String())
}

// accountKey returns the key of the account with bare JID bare.
func (t *throttle) accountKey(bare string) uint64 { return t.hash("acct\x00" + bare) }

func (t *throttle) hash(s string) uint64 {
	// 64 bits of a seeded hash: an attacker cannot aim a name at another
	// key's slot without knowing the seed.
	if h := maphash.String(t.seed, s); h != 0 {
		return h
	}
	return 1
}

// delay is the wait before the attempt that follows n failures of a key
// allowed free ones.
func (t *throttle) delay(n, free int) time.Duration {
	if n < free {
		return 0
	}
	d := t.cfg.delay
	for i := free; i < n && d < t.cfg.delayMax; i++ {
		d *= 2
	}
	return min(d, t.cfg.delayMax)
}

// get returns key's entry, or nil; an entry quiet for the window is
// forgotten here.
func (t *throttle) get(key uint64, now time.Time) *failures {
	el, ok := t.keys[key]
	if !ok {
		return nil
	}
	f := el.Value.(*failures)
	if t.quiet(f, now) {
		t.order.Remove(el)
		delete(t.keys, key)
		return nil
	}
	return f
}

func (t *throttle) quiet(f *failures, now time.Time) bool {
	return now.Sub(f.last) > t.cfg.window && !f.next.After(now)
}

// entry returns key's entry, making one if needed, as the most recently
// used.
func (t *throttle) entry(key uint64, now time.Time) *failures {
	if f := t.get(key, now); f != nil {
		t.order.MoveToBack(t.keys[key])
		return f
	}
	// Forget what has gone quiet, oldest first, and past the cap whatever
	// is least recently used.
	for el := t.order.Front(); el != nil; el = t.order.Front() {
		f := el.Value.(*failures)
		if !t.quiet(f, now) && len(t.keys) < t.cfg.maxKeys {
			break
		}
		t.order.Remove(el)
		delete(t.keys, f.key)
	}
	f := &failures{key: key}
	t.keys[key] = t.order.PushBack(f)
	return f
}

// admit says how long an attempt must wait before its password is
// checked; ok false: refuse it without checking.
func (t *throttle) admit(tk ticket) (wait time.Duration, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	start := now
	if tk.addr != 0 {
		if f := t.get(tk.addr, now); f != nil && f.n >= t.cfg.freeAddress {
			start = later(now, f.next)
			if start.Sub(now) > 2*t.cfg.delayMax {
				return 0, false
			}
			f.next = start.Add(t.delay(f.n, t.cfg.freeAddress))
			t.order.MoveToBack(t.keys[tk.addr])
		}
	}
	if tk.acct != 0 {
		if f := t.get(tk.acct, now); f != nil && f.n >= t.cfg.freeAccount {
			start = later(start, f.last.Add(t.delay(f.n, t.cfg.freeAccount)))
		}
	}
	return start.Sub(now), true
}

// fail records a failed attempt.
func (t *throttle) fail(tk ticket) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if tk.addr != 0 {
		f := t.entry(tk.addr, now)
		f.n++
		f.last = now
		f.next = later(f.next, now.Add(t.delay(f.n, t.cfg.freeAddress)))
	}
	if tk.acct != 0 {
		f := t.entry(tk.acct, now)
		f.n++
		f.last = now
	}
}

// succeed records a successful login: the account's failures are cleared.
func (t *throttle) succeed(tk ticket) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.keys[tk.acct]; ok && tk.acct != 0 {
		t.order.Remove(el)
		delete(t.keys, tk.acct)
	}
}

// size returns the number of keys held.
func (t *throttle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.keys)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
