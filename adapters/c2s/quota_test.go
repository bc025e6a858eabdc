package c2s

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Registrations are counted per key over a sliding window, and the keys
// held stay bounded: quiet ones are swept, and when every key is still in
// its window a new one is refused rather than an old one forgotten.
func TestRegistrationsWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRegistrations(3, 10*time.Minute, 4)
	for i := range 3 {
		if !r.allow("198.51.100.7", t0.Add(time.Duration(i)*time.Minute)) {
			t.Fatalf("registration %d refused", i+1)
		}
	}
	if r.allow("198.51.100.7", t0.Add(5*time.Minute)) {
		t.Fatal("a fourth registration within the window")
	}
	if !r.allow("2001:db8:1:2::/64", t0.Add(5*time.Minute)) {
		t.Fatal("another address refused")
	}
	// The first registration leaves the window at 10 min: one more fits.
	if !r.allow("198.51.100.7", t0.Add(10*time.Minute)) || r.allow("198.51.100.7", t0.Add(10*time.Minute+time.Second)) {
		t.Fatal("the window does not slide")
	}
	// Keys full (4) of addresses in their window: a new one is refused.
	r.allow("a", t0.Add(10*time.Minute))
	r.allow("b", t0.Add(10*time.Minute))
	if r.allow("c", t0.Add(10*time.Minute)) {
		t.Fatal("a fifth key was taken")
	}
	if n := r.size(); n != 4 {
		t.Fatalf("%d keys held, want 4", n)
	}
	// Once their window has passed, they are swept.
	if !r.allow("c", t0.Add(time.Hour)) || r.size() != 1 {
		t.Fatalf("after the window: %d keys", r.size())
	}
	// No limit: everything passes and nothing is held.
	free := newRegistrations(-1, time.Minute, 4)
	for i := range 100 {
		if !free.allow(fmt.Sprint(i), t0) {
			t.Fatal("refused without a limit")
		}
	}
	if free.size() != 0 {
		t.Fatalf("%d keys held without a limit", free.size())
	}
}

// Many addresses never hold more than the key cap.
func TestRegistrationsBounded(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRegistrations(3, time.Minute, 1000)
	for i := range 100_000 {
		r.allow(fmt.Sprint("10.0.", i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if n := r.size(); n > 1000 {
		t.Fatalf("%d keys held, cap 1000", n)
	}
}

// In-band registration from one address stops at the limit with
// resource-constraint (type wait); changing a password is no
// registration and is not counted.
func TestRegistrationLimit(t *testing.T) {
	reg := &fakeRegistrar{users: map[string]string{"juliet@localhost": "balcony"}}
	addr := serverWith(t, func(cfg *Config) {
		cfg.Registration, cfg.Registrar, cfg.RegistrationsPerAddress = true, reg, 2
	})
	c := dial(t, addr)
	c.send(header)
	c.until("</stream:features>")
	for i := range 3 {
		c.send(fmt.Sprintf("<iq type='set' id='r%d'><query xmlns='jabber:iq:register'><username>u%d</username><password>pw</password></query></iq>", i, i))
	}
	got := c.until("id='r2'")
	if !strings.Contains(got, "<iq type='result' id='r1'") || !strings.Contains(got, "<error type='wait'><resource-constraint") {
		t.Fatalf("third registration: %s", got)
	}
	// Another stream from the same address is refused too.
	d := dial(t, addr)
	d.send(header)
	d.until("</stream:features>")
	d.send("<iq type='set' id='x'><query xmlns='jabber:iq:register'><username>u9</username><password>pw</password></query></iq>")
	d.until("<resource-constraint")
	if len(reg.users) != 3 {
		t.Fatalf("registrar holds %v", reg.users)
	}
	// A logged-in account changes its password.
	e := dial(t, addr)
	e.login("phone")
	e.send("<iq type='set' id='p'><query xmlns='jabber:iq:register'><username>juliet</username><password>nurse</password></query></iq>")
	if got := e.until("id='p'"); !strings.Contains(got, "type='result'") {
		t.Fatalf("password change: %s", got)
	}
}

// The bind past MaxResources gets resource-constraint and the stream goes
// on: the client may bind again once a resource is free. A detached
// session waiting to be resumed counts; replacing a resource does not add
// one; another account is not concerned.
func TestMaxResources(t *testing.T) {
	addr := serverWith(t, func(cfg *Config) { cfg.MaxResources = 2 })
	detached := dial(t, addr)
	detached.login("a")
	detached.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	detached.until("<enabled")
	detached.nc.Close() // the session waits to be resumed
	time.Sleep(200 * time.Millisecond)
	b := dial(t, addr)
	b.login("b")
	c := dial(t, addr)
	c.reauth()
	bind := func(id, r string) {
		c.send(`<iq type='set' id='` + id + `'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + r + `</resource></bind></iq>`)
	}
	bind("b1", "c")
	if got := c.until("id='b1'"); !strings.Contains(got, "<error type='wait'><resource-constraint") {
		t.Fatalf("third resource: %s", got)
	}
	other := dial(t, addr)
	other.loginAs("romeo", "x")
	// Replacing b's resource is no new one.
	bind("b2", "b")
	if got := c.until("id='b2'"); !strings.Contains(got, "juliet@localhost/b</jid>") {
		t.Fatalf("replacing a resource: %s", got)
	}
	b.until("<conflict")
}
