package c2s

import (
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/roster"
)

// noContacts is an Accounts whose rosters are empty: presence then goes
// only to the account's own sessions.
type noContacts struct{}

func (noContacts) Roster(context.Context, string) (roster.State, error) { return roster.State{}, nil }
func (noContacts) Do(context.Context, string, roster.Command, string) (roster.Outcome, roster.State, error) {
	return roster.Outcome{}, roster.State{}, nil
}

// reauth opens a new stream as juliet and stops before binding.
func (c *rawClient) reauth() { c.reauthAs("juliet") }

func (c *rawClient) reauthAs(user string) {
	c.t.Helper()
	c.send(header)
	c.until("</stream:features>")
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00balcony")) + `</auth>`)
	c.until("<success")
	c.send(header)
	c.until("</stream:features>")
}

var enabledID = regexp.MustCompile(`<enabled xmlns='urn:xmpp:sm:3' id='([0-9a-f]+)' resume='true'`)

func TestSMCounts(t *testing.T) {
	addr := rawServer(t, 0)
	c := dial(t, addr)
	c.login("a")
	c.send(`<r xmlns='urn:xmpp:sm:3'/>`)
	if got := c.until("</stream:stream>"); !strings.Contains(got, "unsupported-stanza-type") {
		t.Fatalf("<r/> before <enable/>: %q", got)
	}
	c = dial(t, addr)
	c.login("b")
	// Stanzas before <enable/> are not counted.
	c.send(`<iq type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>`)
	c.until("id='p0'")
	c.send(`<enable xmlns='urn:xmpp:sm:3'/>`)
	c.until("<enabled xmlns='urn:xmpp:sm:3'/>")
	c.send(`<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq><iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/>`)
	c.until("<a xmlns='urn:xmpp:sm:3' h='2'/>")
	c.send(`<enable xmlns='urn:xmpp:sm:3'/>`)
	c.until("<unexpected-request")
	// The server sent two results (and the failed nonza, not counted).
	c.send(`<a xmlns='urn:xmpp:sm:3' h='2'/><a xmlns='urn:xmpp:sm:3' h='1'/>`)
	c.send(`<a xmlns='urn:xmpp:sm:3' h='3'/>`)
	if got := c.until("</stream:stream>"); !strings.Contains(got, "undefined-condition") {
		t.Fatalf("h beyond what was sent: %q", got)
	}
}

func TestSMAckArithmetic(t *testing.T) {
	var s smState
	for _, x := range []string{"a", "b", "c"} {
		s.sent(x)
	}
	if err := s.ack(1); err != nil || len(s.unacked) != 2 || s.unacked[0] != "b" {
		t.Fatalf("after h=1: %v %v", s.unacked, err)
	}
	if err := s.ack(0); err != nil || len(s.unacked) != 2 {
		t.Fatalf("an older h changed something: %v %v", s.unacked, err)
	}
	if err := s.ack(4); err != errHandledTooHigh {
		t.Fatalf("h=4 of 3: %v", err)
	}
	// The counter wraps at 2^32 (XEP-0198 §5).
	w := smState{count: 1<<32 - 2}
	w.sent("x")
	w.sent("y")
	w.sent("z")
	if w.count != 1 {
		t.Fatalf("count %d", w.count)
	}
	if err := w.ack(0); err != nil || len(w.unacked) != 1 || w.unacked[0] != "z" {
		t.Fatalf("across the wrap: %v %v", w.unacked, err)
	}
}

// A session whose connection breaks is resumed on a new one: the client
// learns how far its stanzas got, and gets again what it did not
// acknowledge, plus what arrived while it was away, in order.
func TestResume(t *testing.T) {
	addr := serverWith(t, func(cfg *Config) { cfg.ResumeTimeout = 200 * time.Millisecond })
	a := dial(t, addr)
	a.login("a")
	a.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	m := enabledID.FindStringSubmatch(a.until("resume='true'"))
	if m == nil {
		t.Fatal("no resumption id")
	}
	id := m[1]
	b := dial(t, addr)
	b.login("b")
	b.send(`<message to='juliet@localhost/a' id='m1' type='chat'><body>one</body></message>`)
	a.until("<body>one</body>")
	a.send(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a.until("id='p'")
	a.nc.Close() // no </stream:stream>: the connection broke
	time.Sleep(50 * time.Millisecond)
	b.send(`<message to='juliet@localhost/a' id='m2' type='chat'><body>two</body></message>`)

	r := dial(t, addr)
	r.reauth()
	r.send(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='0'/>`)
	got := r.until("<body>two</body>")
	if !strings.Contains(got, "<resumed xmlns='urn:xmpp:sm:3' previd='"+id+"' h='1'/>") ||
		strings.Index(got, "<body>one</body>") > strings.Index(got, "<body>two</body>") || !strings.Contains(got, "id='p'") {
		t.Fatalf("resumption: %q", got)
	}
	// The session goes on: same full JID, stanzas counted on.
	r.send(`<r xmlns='urn:xmpp:sm:3'/>`)
	r.until("<a xmlns='urn:xmpp:sm:3' h='1'/>")
	b.send(`<message to='juliet@localhost/a' id='m3' type='chat'><body>three</body></message>`)
	r.until("<body>three</body>")

	// Unknown ids fail; the stream may still bind.
	f := dial(t, addr)
	f.reauth()
	f.send(`<resume xmlns='urn:xmpp:sm:3' previd='nope' h='0'/>`)
	f.until("<item-not-found")
	f.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>f</resource></bind></iq>`)
	f.until("juliet@localhost/f")

	// A session not resumed in time is gone; a late resume learns its h.
	r.nc.Close()
	time.Sleep(500 * time.Millisecond)
	l := dial(t, addr)
	l.reauth()
	l.send(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='0'/>`)
	if got := l.until("</failed>"); !strings.Contains(got, "h='1'") { // the ping
		t.Fatalf("late resumption: %q", got)
	}
}

// While a client is inactive (XEP-0352) presence waits; a message with a
// body brings it, in order, ahead of the message.
func TestCSIHoldsPresence(t *testing.T) {
	addr := serverWith(t, func(cfg *Config) { cfg.Accounts = noContacts{} })
	a := dial(t, addr)
	a.login("a")
	a.send(`<presence/>`)
	a.until("<presence")
	b := dial(t, addr)
	b.login("b")
	a.send(`<inactive xmlns='urn:xmpp:csi:0'/><iq type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a.until("id='p0'")
	b.send(`<presence><show>dnd</show></presence>`)
	b.until("<show>dnd</show>")
	b.send(`<presence><show>away</show></presence>`)
	b.until("<show>away</show>")
	a.send(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if got := a.until("id='p'"); strings.Contains(got, "away") {
		t.Fatalf("an inactive client got presence: %q", got)
	}
	b.send(`<message to='juliet@localhost/a' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	b.send(`<message to='juliet@localhost/a' type='chat'><body>wake up</body></message>`)
	got := a.until("wake up")
	if i, j, k := strings.Index(got, "away"), strings.Index(got, "composing"), strings.Index(got, "wake up"); i < 0 || j < i || k < j {
		t.Fatalf("held stanzas not flushed in order before the message: %q", got)
	}
	if strings.Contains(got, "<show>dnd</show>") {
		t.Fatalf("a held presence was not replaced by the newer one: %q", got)
	}
	a.send(`<active xmlns='urn:xmpp:csi:0'/>`)
	b.send(`<presence><show>dnd</show></presence>`)
	a.until("<show>dnd</show>")
}
