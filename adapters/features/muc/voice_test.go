package muc

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// An occupant asks for voice at most once an interval, per room; the
// remembered requests are bounded, the expired ones forgotten first.
func TestVoiceRequestsThrottle(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	every := time.Minute
	var v voiceRequests
	steps := []struct {
		room, acct string
		at         time.Duration
		want       bool
	}{
		{"a@muc", "romeo@x", 0, true},
		{"a@muc", "romeo@x", 30 * time.Second, false},
		{"b@muc", "romeo@x", 30 * time.Second, true}, // another room
		{"a@muc", "juliet@x", 31 * time.Second, true},
		{"a@muc", "romeo@x", time.Minute, true},
		{"a@muc", "romeo@x", time.Minute + time.Second, false},
	}
	for i, s := range steps {
		if got := v.allow(s.room, s.acct, t0.Add(s.at), every); got != s.want {
			t.Errorf("step %d (%s in %s at +%v): allowed %v, want %v", i, s.acct, s.room, s.at, got, s.want)
		}
	}

	var full voiceRequests
	for i := range maxVoiceRequests {
		if !full.allow("a@muc", "u"+strconv.Itoa(i)+"@x", t0, every) {
			t.Fatalf("request %d refused below the bound", i)
		}
	}
	if full.allow("a@muc", "late@x", t0.Add(time.Second), every) {
		t.Error("a request past the bound, none expired, was allowed")
	}
	if !full.allow("a@muc", "late@x", t0.Add(every), every) {
		t.Error("a request past the bound was refused though every remembered one had expired")
	}
	if n := len(full.last); n != 1 {
		t.Errorf("%d requests remembered after the expired ones went, want 1", n)
	}
}

// The approval form carries what §8.6 asks, escaped.
func TestApprovalForm(t *testing.T) {
	got := approvalForm("a@muc", "id1", "romeo@x", "R<o>")
	for _, want := range []string{
		"<value>http://jabber.org/protocol/muc#request</value>",
		"<field var='muc#jid' type='jid-single' label='User ID'><value>romeo@x</value></field>",
		"<field var='muc#roomnick' type='text-single' label='Room Nickname'><value>R&lt;o&gt;</value></field>",
		"<field var='muc#request_allow' type='boolean' label='Grant voice to this person?'><value>false</value></field>",
		"to='%s'",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("approval form lacks %s:\n%s", want, got)
		}
	}
}
