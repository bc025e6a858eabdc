package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// A DMUC3 master and its mirror over a link the test cuts, heals and
// thins (issue 13's "Done means"): capulet.test (127.0.0.1) has the room
// and two users, montague.test (127.0.0.2) mirrors it for two users and
// one account with two clients, plus a late joiner; all slixmpp.
//   - Connected: they join through the mirror and talk both ways; the
//     late joiner gets history; a nick change through the mirror is
//     refused; a join error reaches only its user.
//   - Cut: each side sees the other's users leave, and each side's users
//     talk on among themselves.
//   - Healed, then thinned to 4,000 bytes a second: every client has
//     every message once, and the master's archive, the mirror's and each
//     mirror account's hold them in the master's order.
//   - The master kicks and bans the mirror's users; an operator has the
//     mirror take the room again (--from-master); the master restarts.
func TestDMUCLink(t *testing.T) {
	t.Parallel()
	const room = "hall@conference.capulet.test"
	a, b, l := startLinked(t, func(self, peer *fedServer) []string {
		// Short, for the test, but not so short that a busy -race run
		// takes a late ping for a lost link (the cut itself is seen at
		// once: what crosses it comes back).
		flags := append(dialback(self, peer), "--mirror-timeout", "6s")
		if self.domain == "capulet.test" {
			return append(flags, "--mirror-trust", "montague.test", "--s2s-insecure-domain", "mirror.montague.test")
		}
		return append(flags, "--mirror-of", "conference.capulet.test")
	}, "nurse", "alice", "bob", "carol")
	p := startPuppets(t)
	login := func(name string, f *fedServer, user, resource string) {
		p.login(name, f.c2s(), user+"@"+f.domain+"/"+resource, "pw-"+f.domain)
	}
	login("juliet", a, "juliet", "balcony")
	login("nurse", a, "nurse", "kitchen")
	login("alice", b, "alice", "one")
	login("bob", b, "bob", "one")
	login("carol1", b, "carol", "phone")
	login("carol2", b, "carol", "laptop")
	login("romeo", b, "romeo", "one")
	occupant := func(nick string) string { return room + "/" + nick }
	self := func(name, nick string) func(result) bool {
		return func(r result) bool {
			return is("event", "presence", "name", name, "from", occupant(nick), "type", "available")(r) && hasCode(r, 110)
		}
	}
	sees := func(name, nick, typ string) func(result) bool {
		return is("event", "presence", "name", name, "from", occupant(nick), "type", typ)
	}
	join := func(name, nick string) {
		p.do(map[string]any{"op": "join", "name": name, "room": room, "nick": nick}, false)
		p.waitFor(name+" in the room", 20*time.Second, self(name, nick))
	}
	join("juliet", "Juliet")
	p.do(map[string]any{"op": "configure", "name": "juliet", "room": room}, false)
	join("nurse", "Nurse")
	join("alice", "Alice")
	join("bob", "Bob")
	join("carol1", "Carol")
	join("carol2", "Carol")
	for _, nick := range []string{"Alice", "Bob", "Carol"} {
		p.waitFor("juliet sees "+nick, 10*time.Second, sees("juliet", nick, "available"))
	}
	for _, nick := range []string{"Juliet", "Nurse", "Bob", "Carol"} {
		p.waitFor("alice sees "+nick, 10*time.Second, sees("alice", nick, "available"))
	}
	everyone := []string{"juliet", "nurse", "alice", "bob", "carol1", "carol2"}
	say := func(name, body string, to ...string) {
		p.do(map[string]any{"op": "say", "name": name, "to": room, "body": body}, false)
		for _, n := range to {
			p.waitFor(n+" hears "+body, 20*time.Second, is("event", "message", "name", n, "type", "groupchat", "body", body))
		}
	}
	say("juliet", "m1 from the master", everyone...)
	say("alice", "m2 from the mirror", everyone...)
	say("carol2", "m3 from carol's second client", everyone...)

	// A change of presence through the mirror is one for the room, not a
	// second join: the master answers nothing back over the link.
	mark := p.mark()
	p.do(map[string]any{"op": "presence", "name": "bob", "to": occupant("Bob"), "show": "away"}, false)
	p.waitSince(mark, "juliet sees bob away", 10*time.Second, is("event", "presence", "name", "juliet", "from", occupant("Bob"), "show", "away"))
	time.Sleep(300 * time.Millisecond)
	// A join's answer would tell bob the occupants again, and his own
	// presence with 170 (the room is logged), which only a join's answer
	// carries: the mirror tells him his change without it.
	if again := p.allSince(mark, func(r result) bool {
		return is("event", "presence", "name", "bob", "from", occupant("Juliet"))(r) || is("event", "presence", "name", "bob")(r) && hasCode(r, 170)
	}); len(again) != 0 {
		t.Errorf("bob's change of presence was answered as a join: %v", again)
	}

	// A nick change through the mirror: not-acceptable, from the mirror's
	// side; the room does not hear of it.
	p.do(map[string]any{"op": "presence", "name": "alice", "to": occupant("Alicia")}, false)
	if r := p.waitFor("alice's nick change refused", 10*time.Second, is("event", "presence", "name", "alice", "type", "error")); !strings.Contains(fmt.Sprint(r["error"]), "not-acceptable") {
		t.Errorf("alice's nick change: %v; want not-acceptable", r)
	}
	// A join error (a nick taken) reaches only the user who joined.
	p.do(map[string]any{"op": "join", "name": "romeo", "room": room, "nick": "Nurse"}, false)
	if r := p.waitFor("romeo's join refused", 10*time.Second, is("event", "presence", "name", "romeo", "from", occupant("Nurse"), "type", "error")); !strings.Contains(fmt.Sprint(r["error"]), "conflict") {
		t.Errorf("romeo's join as Nurse: %v; want conflict", r)
	}
	// The late joiner gets the history.
	join("romeo", "Romeo")
	for _, body := range []string{"m1 from the master", "m2 from the mirror", "m3 from carol's second client"} {
		p.waitFor("romeo's history has "+body, 10*time.Second, is("event", "message", "name", "romeo", "body", body, "delayed", true))
	}
	everyone = append(everyone, "romeo")
	if errs := p.all(func(r result) bool { return r["type"] == "error" && r["name"] != "romeo" && r["name"] != "alice" }); len(errs) > 0 {
		t.Errorf("errors reached users who caused none: %v", errs)
	}

	// Cut: each side sees the other's users leave; the mirror's users
	// talk on among themselves, the master's too.
	l.Cut()
	for _, nick := range []string{"Alice", "Bob", "Carol", "Romeo"} {
		p.waitFor("juliet sees "+nick+" leave", 30*time.Second, sees("juliet", nick, "unavailable"))
	}
	for _, name := range []string{"alice", "carol2"} {
		for _, nick := range []string{"Juliet", "Nurse"} {
			p.waitFor(name+" sees "+nick+" leave", 30*time.Second, sees(name, nick, "unavailable"))
		}
	}
	mirrorSide := []string{"alice", "bob", "carol1", "carol2", "romeo"}
	say("alice", "p1 alice while cut", mirrorSide...)
	say("bob", "p2 bob while cut", mirrorSide...)
	say("juliet", "p3 juliet while cut", "juliet", "nurse")

	// Healed: the mirror's users are back at the master, the master's at
	// the mirror, and what each side said meanwhile reaches the other.
	mark = p.mark()
	l.Heal()
	for _, nick := range []string{"Alice", "Bob", "Carol", "Romeo"} {
		p.waitSince(mark, "juliet sees "+nick+" back", 60*time.Second, sees("juliet", nick, "available"))
	}
	for _, name := range []string{"alice", "carol1", "carol2"} {
		for _, nick := range []string{"Juliet", "Nurse"} {
			p.waitSince(mark, name+" sees "+nick+" back", 30*time.Second, sees(name, nick, "available"))
		}
	}
	for _, name := range []string{"juliet", "nurse"} {
		for _, body := range []string{"p1 alice while cut", "p2 bob while cut"} {
			p.waitFor(name+" hears "+body, 30*time.Second, is("event", "message", "name", name, "type", "groupchat", "body", body))
		}
	}
	for _, name := range mirrorSide {
		p.waitFor(name+" hears p3", 30*time.Second, is("event", "message", "name", name, "type", "groupchat", "body", "p3 juliet while cut"))
	}
	say("juliet", "m4 after the heal", everyone...)
	// A thin link: 4,000 bytes a second each way, 150 ms of latency.
	l.Throttle(4000, 150*time.Millisecond)
	say("bob", "m5 after the heal", everyone...)
	l.Throttle(0, 0)

	// Every client got every message once (the late joiner's history
	// aside, which comes delayed).
	bodies := []string{"m1 from the master", "m2 from the mirror", "m3 from carol's second client", "p1 alice while cut", "p2 bob while cut",
		"p3 juliet while cut", "m4 after the heal", "m5 after the heal"}
	for _, name := range everyone {
		for _, body := range bodies {
			n := len(p.all(is("event", "message", "name", name, "type", "groupchat", "body", body, "delayed", false)))
			want := 1
			if name == "romeo" && body[0] == 'm' && body[1] < '4' {
				want = 0 // before romeo joined: his history has them
			}
			if n != want {
				t.Errorf("%s got %q %d times; want %d", name, body, n, want)
			}
		}
	}

	// The master kicks bob and bans romeo: each hears it, and so does
	// everyone else.
	mark = p.mark()
	p.do(map[string]any{"op": "admin", "name": "juliet", "room": room, "nick": "Bob", "role": "none"}, false)
	p.do(map[string]any{"op": "admin", "name": "juliet", "room": room, "jid": "romeo@montague.test", "affiliation": "outcast"}, false)
	for _, c := range []struct {
		name, nick string
		code       int
	}{{"bob", "Bob", 307}, {"alice", "Bob", 307}, {"nurse", "Bob", 307}, {"romeo", "Romeo", 301}, {"carol1", "Romeo", 301}, {"juliet", "Romeo", 301}} {
		r := p.waitSince(mark, c.name+" hears "+c.nick+" go", 20*time.Second, sees(c.name, c.nick, "unavailable"))
		if !hasCode(r, c.code) || (c.name == "bob" || c.name == "romeo") != hasCode(r, 110) {
			t.Errorf("%s heard %s go with %v; want %d, and 110 for their own exit", c.name, c.nick, r["codes"], c.code)
		}
	}

	// Both sides keep the room's messages once, in the master's order:
	// the master's archive (MAM on the room) and the mirror's replica.
	archived := p.do(map[string]any{"op": "mam", "name": "juliet", "to": room}, false)
	var master []string
	for _, m := range archived["messages"].([]any) {
		master = append(master, fmt.Sprint(m.(map[string]any)["body"]))
	}
	// Each account of the mirror's archives the room's messages of its
	// stay, in the master's order: its stay lasted through the cut.
	archives := func(when string) {
		t.Helper()
		for _, c := range []struct {
			name string
			from int // romeo joined after the first three
		}{{"alice", 0}, {"bob", 0}, {"carol2", 0}, {"romeo", 3}} {
			r := p.do(map[string]any{"op": "mam", "name": c.name, "to": "", "with": room, "groupchat": true}, false)
			var got []string
			for _, m := range r["messages"].([]any) {
				got = append(got, fmt.Sprint(m.(map[string]any)["body"]))
			}
			if want := master[min(c.from, len(master)):]; !slices.Equal(got, want) {
				t.Errorf("%s: %s's archive of the room: %q; want %q", when, c.name, got, want)
			}
		}
	}
	archives("after the heal")
	history := func() (bodies []string, pending int) {
		t.Helper()
		out, err := exec.Command(bin, "mirror", "history", "--data", b.data, room).CombinedOutput()
		if err != nil {
			t.Fatalf("annals mirror history: %v\n%s", err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.SplitN(line, "\t", 3); len(f) == 3 && f[0] != "pending" {
				bodies = append(bodies, f[2])
			} else {
				pending++
			}
		}
		return bodies, pending
	}

	// An operator has the mirror take the room from the master again:
	// the same history, and nobody is told anything twice.
	status := func() (seq, version int) {
		t.Helper()
		out, err := exec.Command(bin, "mirror", "status", "--data", b.data, room).CombinedOutput()
		if err != nil {
			t.Fatalf("annals mirror status: %v\n%s", err, out)
		}
		fmt.Sscanf(between(string(out), "last master sequence ", "\n"), "%d (stream version %d)", &seq, &version)
		return seq, version
	}
	told := len(p.all(is("event", "message")))
	seq, version := status()
	out, err := exec.Command(bin, "mirror", "rebuild", "--from-master", "--data", b.data, room).CombinedOutput()
	if err != nil {
		t.Fatalf("annals mirror rebuild --from-master: %v\n%s", err, out)
	}
	// Taken again: the stream holds each of the master's events once more.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		s, v := status()
		got, _ := history()
		if s == seq && v > version+seq/2 && slices.Equal(got, master) {
			t.Logf("refetched: sequence %d, stream version %d -> %d", s, version, v)
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after --from-master the mirror is at sequence %d, stream version %d (from %d), and keeps %q; want %d, more than %d, %q",
				s, v, version, got, seq, version+seq/2, master)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(p.all(is("event", "message"))); n != told {
		t.Errorf("the refetch told the clients %d messages; want none", n-told)
	}
	archives("after the refetch")

	// The master restarts: it sweeps the occupants from elsewhere (332),
	// and the mirror joins its users again, who never leave the room.
	mark = p.mark()
	a.cmd.Process.Signal(os.Interrupt)
	a.restart(t)
	login("juliet2", a, "juliet", "again")
	join("juliet2", "Juliet")
	for _, nick := range []string{"Alice", "Carol"} {
		p.waitSince(mark, "juliet sees "+nick+" back after the restart", 30*time.Second, sees("juliet2", nick, "available"))
	}
	say("alice", "m6 after the master's restart", "juliet2", "carol1", "carol2", "alice")
	for _, name := range []string{"alice", "carol1", "carol2"} {
		if gone := p.all(func(r result) bool {
			return r["name"] == name && r["event"] == "presence" && r["type"] == "unavailable" && r["from"] == occupant(map[string]string{"alice": "Alice", "carol1": "Carol", "carol2": "Carol"}[name])
		}); len(gone) > 0 {
			t.Errorf("%s was told it left the room: %v", name, gone)
		}
	}
	master = append(master, "m6 after the master's restart")
	bodies = append(bodies, "m6 after the master's restart")
	if i, j := slices.Index(master, "p1 alice while cut"), slices.Index(master, "p2 bob while cut"); i > j {
		t.Errorf("the master took the posts of the cut in another order than the mirror's users saw them: %q", master)
	}

	b.cmd.Process.Signal(os.Interrupt)
	b.cmd.Wait()
	mirrored, pending := history()
	if pending != 0 {
		t.Errorf("the mirror's history has %d lines not accepted; want every message accepted", pending)
	}
	t.Logf("the master's archive: %q", master)
	t.Logf("the mirror's: %q", mirrored)
	if !slices.Equal(master, mirrored) || len(master) != len(bodies) {
		t.Errorf("the master archived %q\nthe mirror keeps %q\nwant the same %d messages in the same order", master, mirrored, len(bodies))
	}
	for _, body := range bodies {
		if !slices.Contains(master, body) {
			t.Errorf("%q is missing from the archives", body)
		}
	}
	// The operator sees that the link went down and came back.
	out, err = exec.Command(bin, "mirror", "list", "--data", b.data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), room+"\t") || !strings.Contains(string(out), "\tpending 0\t") || !strings.Contains(string(out), "\tlink up since ") {
		t.Errorf("annals mirror list: %v\n%s", err, out)
	}
	t.Logf("annals mirror list: %s", out)
}

// hasCode reports whether a presence fact has status code.
func hasCode(r result, code int) bool {
	codes, _ := r["codes"].([]any)
	for _, c := range codes {
		if c == float64(code) {
			return true
		}
	}
	return false
}
