package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 10 item 7 (traffic and storage) and the MAM part of item 9: what one
// session or one account makes annals serve hold in memory or on disk is
// bounded, and the attacker is the one refused or cut off.

// readStreamError reads c until its stream ends and returns the condition
// of the stream error it got ("" for none); for a goroutine, so no t.
func readStreamError(c *loadClient, within time.Duration) string {
	c.nc.SetReadDeadline(time.Now().Add(within))
	cond := ""
	for {
		st, inner, err := c.next()
		if err != nil {
			return cond
		}
		if st.Name.Local == "error" && st.Name.Space == "http://etherx.jabber.org/streams" {
			if i := strings.Index(inner, "<"); i >= 0 {
				name := inner[i+1:]
				cond = name[:strings.IndexAny(name, " />")]
			}
		}
	}
}

// A stream-management client that never acknowledges: once live (reading
// everything), once detached (its connection gone, the session waiting to
// be resumed). Another account sends each 60 MiB of messages. Before, the
// server kept all of it (a session held 230 MiB); now each session ends
// at 8 MiB unacknowledged, the detached one cannot be resumed, and the
// sender and a bystander are served throughout.
func TestHostileSMUnacked(t *testing.T) {
	t.Setenv("GOGC", "50") // garbage is not what this test measures
	data := t.TempDir()
	addUsers(t, data, map[string]string{"victim@localhost": "v-pw", "sender@localhost": "s-pw", "bystander@localhost": "b-pw"})
	s, cmd := serveOn(t, data)
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)
	sender := login(t, addr, "sender", "s-pw", "desk")
	defer sender.close()
	bystander := login(t, addr, "bystander", "b-pw", "desk")
	defer bystander.close()
	bystander.send("<presence/>")

	// 300 messages of 200 KiB, not archived (<no-store/>): what is held
	// is the session's, not the archive's.
	body := strings.Repeat("x", 200<<10)
	flood := func(to string) {
		t.Helper()
		for i := range 300 {
			if err := sender.send("<message to='" + to + "' type='chat' id='f" + strconv.Itoa(i) + "'><body>" + body +
				"</body><no-store xmlns='urn:xmpp:hints'/></message>"); err != nil {
				t.Fatalf("sending: %v", err)
			}
		}
		ask(t, sender, "<iq type='get' id='ping-"+to+"'><ping xmlns='urn:xmpp:ping'/></iq>")
	}
	before := vmHWM(t, cmd.Process.Pid)

	live := login(t, addr, "victim", "v-pw", "live")
	live.send("<presence/><enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	awaitElem(t, live, "enabled", "")
	cond := make(chan string, 1)
	go func() { cond <- readStreamError(live, 60*time.Second) }()
	flood("victim@localhost/live")
	if got := <-cond; got != "policy-violation" {
		t.Errorf("the non-acking session ended with %q, want policy-violation", got)
	}

	detached := login(t, addr, "victim", "v-pw", "phone")
	detached.send("<presence/><enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	prev := attrOf(awaitElem(t, detached, "enabled", ""), "id")
	detached.nc.Close()
	time.Sleep(200 * time.Millisecond) // the server notices the break
	flood("victim@localhost/phone")
	r := loginNoBind(t, addr, "victim", "v-pw")
	r.send("<resume xmlns='urn:xmpp:sm:3' previd='" + prev + "' h='0'/>")
	if st := awaitElem(t, r, "", ""); !strings.HasPrefix(st, "<failed") {
		t.Errorf("the detached session past its bound was resumed: %.300s", st)
	}
	r.close()

	after := vmHWM(t, cmd.Process.Pid)
	t.Logf("peak RSS %d KiB -> %d KiB (+%d KiB) over 2 × 60 MiB to non-acking sessions", before, after, after-before)
	// Kept whole, the 120 MiB would be there at once, twice over with the
	// queued copies; 8 MiB per session and the garbage of the flood is far
	// less.
	if after-before > 64<<10 {
		t.Errorf("peak RSS grew by %d KiB", after-before)
	}
	// The sender and a bystander are still served.
	sender.send("<message to='bystander@localhost' type='chat' id='hi'><body>still here</body></message>")
	awaitElem(t, bystander, "message", "still here")
	ask(t, sender, "<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
}

// mamPage asks one page of c's archive after `after` ("" for the start)
// and returns its result IDs and whether the page says it is complete.
func mamPage(t *testing.T, c *loadClient, id, after string) (ids []string, complete bool) {
	t.Helper()
	set := "<set xmlns='http://jabber.org/protocol/rsm'><max>250</max>"
	if after != "" {
		set += "<after>" + after + "</after>"
	}
	set += "</set>"
	if err := c.send("<iq type='set' id='" + id + "'><query xmlns='urn:xmpp:mam:2' queryid='" + id + "'>" + set + "</query></iq>"); err != nil {
		t.Error(err)
		return nil, true
	}
	c.nc.SetReadDeadline(time.Now().Add(60 * time.Second))
	defer c.nc.SetReadDeadline(time.Time{})
	for {
		st, inner, err := c.next()
		if err != nil {
			t.Errorf("page %s: %v", id, err)
			return ids, true
		}
		if st.Name.Local == "message" {
			if i := strings.Index(inner, " id="); i >= 0 && strings.Contains(inner, "queryid=") {
				ids = append(ids, attrOf(inner[strings.Index(inner, "<result"):], "id"))
			}
			continue
		}
		if st.Name.Local == "iq" && attr(st, "id") == id {
			if attr(st, "type") != "result" {
				t.Errorf("page %s: %s", id, inner)
				return ids, true
			}
			return ids, strings.Contains(inner, "complete='true'") || strings.Contains(inner, `complete="true"`)
		}
	}
}

// An archive of 40 messages of 200 KiB (8 MiB), queried with max=250 on
// eight connections at once. Before, each page was built whole (eight at
// once: 983 MB for 250 such messages); now a page holds at most 2 MiB
// and says it is not complete, and RSM paging returns every message once.
// Also item 9: an end in the year 9999 and a start in the year 1 are
// clamped, not overflowed.
func TestHostileMAMPages(t *testing.T) {
	t.Setenv("GOGC", "50")
	data := t.TempDir()
	addUsers(t, data, map[string]string{"alice@localhost": "a-pw", "bob@localhost": "b-pw", "carol@localhost": "c-pw"})
	s, cmd := serveOn(t, data)
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)
	bob := login(t, addr, "bob", "b-pw", "desk")
	defer bob.close()
	const n = 40
	body := strings.Repeat("y", 200<<10)
	for i := range n {
		bob.send("<message to='alice@localhost' type='chat' id='m" + strconv.Itoa(i) + "'><body>" + strconv.Itoa(i) + body + "</body></message>")
	}
	ask(t, bob, "<iq type='get' id='sent'><ping xmlns='urn:xmpp:ping'/></iq>")
	before := vmHWM(t, cmd.Process.Pid)

	var wg sync.WaitGroup
	for k := range 8 {
		c := login(t, addr, "alice", "a-pw", "r"+strconv.Itoa(k))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.close()
			var all []string
			after := ""
			for page := 0; ; page++ {
				ids, complete := mamPage(t, c, fmt.Sprintf("q%d-%d", k, page), after)
				if len(ids) > 11 {
					t.Errorf("a page of %d messages of 200 KiB", len(ids))
				}
				all = append(all, ids...)
				if complete || len(ids) == 0 || page > n {
					break
				}
				after = ids[len(ids)-1]
			}
			seen := map[string]bool{}
			for _, id := range all {
				if seen[id] {
					t.Errorf("%s twice", id)
				}
				seen[id] = true
			}
			if len(all) != n {
				t.Errorf("paged %d messages, want %d", len(all), n)
			}
		}()
	}
	wg.Wait()
	after := vmHWM(t, cmd.Process.Pid)
	t.Logf("peak RSS %d KiB -> %d KiB (+%d KiB) over 8 concurrent max=250 queries of an 8 MiB archive", before, after, after-before)
	// Whole pages grew it by 68 MiB here (8 × 8 MiB in flight); pages of
	// 2 MiB by 14 MiB.
	if after-before > 40<<10 {
		t.Errorf("peak RSS grew by %d KiB", after-before)
	}

	// Item 9: out-of-range start and end are clamped.
	carol := login(t, addr, "carol", "c-pw", "desk")
	defer carol.close()
	for i := range 3 {
		bob.send("<message to='carol@localhost' type='chat' id='c" + strconv.Itoa(i) + "'><body>hi " + strconv.Itoa(i) + "</body></message>")
	}
	ask(t, bob, "<iq type='get' id='sent2'><ping xmlns='urn:xmpp:ping'/></iq>")
	form := func(start, end string) string {
		f := "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>"
		if start != "" {
			f += "<field var='start'><value>" + start + "</value></field>"
		}
		if end != "" {
			f += "<field var='end'><value>" + end + "</value></field>"
		}
		return f + "</x>"
	}
	for i, q := range [][2]string{{"", "9999-12-31T23:59:59Z"}, {"0001-01-01T00:00:00Z", ""}, {"0001-01-01T00:00:01Z", "9999-12-31T23:59:59Z"}} {
		id := "range" + strconv.Itoa(i)
		carol.send("<iq type='set' id='" + id + "'><query xmlns='urn:xmpp:mam:2' queryid='" + id + "'>" + form(q[0], q[1]) + "</query></iq>")
		got := collectUntil(t, carol, id)
		if n := strings.Count(got, "<body>hi "); n != 3 || !strings.Contains(got, "complete=") {
			t.Errorf("start %q end %q: %d of 3 messages, complete: %v", q[0], q[1], n, strings.Contains(got, "complete="))
		}
	}
}

// errorOf returns the condition of the error answer to the message with
// id, or "" when the next thing c reads (up to a ping's answer) is not one.
func errorOf(t *testing.T, c *loadClient, id string) string {
	t.Helper()
	ping := "ping-" + id
	c.send("<iq type='get' id='" + ping + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	got := collectUntil(t, c, ping)
	i := strings.Index(got, "id='"+id+"'")
	if i < 0 || !strings.Contains(got[:i], "type='error'") && !strings.Contains(got[i:min(len(got), i+200)], "type='error'") {
		return ""
	}
	for _, cond := range []string{"service-unavailable", "resource-constraint", "not-allowed"} {
		if strings.Contains(got[i:], "<"+cond) {
			return cond
		}
	}
	return "other"
}

// An offline account's queue is bounded (--offline-max): past it messages
// to it are refused with service-unavailable, and it gets the ones that
// were kept when it comes online. An account that has stored as many
// bytes of messages as it may (--archive-quota-bytes) gets
// resource-constraint, and others still reach it and each other.
func TestHostileOfflineAndArchiveQuota(t *testing.T) {
	data := t.TempDir()
	addUsers(t, data, map[string]string{"victim@localhost": "v-pw", "spammer@localhost": "s-pw", "friend@localhost": "f-pw"})
	s, _ := serveOn(t, data, "--offline-max", "20", "--archive-quota-bytes", "300000")
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)
	spammer := login(t, addr, "spammer", "s-pw", "desk")
	defer spammer.close()
	for i := range 25 {
		id := "o" + strconv.Itoa(i)
		spammer.send("<message to='victim@localhost' type='chat' id='" + id + "'><body>offline " + id + "</body></message>")
		want := ""
		if i >= 20 {
			want = "service-unavailable"
		}
		if got := errorOf(t, spammer, id); got != want {
			t.Fatalf("offline message %d: error %q, want %q", i, got, want)
		}
	}
	victim := login(t, addr, "victim", "v-pw", "desk")
	defer victim.close()
	victim.send("<presence/><iq type='get' id='vp'><ping xmlns='urn:xmpp:ping'/></iq>")
	got := collectUntil(t, victim, "vp")
	victim.send("<iq type='get' id='vp2'><ping xmlns='urn:xmpp:ping'/></iq>")
	got += collectUntil(t, victim, "vp2")
	if n := strings.Count(got, "offline o"); n != 20 {
		t.Errorf("the victim got %d offline messages, want the 20 kept", n)
	}

	// 40 KB messages to an online account: the quota of 300,000 bytes
	// lets seven through, or a few more while its model catches up.
	friend := login(t, addr, "friend", "f-pw", "desk")
	defer friend.close()
	friend.send("<presence/>")
	ask(t, friend, "<iq type='get' id='fp'><ping xmlns='urn:xmpp:ping'/></iq>")
	body := strings.Repeat("z", 40000)
	refused := -1
	for i := range 12 {
		id := "q" + strconv.Itoa(i)
		spammer.send("<message to='friend@localhost' type='chat' id='" + id + "'><body>" + body + "</body></message>")
		if cond := errorOf(t, spammer, id); cond == "resource-constraint" {
			refused = i
			break
		} else if cond != "" {
			t.Fatalf("message %d: %s", i, cond)
		}
	}
	// The quota reads the usage read model, which follows the log a
	// moment behind (projections/archive/usage.go): a burst may pass it
	// by a message or three when the machine is busy (a fresh-clone run
	// beside other tests let the 9th through).
	if refused < 5 || refused > 10 {
		t.Fatalf("the quota refused message %d, want the 7th or so (-1: none)", refused)
	}
	// Others are served: the friend reaches the spammer and the victim.
	friend.send("<message to='victim@localhost' type='chat' id='hi'><body>hello victim</body></message>")
	awaitElem(t, victim, "message", "hello victim")
	spammer.send("<presence/>")
	ask(t, spammer, "<iq type='get' id='sp'><ping xmlns='urn:xmpp:ping'/></iq>")
	friend.send("<message to='spammer@localhost' type='chat' id='hi2'><body>hello spammer</body></message>")
	awaitElem(t, spammer, "message", "hello spammer")
}

// One account creates rooms until its rate is used up (--room-creations,
// default 10 per 10 minutes): the next join that would create a room gets
// not-allowed; it still joins a room that exists, and another account
// still creates rooms. Before, one account made 300 rooms in 1.8 s.
func TestHostileRoomCreation(t *testing.T) {
	data := t.TempDir()
	addUsers(t, data, map[string]string{"maker@localhost": "m-pw", "other@localhost": "o-pw"})
	s, _ := serveOn(t, data, "--muc-lock-new-rooms=false")
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)
	maker := login(t, addr, "maker", "m-pw", "desk")
	defer maker.close()
	join := func(c *loadClient, room, nick string) string {
		t.Helper()
		c.send("<presence to='" + room + "@conference.localhost/" + nick + "'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
		return awaitElem(t, c, "presence", "from='"+room+"@conference.localhost")
	}
	for i := range 10 {
		if got := join(maker, "r"+strconv.Itoa(i), "maker"); strings.Contains(got, "type='error'") || !strings.Contains(got, "201") {
			t.Fatalf("room %d: %s", i, got)
		}
	}
	got := join(maker, "r10", "maker")
	if !strings.Contains(got, "type='error'") || !strings.Contains(got, "not-allowed") {
		t.Fatalf("the 11th new room: %s", got)
	}
	other := login(t, addr, "other", "o-pw", "desk")
	defer other.close()
	if got := join(other, "theirs", "other"); strings.Contains(got, "type='error'") || !strings.Contains(got, "201") {
		t.Fatalf("another account's new room: %s", got)
	}
	if got := join(maker, "theirs", "maker"); strings.Contains(got, "type='error'") {
		t.Fatalf("joining a room that exists: %s", got)
	}
	ask(t, other, "<iq type='get' id='op'><ping xmlns='urn:xmpp:ping'/></iq>")
}

// An offline backlog larger than the outbound queue (80 messages of
// 200 KiB, 16 MiB against 8 MiB) reaches a client that reads it, even one
// that starts reading late: the flush waits for the client instead of
// dropping it as one that does not read, and every message arrives once.
func TestHostileOfflineBacklog(t *testing.T) {
	data := t.TempDir()
	addUsers(t, data, map[string]string{"away@localhost": "a-pw", "talker@localhost": "t-pw"})
	s, _ := serveOn(t, data)
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)
	talker := login(t, addr, "talker", "t-pw", "desk")
	defer talker.close()
	big := strings.Repeat("x", 200<<10)
	const n = 80
	for i := range n {
		id := "b" + strconv.Itoa(i)
		talker.send("<message to='away@localhost' type='chat' id='" + id + "'><body>" + id + " " + big + "</body></message>")
	}
	talker.send("<iq type='get' id='sent'><ping xmlns='urn:xmpp:ping'/></iq>")
	collectUntil(t, talker, "sent")

	away := login(t, addr, "away", "a-pw", "desk")
	defer away.close()
	away.send("<presence/>")
	time.Sleep(2 * time.Second) // the backlog piles up before the client reads
	seen := map[string]int{}
	away.nc.SetReadDeadline(time.Now().Add(60 * time.Second))
	for len(seen) < n {
		st, inner, err := away.next()
		if err != nil {
			t.Fatalf("after %d of %d offline messages: %v", len(seen), n, err)
		}
		if st.Name.Local == "message" && strings.Contains(inner, big) {
			seen[attr(st, "id")]++
		}
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("%s arrived %d times", id, k)
		}
	}
	away.nc.SetReadDeadline(time.Time{})
	ask(t, away, "<iq type='get' id='still'><ping xmlns='urn:xmpp:ping'/></iq>")
	ask(t, talker, "<iq type='get' id='too'><ping xmlns='urn:xmpp:ping'/></iq>")
}
