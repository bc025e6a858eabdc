package adhoc

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/adapters/stanza/form"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
)

// memAccounts keeps accounts and passwords, and what each call was
// caused by, as the account streams would record it.
type memAccounts struct {
	mu     sync.Mutex
	pw     map[string]string
	causes []string // "<op> <account> <cause>"
}

func (a *memAccounts) Exists(_ context.Context, bare string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.pw[bare]
	return ok, nil
}

func (a *memAccounts) record(ctx context.Context, op, bare string) {
	a.causes = append(a.causes, op+" "+bare+" "+event.Cause(ctx, "none"))
}

func (a *memAccounts) Register(ctx context.Context, bare, password string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pw[bare]; ok {
		return account.ErrExists
	}
	a.pw[bare] = password
	a.record(ctx, "register", bare)
	return nil
}

func (a *memAccounts) SetPassword(ctx context.Context, bare, password, session string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pw[bare]; !ok {
		return account.ErrNotFound
	}
	if session != "" {
		return errors.New("an admin's change must end every session")
	}
	a.pw[bare] = password
	a.record(ctx, "passwd", bare)
	return nil
}

func (a *memAccounts) Remove(ctx context.Context, bare string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pw[bare]; !ok {
		return account.ErrNotFound
	}
	delete(a.pw, bare)
	a.record(ctx, "remove", bare)
	return nil
}

// online is a core with these available sessions.
type online []*muxtest.Session

func (o online) Online() []mux.Session {
	out := make([]mux.Session, len(o))
	for i, s := range o {
		out[i] = s
	}
	return out
}

// fixture is a server at localhost with disco and the commands, admin
// admin@localhost, and a clock the test moves.
type fixture struct {
	t     *testing.T
	m     *mux.Mux
	svc   *Service
	accts *memAccounts
	now   time.Time
	admin *muxtest.Session
	user  *muxtest.Session
}

func newFixture(t *testing.T, cfg Config, host Host) *fixture {
	t.Helper()
	f := &fixture{t: t, m: mux.New(), now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		accts: &memAccounts{pw: map[string]string{"admin@localhost": "a", "juliet@localhost": "j", "romeo@localhost": "r"}},
		admin: &muxtest.Session{Full: jid.MustParse("admin@localhost/desk")},
		user:  &muxtest.Session{Full: jid.MustParse("juliet@localhost/balcony")}}
	cfg.Domains = []string{"localhost"}
	if cfg.Admins == nil {
		cfg.Admins = []string{"admin@localhost"}
	}
	cfg.Accounts = f.accts
	cfg.Now = func() time.Time { return f.now }
	cfg.Log = slog.New(slog.DiscardHandler)
	if host == nil {
		host = online{}
	}
	svc, err := New(cfg, host)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	svc.Register(f.m)
	return f
}

// ask sends iq from s to the server, as addressed to localhost.
func (f *fixture) ask(s *muxtest.Session, iq string) string {
	f.t.Helper()
	got, handled, err := muxtest.Ask(f.m, mux.Server, s, "localhost", iq)
	if !handled || err != nil {
		f.t.Fatalf("%s: handled %v, err %v", iq, handled, err)
	}
	return got
}

// command sends a <command/> of node with the attributes and payload
// given.
func (f *fixture) command(s *muxtest.Session, node, attrs, payload string) string {
	f.t.Helper()
	return f.ask(s, "<iq type='set' id='c'><command xmlns='"+NS+"' node='"+node+"'"+attrs+">"+payload+"</command></iq>")
}

var sessionID = regexp.MustCompile(`sessionid='([^']+)'`)

// start executes node and returns its session id, checking the first
// stage was shown.
func (f *fixture) start(s *muxtest.Session, node string) string {
	f.t.Helper()
	got := f.command(s, node, " action='execute'", "")
	m := sessionID.FindStringSubmatch(got)
	if m == nil || !strings.Contains(got, "status='executing'") || !strings.Contains(got, "<x xmlns='jabber:x:data' type='form'>") {
		f.t.Fatalf("execute %s: %s", node, got)
	}
	return m[1]
}

// submit is a submitted admin form with fields var=value (a var given
// twice gets both values).
func submit(fields ...string) string {
	var b strings.Builder
	b.WriteString("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + NSAdmin + "</value></field>")
	byVar := map[string][]string{}
	var order []string
	for _, kv := range fields {
		k, v, _ := strings.Cut(kv, "=")
		if _, seen := byVar[k]; !seen {
			order = append(order, k)
		}
		byVar[k] = append(byVar[k], v)
	}
	for _, k := range order {
		b.WriteString("<field var='" + k + "'>")
		for _, v := range byVar[k] {
			b.WriteString("<value>" + v + "</value>")
		}
		b.WriteString("</field>")
	}
	b.WriteString("</x>")
	return b.String()
}

func wants(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s\nlacks %q", got, w)
		}
	}
}

// cmdErr is the error answer with defined condition cond and XEP-0050
// condition app ("" for none).
func cmdErr(t *testing.T, got, cond, app string) {
	t.Helper()
	wants(t, got, "type='error'", "<"+cond+" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>")
	if app != "" {
		wants(t, got, "<"+app+" xmlns='"+NS+"'/>")
	}
}

const (
	addUserNode    = NSAdmin + "#add-user"
	deleteUserNode = NSAdmin + "#delete-user"
	changePw       = NSAdmin + "#change-user-password"
	onlineList     = NSAdmin + "#get-online-users-list"
	onlineNum      = NSAdmin + "#get-online-users-num"
	announceNode   = NSAdmin + "#announce"
)

// The server advertises commands; its command list (what disco#items
// on the node shows, through the mux) is the admin commands for an
// admin and empty for anyone else, and a command's node is described to
// an admin and forbidden to others (XEP-0050 §2.2).
func TestDiscoCommands(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	if !slices.Contains(f.m.Features(mux.Server), NS) {
		t.Errorf("server features %v", f.m.Features(mux.Server))
	}
	items, err := f.m.NodeItems(mux.Server, f.admin, "localhost", NS)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, it := range items {
		if it.JID != "localhost" || it.Name == "" {
			t.Errorf("item %+v", it)
		}
		nodes = append(nodes, it.Node)
	}
	if want := []string{addUserNode, deleteUserNode, changePw, onlineList, onlineNum, announceNode}; !slices.Equal(nodes, want) {
		t.Errorf("commands %v, want %v", nodes, want)
	}
	if items, err := f.m.NodeItems(mux.Server, f.user, "localhost", NS); err != nil || len(items) != 0 {
		t.Errorf("a user's command list: %v %v", items, err)
	}
	if _, err := f.m.NodeItems(mux.Server, f.admin, "localhost", "other"); !errors.Is(err, mux.ErrNoNode) {
		t.Errorf("another node: %v", err)
	}
	ids, features, err := f.m.NodeInfo(mux.Server, f.admin, "localhost", addUserNode)
	if err != nil || len(ids) != 1 || ids[0] != (mux.Identity{Category: "automation", Type: "command-node", Name: "Add a User"}) ||
		!slices.Equal(features, []string{NS, "jabber:x:data"}) {
		t.Errorf("add-user's info: %v %v %v", ids, features, err)
	}
	var se *stanza.Error
	if _, _, err := f.m.NodeInfo(mux.Server, f.user, "localhost", addUserNode); !errors.As(err, &se) || se.Cond != "forbidden" {
		t.Errorf("add-user's info for a user: %v", err)
	}
	if ids, _, err := f.m.NodeInfo(mux.Server, f.user, "localhost", NS); err != nil || ids[0].Type != "command-list" {
		t.Errorf("the list's info: %v %v", ids, err)
	}
}

// add-user, one stage: the form, then the account made through the
// accounts service with the admin as its cause. A wrong form keeps the
// session at its stage, to be submitted again.
func TestAddUser(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	sid := f.start(f.admin, addUserNode)
	got := f.command(f.admin, addUserNode, " sessionid='"+sid+"'", "")
	cmdErr(t, got, "bad-request", "bad-payload")
	for _, tc := range []struct {
		form      string
		cond, app string
	}{
		{submit("accountjid=nurse@localhost"), "bad-request", "bad-payload"},                                                         // no password
		{submit("accountjid=nurse@localhost", "password=a", "password-verify=b"), "bad-request", "bad-payload"},                      // they differ
		{submit("accountjid=nurse@elsewhere.example", "password=a"), "bad-request", "bad-payload"},                                   // not ours
		{submit("accountjid=localhost", "password=a"), "bad-request", "bad-payload"},                                                 // no local part
		{submit("accountjid=nurse@localhost/r", "password=a"), "bad-request", "bad-payload"},                                         // a resource
		{submit("accountjid=juliet@localhost", "password=a"), "conflict", ""},                                                        // exists
		{strings.Replace(submit("accountjid=nurse@localhost", "password=a"), NSAdmin, "urn:other", 1), "bad-request", "bad-payload"}, // another form
		{strings.Replace(submit("accountjid=nurse@localhost", "password=a"), "'submit'", "'result'", 1), "bad-request", "bad-payload"},
	} {
		got := f.command(f.admin, addUserNode, " sessionid='"+sid+"' action='complete'", tc.form)
		cmdErr(t, got, tc.cond, tc.app)
	}
	if len(f.accts.causes) != 0 {
		t.Fatalf("refused forms changed accounts: %v", f.accts.causes)
	}
	got = f.command(f.admin, addUserNode, " sessionid='"+sid+"' action='complete'", submit("accountjid= Nurse@localhost ", "password=s3cret", "password-verify=s3cret"))
	wants(t, got, "type='result'", "status='completed'", "sessionid='"+sid+"'", "<note type='info'>Added nurse@localhost.</note>")
	if f.accts.pw["nurse@localhost"] != "s3cret" || !slices.Equal(f.accts.causes, []string{"register nurse@localhost adhoc:admin@localhost"}) {
		t.Errorf("accounts %v, causes %v", f.accts.pw, f.accts.causes)
	}
	// The form a client is shown.
	got = f.command(f.admin, addUserNode, "", "")
	wants(t, got, "<actions execute='complete'><complete/></actions>", "<title>Adding a User</title>",
		"<field type='hidden' var='FORM_TYPE'><value>"+NSAdmin+"</value></field>",
		"<field type='jid-single' var='accountjid' label='The Jabber ID for the account to be added'><required/></field>",
		"<field type='text-private' var='password' label='The password for this account'><required/></field>")
}

// The XEP-0050 errors: an unknown node, a non-admin, a get, an action
// that is none, one the stage does not allow, a session id that is not
// the asker's for this node, and one that has ended.
func TestCommandErrors(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	cmdErr(t, f.command(f.admin, NSAdmin+"#shutdown", "", ""), "item-not-found", "")
	cmdErr(t, f.command(f.user, addUserNode, " action='execute'", ""), "forbidden", "")
	if f.svc.sessions.count() != 0 {
		t.Error("a refused execution opened a session")
	}
	cmdErr(t, f.ask(f.admin, "<iq type='get' id='g'><command xmlns='"+NS+"' node='"+addUserNode+"'/></iq>"), "bad-request", "")
	cmdErr(t, f.command(f.admin, addUserNode, " action='jump'", ""), "bad-request", "malformed-action")
	cmdErr(t, f.command(f.admin, addUserNode, " action='complete'", submit("accountjid=a@localhost", "password=p")), "bad-request", "bad-action")

	sid := f.start(f.admin, addUserNode)
	cmdErr(t, f.command(f.admin, addUserNode, " sessionid='"+sid+"' action='prev'", ""), "bad-request", "bad-action")
	cmdErr(t, f.command(f.admin, addUserNode, " sessionid='"+sid+"' action='next'", ""), "bad-request", "bad-action")
	// An error echoes the request's command (slixmpp finds its session
	// by it), then the conditions and the text, in RFC 6120's order.
	wants(t, f.command(f.admin, addUserNode, " sessionid='adhoc-nonsense'", ""), "<command xmlns='"+NS+"' node='"+addUserNode+"' sessionid='adhoc-nonsense'/>"+
		"<error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no such session of this command for you</text>"+
		"<bad-sessionid xmlns='"+NS+"'/></error></iq>")
	cmdErr(t, f.command(f.admin, changePw, " sessionid='"+sid+"'", ""), "bad-request", "bad-sessionid")
	phone := &muxtest.Session{Full: jid.MustParse("admin@localhost/phone")}
	cmdErr(t, f.command(phone, addUserNode, " sessionid='"+sid+"'", ""), "bad-request", "bad-sessionid")
	// The session survived all that; cancel ends it.
	wants(t, f.command(f.admin, addUserNode, " sessionid='"+sid+"' action='cancel'", ""), "status='canceled'", "sessionid='"+sid+"'")
	cmdErr(t, f.command(f.admin, addUserNode, " sessionid='"+sid+"'", ""), "not-allowed", "session-expired")
	cmdErr(t, f.command(f.admin, addUserNode, " sessionid='"+sid+"' action='cancel'", ""), "not-allowed", "session-expired")
	if f.svc.sessions.count() != 0 {
		t.Errorf("%d sessions left", f.svc.sessions.count())
	}
}

// delete-user has two stages: the accounts, then a confirmation that
// lists them; prev goes back with them remembered, and a client may
// complete from the first stage. Admins cannot be deleted.
func TestDeleteUser(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	sid := f.start(f.admin, deleteUserNode)
	wants(t, f.admin.Sent[0], "<actions execute='next'><next/><complete/></actions>", "type='jid-multi' var='accountjids'")
	for _, tc := range []struct {
		jids      []string
		cond, app string
	}{
		{[]string{"accountjids=nobody@localhost"}, "item-not-found", ""},
		{[]string{"accountjids=juliet@localhost", "accountjids=admin@localhost"}, "not-allowed", ""},
		{[]string{"accountjids=juliet@elsewhere.example"}, "bad-request", "bad-payload"},
		{[]string{"accountjids= "}, "bad-request", "bad-payload"},
	} {
		cmdErr(t, f.command(f.admin, deleteUserNode, " sessionid='"+sid+"' action='next'", submit(tc.jids...)), tc.cond, tc.app)
	}
	got := f.command(f.admin, deleteUserNode, " sessionid='"+sid+"' action='next'",
		submit("accountjids=juliet@localhost", "accountjids=", "accountjids=JULIET@localhost", "accountjids=romeo@localhost"))
	wants(t, got, "status='executing'", "<actions execute='complete'><prev/><complete/></actions>",
		"<instructions>Delete juliet@localhost, romeo@localhost? ")
	if strings.Count(got, "juliet@localhost") != 1 {
		t.Errorf("juliet twice: %s", got)
	}
	cmdErr(t, f.command(f.admin, deleteUserNode, " sessionid='"+sid+"' action='next'", ""), "bad-request", "bad-action")
	got = f.command(f.admin, deleteUserNode, " sessionid='"+sid+"' action='prev'", "")
	wants(t, got, "<actions execute='next'><next/><complete/></actions>", "<value>juliet@localhost</value><value>romeo@localhost</value>")
	f.command(f.admin, deleteUserNode, " sessionid='"+sid+"'", submit("accountjids=juliet@localhost", "accountjids=romeo@localhost")) // execute: next
	if len(f.accts.causes) != 0 {
		t.Fatalf("deleted before the confirmation: %v", f.accts.causes)
	}
	got = f.command(f.admin, deleteUserNode, " sessionid='"+sid+"'", "") // execute: complete
	wants(t, got, "status='completed'", "<note type='info'>Deleted juliet@localhost.</note><note type='info'>Deleted romeo@localhost.</note>")
	if !slices.Equal(f.accts.causes, []string{"remove juliet@localhost adhoc:admin@localhost", "remove romeo@localhost adhoc:admin@localhost"}) {
		t.Errorf("causes %v", f.accts.causes)
	}
	// In one go, from the first stage.
	f.accts.pw["nurse@localhost"] = "n"
	sid = f.start(f.admin, deleteUserNode)
	wants(t, f.command(f.admin, deleteUserNode, " sessionid='"+sid+"' action='complete'", submit("accountjids=nurse@localhost")),
		"status='completed'", "Deleted nurse@localhost.")
	if _, ok := f.accts.pw["nurse@localhost"]; ok {
		t.Error("nurse is still there")
	}
}

// change-user-password changes an existing account's password and ends
// all its sessions (no session kept), caused by the admin.
func TestChangeUserPassword(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	sid := f.start(f.admin, changePw)
	cmdErr(t, f.command(f.admin, changePw, " sessionid='"+sid+"'", submit("accountjid=nobody@localhost", "password=x")), "item-not-found", "")
	cmdErr(t, f.command(f.admin, changePw, " sessionid='"+sid+"'", submit("accountjid=juliet@localhost", "password=")), "bad-request", "bad-payload")
	wants(t, f.command(f.admin, changePw, " sessionid='"+sid+"'", submit("accountjid=juliet@localhost", "password=n3w")), "status='completed'", "Changed the password of juliet@localhost")
	if f.accts.pw["juliet@localhost"] != "n3w" || !slices.Equal(f.accts.causes, []string{"passwd juliet@localhost adhoc:admin@localhost"}) {
		t.Errorf("accounts %v, causes %v", f.accts.pw, f.accts.causes)
	}
}

// The stages of a command whose first stage cannot complete it: execute
// means next there and complete on the last; prev shows the first stage
// with what was submitted, private fields left out; submitting a stage
// again replaces what it gave before.
func TestStages(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	var got values
	f.svc.commands = append(f.svc.commands, &command{node: "wizard", name: "Wizard", stages: []stage{
		{title: "One", fields: []field{{name: "a", typ: form.TextSingle, required: true, maxValues: 1, maxBytes: 8},
			{name: "secret", typ: form.TextPrivate, maxValues: 1, maxBytes: 8}}},
		{title: "Two", fields: []field{{name: "b", typ: form.TextSingle, maxValues: 1, maxBytes: 8}}},
	}, complete: func(_ context.Context, _ *request, v values) (string, error) {
		got = v
		return note("info", "done"), nil
	}})
	sid := f.start(f.admin, "wizard")
	wants(t, f.admin.Sent[0], "<actions execute='next'><next/></actions>", "<title>One</title>")
	cmdErr(t, f.command(f.admin, "wizard", " sessionid='"+sid+"' action='complete'", submit("a=1")), "bad-request", "bad-action")
	wants(t, f.command(f.admin, "wizard", " sessionid='"+sid+"'", submit("a=1", "secret=s3")),
		"status='executing'", "<actions execute='complete'><prev/><complete/></actions>", "<title>Two</title>")
	back := f.command(f.admin, "wizard", " sessionid='"+sid+"' action='prev'", "")
	wants(t, back, "<title>One</title>", "var='a'><required/><value>1</value></field>", "var='secret'></field>")
	if strings.Contains(back, "s3") {
		t.Errorf("a private value shown again: %s", back)
	}
	f.command(f.admin, "wizard", " sessionid='"+sid+"' action='next'", submit("a=2"))
	wants(t, f.command(f.admin, "wizard", " sessionid='"+sid+"' action='complete'", submit("b=3")), "status='completed'", "<note type='info'>done</note>")
	if len(got) != 2 || got.one("a") != "2" || got.one("b") != "3" {
		t.Errorf("values %v", got)
	}
}
