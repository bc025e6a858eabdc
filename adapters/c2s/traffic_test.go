package c2s

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// The unacknowledged queue is bounded in bytes as well as stanzas; one
// stanza is always kept, and acks give the bytes back.
func TestSMUnackedBytes(t *testing.T) {
	s := smState{maxItems: 10, maxBytes: 10}
	for _, x := range []string{"aaaa", "bbbb"} {
		if err := s.sent(x); err != nil {
			t.Fatalf("sent %q: %v", x, err)
		}
	}
	if err := s.sent("ccc"); !errors.Is(err, errTooManyUnacked) {
		t.Fatalf("11 bytes of 10: %v", err)
	}
	if err := s.ack(1); err != nil || s.bytes != 4 {
		t.Fatalf("after h=1: %d bytes, %v", s.bytes, err)
	}
	if err := s.sent("ccc"); err != nil || s.bytes != 7 || len(s.unacked) != 2 {
		t.Fatalf("after the ack: %v, %d bytes, %d stanzas", err, s.bytes, len(s.unacked))
	}
	s.drop()
	if s.bytes != 0 || s.unacked != nil {
		t.Fatalf("drop kept %d bytes", s.bytes)
	}
	big := smState{maxItems: 10, maxBytes: 2}
	if err := big.sent("xxxxx"); err != nil {
		t.Fatalf("one stanza over the bound must still be kept: %v", err)
	}
	if err := big.sent("y"); !errors.Is(err, errTooManyUnacked) {
		t.Fatalf("a second one: %v", err)
	}
	items := smState{maxItems: 2, maxBytes: 100}
	items.sent("a")
	items.sent("b")
	if err := items.sent("c"); !errors.Is(err, errTooManyUnacked) {
		t.Fatalf("3 stanzas of 2: %v", err)
	}
	var def smState // zero bounds: the defaults
	for i := range DefaultMaxUnackedBytes / (256 << 10) {
		if err := def.sent(strings.Repeat("x", 256<<10)); err != nil {
			t.Fatalf("stanza %d: %v", i, err)
		}
	}
	if err := def.sent(strings.Repeat("x", 256<<10)); !errors.Is(err, errTooManyUnacked) {
		t.Fatalf("past %d bytes: %v", DefaultMaxUnackedBytes, err)
	}
}

// A stream-management client that acknowledges nothing is cut off once
// its stanzas pass the byte bound, long before the stanza bound.
func TestSMUnackedBytesEndSession(t *testing.T) {
	addr := serverWith(t, func(cfg *Config) { cfg.MaxUnackedBytes = 64 << 10 })
	victim := dial(t, addr)
	victim.login("victim")
	victim.send(`<enable xmlns='urn:xmpp:sm:3'/>`)
	victim.until("<enabled")
	sender := dial(t, addr)
	sender.login("sender")
	body := strings.Repeat("x", 8<<10)
	for range 12 {
		sender.send("<message to='juliet@localhost/victim' type='chat'><body>" + body + "</body></message>")
	}
	if got := victim.until("</stream:stream>"); !strings.Contains(got, "policy-violation") || !strings.Contains(got, "too many unacked stanzas") {
		t.Fatalf("the victim's stream ended with %q", got[max(0, len(got)-300):])
	}
	sender.send(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`)
	sender.until("id='p'")
}

// A client that stops reading is dropped once the bytes waiting for it
// pass OutQueueBytes, though far fewer than OutQueue stanzas wait.
func TestOutQueueBytes(t *testing.T) {
	addr := serverWith(t, func(cfg *Config) { cfg.OutQueueBytes = 256 << 10 })
	slow := dial(t, addr)
	slow.login("slow")
	fast := dial(t, addr)
	fast.login("fast")
	body := strings.Repeat("x", 128<<10)
	// 160 of them, 20 MiB: more than loopback's socket buffers hold, and
	// far fewer than OutQueue stanzas.
	fast.nc.SetDeadline(time.Now().Add(60 * time.Second)) // -race is slow
	for range 160 {
		fast.send("<message to='juliet@localhost/slow' type='chat'><body>" + body + "</body></message>")
	}
	fast.send(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`)
	fast.until("id='p'")
	slow.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, slow.r); err != nil {
		t.Fatalf("the slow session was not closed: %v", err)
	}
}
