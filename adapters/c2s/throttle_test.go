package c2s

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"
)

func testThrottle(now *time.Time) *throttle {
	th := newThrottle(throttleConfig{freeAccount: 3, freeAddress: 5, delay: time.Second, delayMax: 8 * time.Second,
		window: time.Minute, maxKeys: 1000})
	th.now = func() time.Time { return *now }
	return th
}

// Past the free failures each attempt waits, doubling up to the cap; the
// wait depends on the failures, never on the password being tried.
func TestThrottleDelays(t *testing.T) {
	now := time.Unix(1000, 0)
	th := testThrottle(&now)
	tk := ticket{addr: th.hash("a"), acct: th.hash("b")}
	var waits []time.Duration
	for range 9 {
		w, ok := th.admit(tk)
		if !ok {
			t.Fatal("a lone stream was refused")
		}
		now = now.Add(w)
		waits = append(waits, w)
		th.fail(tk)
	}
	want := []time.Duration{0, 0, 0, 1, 2, 4, 8, 8, 8} // account: 3 free
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	// The owner's right password clears the account, not the address.
	th.succeed(tk)
	if w, _ := th.admit(ticket{acct: tk.acct}); w != 0 {
		t.Fatalf("account still waits %v after a success", w)
	}
	if w, _ := th.admit(ticket{addr: tk.addr}); w == 0 {
		t.Fatal("a success cleared the address's failures")
	}
}

// Parallel attempts from one address are serialised, and a queue longer
// than twice the cap is refused; an account is only ever delayed.
func TestThrottleSerialisesAnAddress(t *testing.T) {
	now := time.Unix(1000, 0)
	th := testThrottle(&now)
	addr := ticket{addr: th.hash("a")}
	for range 10 {
		th.fail(addr)
	}
	var last time.Duration
	refused := 0
	for i := range 10 {
		w, ok := th.admit(addr)
		if !ok {
			refused++
			continue
		}
		if i > 0 && w <= last {
			t.Fatalf("attempt %d waits %v, not after the one before (%v)", i, w, last)
		}
		if w > 16*time.Second {
			t.Fatalf("attempt %d waits %v, past twice the cap", i, w)
		}
		last = w
	}
	if refused == 0 {
		t.Fatal("ten parallel attempts all queued")
	}
	acct := ticket{acct: th.hash("victim")}
	for range 100 {
		th.fail(acct)
	}
	for range 10 {
		w, ok := th.admit(acct)
		if !ok || w > 8*time.Second {
			t.Fatalf("account attempt: wait %v ok %v: an account is delayed at most the cap, never refused", w, ok)
		}
	}
}

// Successes reserve nothing and count nothing.
func TestThrottleSuccessesAreFree(t *testing.T) {
	now := time.Unix(1000, 0)
	th := testThrottle(&now)
	tk := ticket{addr: th.hash("a"), acct: th.hash("b")}
	for range 1000 {
		if w, ok := th.admit(tk); w != 0 || !ok {
			t.Fatalf("a success waited %v", w)
		}
		th.succeed(tk)
	}
	if th.size() != 0 {
		t.Fatalf("%d keys held for successes", th.size())
	}
}

// Keys are forgotten after a quiet window, and never exceed the cap: 100k
// distinct names cost at most maxKeys entries.
func TestThrottleBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	th := testThrottle(&now)
	for i := range 100_000 {
		th.fail(ticket{acct: th.accountKey(strconv.Itoa(i) + "@localhost")})
		if th.size() > 1000 {
			t.Fatalf("%d keys after %d names, cap 1000", th.size(), i+1)
		}
	}
	now = now.Add(2 * time.Minute)
	th.fail(ticket{acct: th.accountKey("new@localhost")})
	if th.size() != 1 {
		t.Fatalf("%d keys after a quiet window, want 1", th.size())
	}
}

func TestThrottleAddressKeys(t *testing.T) {
	now := time.Unix(1000, 0)
	th := testThrottle(&now)
	th.cfg.trusted = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	key := func(s string) uint64 { return th.addressKey(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s))) }
	if key("[2001:db8:1:2::1]:5") != key("[2001:db8:1:2:ffff::9]:6") {
		t.Fatal("one IPv6 /64 has two keys")
	}
	if key("[2001:db8:1:2::1]:5") == key("[2001:db8:1:3::1]:5") {
		t.Fatal("two IPv6 /64s share a key")
	}
	if key("[::ffff:198.51.100.1]:5") != key("198.51.100.1:6") || key("198.51.100.1:5") == key("198.51.100.2:5") {
		t.Fatal("IPv4 keys are off")
	}
	if key("192.0.2.7:5") != 0 || key("127.0.0.1:5") == 0 {
		t.Fatal("only a trusted proxy goes unkeyed; loopback is an address like any")
	}
}

func TestClip(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 8, "short"},
		{"0123456789", 4, "0123…(10 bytes)"},
		{"ééé", 3, "é…(6 bytes)"}, // never half a rune
	} {
		if got := clip(c.in, c.n); got != c.want {
			t.Errorf("clip(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
