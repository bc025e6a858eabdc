package adhoc

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
)

func sessionsOf(jids ...string) online {
	var o online
	for _, j := range jids {
		o = append(o, &muxtest.Session{Full: jid.MustParse(j)})
	}
	return o
}

// The online users: each account once however many clients it has,
// sorted, at most max_items of them with a note saying so; and their
// number, at once (a command without a form).
func TestOnlineUsers(t *testing.T) {
	host := sessionsOf("romeo@localhost/a", "juliet@localhost/b", "romeo@localhost/c", "admin@localhost/desk")
	f := newFixture(t, Config{}, host)
	sid := f.start(f.admin, onlineList)
	wants(t, f.admin.Sent[0], "<field type='list-single' var='max_items' label='Maximum number of items to show'><option label='25'><value>25</value></option>")
	cmdErr(t, f.command(f.admin, onlineList, " sessionid='"+sid+"'", submit("max_items=lots")), "bad-request", "bad-payload")
	cmdErr(t, f.command(f.admin, onlineList, " sessionid='"+sid+"'", submit("max_items="+strconv.Itoa(MaxOnlineItems+1))), "bad-request", "bad-payload")
	got := f.command(f.admin, onlineList, " sessionid='"+sid+"'", submit("max_items=none"))
	wants(t, got, "status='completed'", "<x xmlns='jabber:x:data' type='result'>",
		"var='onlineuserjids' label='The list of all online users'><value>admin@localhost</value><value>juliet@localhost</value><value>romeo@localhost</value></field>")
	if strings.Contains(got, "<note") {
		t.Errorf("a note though all are shown: %s", got)
	}
	sid = f.start(f.admin, onlineList)
	got = f.command(f.admin, onlineList, " sessionid='"+sid+"'", submit("max_items=2"))
	wants(t, got, "<note type='info'>Showing 2 of the 3 online users.</note>", "<value>admin@localhost</value><value>juliet@localhost</value></field>")
	got = f.command(f.admin, onlineNum, " action='execute'", "")
	wants(t, got, "status='completed'", "sessionid='adhoc-once-", "var='onlineusersnum' label='The number of online users'><value>3</value>")
	if strings.Contains(got, "<actions") || f.svc.sessions.count() != 0 {
		t.Errorf("a command without a form kept a session: %s", got)
	}
	cmdErr(t, f.command(f.user, onlineNum, "", ""), "forbidden", "")
}

// An announcement reaches every online session as a headline from its
// own domain, its lines as sent; it is bounded in bytes.
func TestAnnounce(t *testing.T) {
	host := sessionsOf("romeo@localhost/a", "juliet@localhost/b", "romeo@localhost/c")
	f := newFixture(t, Config{}, host)
	sid := f.start(f.admin, announceNode)
	cmdErr(t, f.command(f.admin, announceNode, " sessionid='"+sid+"'", submit("announcement="+strings.Repeat("x", MaxAnnouncement+1))), "bad-request", "bad-payload")
	cmdErr(t, f.command(f.admin, announceNode, " sessionid='"+sid+"'", submit("subject=s")), "bad-request", "bad-payload")
	for _, s := range host {
		if len(s.Sent) != 0 {
			t.Fatalf("%s got %q before the announcement was complete", s.Full, s.Sent)
		}
	}
	got := f.command(f.admin, announceNode, " sessionid='"+sid+"'", submit("subject=Maintenance", "announcement=Down at 10 &amp; back", "announcement=by 11."))
	wants(t, got, "status='completed'", "<note type='info'>Sent to 3 sessions of 2 users.</note>")
	for _, s := range host {
		if len(s.Sent) != 1 {
			t.Fatalf("%s got %q", s.Full, s.Sent)
		}
		wants(t, s.Sent[0], "<message type='headline' id='", "to='"+s.Full.String()+"' from='localhost'>",
			"<subject>Maintenance</subject><body>Down at 10 &amp; back&#xA;by 11.</body></message>")
		if _, err := muxtest.Parse(s.Sent[0]); err != nil {
			t.Errorf("%q: %v", s.Sent[0], err)
		}
	}
}

// Sessions are bounded per admin (the oldest goes) and in all (the next
// is refused with resource-constraint), and end when idle past the
// timeout; the defaults hold when nothing is set.
func TestSessionBounds(t *testing.T) {
	if f := newFixture(t, Config{}, nil); f.svc.cfg.MaxSessions != DefaultMaxSessions ||
		f.svc.cfg.MaxSessionsPerAdmin != DefaultMaxSessionsPerAdmin || f.svc.cfg.SessionTimeout != DefaultSessionTimeout {
		t.Fatalf("defaults: %+v", f.svc.cfg)
	}
	f := newFixture(t, Config{Admins: []string{"admin@localhost", "juliet@localhost"}, MaxSessions: 3, MaxSessionsPerAdmin: 2, SessionTimeout: 60e9}, nil)
	phone := &muxtest.Session{Full: jid.MustParse("admin@localhost/phone")}
	first := f.start(f.admin, addUserNode)
	f.now = f.now.Add(1e9)
	second := f.start(phone, deleteUserNode) // the same admin from another client
	f.now = f.now.Add(1e9)
	third := f.start(f.admin, changePw) // pushes the first out
	cmdErr(t, f.command(f.admin, addUserNode, " sessionid='"+first+"'", ""), "not-allowed", "session-expired")
	jul := f.start(f.user, announceNode) // juliet is an admin here: three in all
	if n := f.svc.sessions.count(); n != 3 {
		t.Fatalf("%d sessions", n)
	}
	cmdErr(t, f.command(f.user, onlineList, " action='execute'", ""), "resource-constraint", "")
	// The others are still there; idle past the timeout they end, and
	// make room.
	wants(t, f.command(phone, deleteUserNode, " sessionid='"+second+"' action='cancel'", ""), "status='canceled'")
	f.now = f.now.Add(61e9)
	for _, s := range []struct {
		sess      *muxtest.Session
		node, sid string
	}{{f.admin, changePw, third}, {f.user, announceNode, jul}} {
		cmdErr(t, f.command(s.sess, s.node, " sessionid='"+s.sid+"'", ""), "not-allowed", "session-expired")
	}
	if n := f.svc.sessions.count(); n != 0 {
		t.Fatalf("%d sessions after the timeout", n)
	}
	f.start(f.user, onlineList)
}

// Ended sessions are remembered as ended up to a bound; past it an old
// id is just unknown.
func TestEndedRemembered(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	first := f.start(f.admin, addUserNode)
	f.command(f.admin, addUserNode, " sessionid='"+first+"' action='cancel'", "")
	for range endedRemembered - 1 {
		f.command(f.admin, addUserNode, " sessionid='"+f.start(f.admin, addUserNode)+"' action='cancel'", "")
	}
	cmdErr(t, f.command(f.admin, addUserNode, " sessionid='"+first+"'", ""), "not-allowed", "session-expired")
	f.command(f.admin, addUserNode, " sessionid='"+f.start(f.admin, addUserNode)+"' action='cancel'", "")
	cmdErr(t, f.command(f.admin, addUserNode, " sessionid='"+first+"'", ""), "bad-request", "bad-sessionid")
	if len(f.svc.sessions.ended) != endedRemembered {
		t.Errorf("%d remembered", len(f.svc.sessions.ended))
	}
}

// Admins are bare JIDs of accounts at the server's domains.
func TestParseAdmin(t *testing.T) {
	domains := []string{"localhost", "example.org"}
	if j, err := ParseAdmin("Admin@example.org", domains); err != nil || j != "admin@example.org" {
		t.Errorf("%q %v", j, err)
	}
	for _, bad := range []string{"", "localhost", "admin@localhost/desk", "admin@elsewhere.example", "a b@localhost"} {
		if _, err := ParseAdmin(bad, domains); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := New(Config{Domains: domains, Admins: []string{"admin@elsewhere.example"}}, online{}); err == nil {
		t.Error("New took an admin elsewhere")
	}
}

// Admins' clients run commands at once, some on one session: the
// session table stays consistent (run under -race) and within bounds.
func TestConcurrentSessions(t *testing.T) {
	f := newFixture(t, Config{MaxSessions: 6, MaxSessionsPerAdmin: 6}, nil)
	shared := f.start(f.admin, deleteUserNode)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &muxtest.Session{Full: jid.MustParse("admin@localhost/r" + strconv.Itoa(i))}
			desk := &muxtest.Session{Full: f.admin.Full}
			for range 50 {
				ask := func(s *muxtest.Session, attrs string) string {
					got, _, err := muxtest.Ask(f.m, mux.Server, s, "localhost",
						"<iq type='set' id='c'><command xmlns='"+NS+"' node='"+deleteUserNode+"'"+attrs+"/></iq>")
					if err != nil {
						t.Error(err)
					}
					return got
				}
				if m := sessionID.FindStringSubmatch(ask(s, " action='execute'")); m != nil {
					ask(s, " sessionid='"+m[1]+"' action='cancel'")
				}
				ask(desk, " sessionid='"+shared+"' action='prev'") // bad-action, or expired once pushed out
			}
		}()
	}
	wg.Wait()
	if n := f.svc.sessions.count(); n > 6 {
		t.Errorf("%d sessions open, more than the bound", n)
	}
}
