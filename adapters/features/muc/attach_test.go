package muc

import (
	"strings"
	"testing"
	"time"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
	"mellium.im/xmpp/jid"
)

// recorder is a session that keeps what it is delivered, in order.
type recorder struct{ muxtest.Session }

func (r *recorder) String() string { return strings.Join(r.Sent, "") }

// recordingConn is a session whose deliveries are kept in order.
func recordingConn(t *testing.T) (*recorder, *recorder) {
	r := &recorder{muxtest.Session{Full: jid.MustParse("someone@localhost/x")}}
	return r, r
}

// A joining session gets the room's events after its join's answer, in
// log order, without those its answer already showed; a live session
// gets them at once; a join that fails leaves nothing attached.
func TestAttachmentJoinProtocol(t *testing.T) {
	var a attachments
	live, liveOut := recordingConn(t)
	joiner, joinOut := recordingConn(t)
	a.attach("r", "alice", live, "")
	if !a.ready("r", "alice", live, 3) {
		t.Fatal("ready refused")
	}
	a.attach("r", "bob", joiner, "")
	if a.attached("r", "bob", joiner) {
		t.Error("a joining session counts as attached")
	}
	tell := func(acct string, v int) {
		a.tell("r", acct, uint64(v), func(mux.Session) string { return "<e" + string(rune('0'+v)) + "/>" }, true)
	}
	for v := 4; v <= 7; v++ {
		tell("alice", v)
		tell("bob", v)
	}
	if got := joinOut.String(); got != "" {
		t.Fatalf("a joining session got %q before its answer", got)
	}
	joiner.Deliver("<answer/>", true) // its answer showed the room at version 5
	if !a.ready("r", "bob", joiner, 5) {
		t.Fatal("ready refused")
	}
	// A late follower's event that the answer showed is not told again.
	tell("bob", 5)
	tell("bob", 8)
	if got, want := joinOut.String(), "<answer/><e6/><e7/><e8/>"; got != want {
		t.Errorf("joining session got %q, want %q", got, want)
	}
	if got, want := liveOut.String(), "<e4/><e5/><e6/><e7/>"; got != want {
		t.Errorf("live session got %q, want %q", got, want)
	}

	failed, _ := recordingConn(t)
	a.attach("r", "carol", failed, "")
	a.cancel("r", "carol", failed)
	if len(a.sessions("r", "carol")) != 0 {
		t.Error("a failed join left its session attached")
	}
}

// A joining session that would hold back more than maxPending stanzas is
// refused at ready rather than told the room out of order.
func TestAttachmentPendingBound(t *testing.T) {
	var a attachments
	c, _ := recordingConn(t)
	a.attach("r", "bob", c, "")
	for v := range maxPending + 1 {
		a.tell("r", "bob", uint64(v+1), func(mux.Session) string { return "<m/>" }, true)
	}
	if a.ready("r", "bob", c, 0) {
		t.Error("ready accepted a session that missed stanzas")
	}
	if a.occupied("r") {
		t.Error("the refused session is still attached")
	}
}

// An exit of the account that the log tells while a session of it is
// still joining reaches that session after its answer, and the session is
// detached then; a join that came after the exit keeps it attached.
func TestAttachmentExitWhileJoining(t *testing.T) {
	var a attachments
	s, out := recordingConn(t)
	a.attach("r", "bob", s, "")
	a.tell("r", "bob", 7, func(mux.Session) string { return "<exit/>" }, true)
	a.detachAccount("r", "bob", 7)
	s.Deliver("<answer/>", true) // the answer showed the room at version 5
	a.ready("r", "bob", s, 5)
	if got := out.String(); got != "<answer/><exit/>" {
		t.Errorf("got %q", got)
	}
	if a.occupied("r") {
		t.Error("the session is still attached after its account's exit")
	}

	again, _ := recordingConn(t)
	a.attach("r", "bob", again, "")
	a.detachAccount("r", "bob", 7)
	a.ready("r", "bob", again, 9) // its join came after the exit
	if !a.attached("r", "bob", again) {
		t.Error("a join after the exit was detached")
	}
}

// rejoiner is a session that, like a client, answers its exit at once by
// asking whether it is still attached (what its rejoin's handling asks).
type rejoiner struct {
	muxtest.Session
	a     *attachments
	asked chan bool
}

func (r *rejoiner) Deliver(string, bool) {
	go func() { r.asked <- r.a.attached("r", "bob", r) }()
	time.Sleep(20 * time.Millisecond) // the client is quick; the server is not
}

// A session told of its exit is detached before anything it does next
// is handled: a rejoin right after a kick is a join, not a change of
// presence of an occupant that is gone (TestMUCKickAndBan met this).
func TestAttachmentExitThenRejoin(t *testing.T) {
	var a attachments
	s := &rejoiner{Session: muxtest.Session{Full: jid.MustParse("bob@localhost/x")}, a: &a, asked: make(chan bool, 1)}
	a.attach("r", "bob", s, "")
	a.ready("r", "bob", s, 1)
	a.tellExit("r", "bob", 2, func(mux.Session) string { return "<exit/>" })
	if <-s.asked {
		t.Fatal("the session was still attached when it read its exit")
	}
}
