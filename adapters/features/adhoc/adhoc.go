// Package adhoc answers ad-hoc commands (XEP-0050) on the server's
// domain, with the service administration commands of XEP-0133 that
// operators use most (admin.go): add a user, delete users, change a
// user's password, list and count the online users, send them an
// announcement. Only the administrators the configuration names
// (--admin) see and run them: admins are configuration, not state.
//
// Each change goes through the application service the CLI's `annals
// user` commands use, so it is an event in the account's stream, caused
// by "adhoc:<admin's bare JID>". A command with forms runs in a session
// kept in memory (sessions.go), bounded in all and per admin, that ends
// when the command completes, is canceled, or sits idle too long.
package adhoc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/adapters/stanza/form"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
)

// Namespaces of XEP-0050 and XEP-0133.
const (
	NS      = "http://jabber.org/protocol/commands"
	NSAdmin = "http://jabber.org/protocol/admin"
)

// Accounts is what the commands change: the account streams, through
// the same service as the CLI's.
type Accounts interface {
	Exists(ctx context.Context, bare string) (bool, error)
	Register(ctx context.Context, bare, password string) error
	// SetPassword with session "" ends every session of the account.
	SetPassword(ctx context.Context, bare, password, session string) error
	// Remove deletes the account as `annals user del` does; its sessions
	// end once the log says so.
	Remove(ctx context.Context, bare string) error
}

// Host is what the commands need of the session core.
type Host interface {
	// Online returns the available sessions of every account here.
	Online() []mux.Session
}

// Config is what the service needs.
type Config struct {
	Domains  []string // the server's domains: commands name accounts there only
	Admins   []string // bare JIDs of accounts at Domains (ParseAdmin)
	Accounts Accounts
	// The sessions' bounds; zero: DefaultMaxSessions,
	// DefaultMaxSessionsPerAdmin, DefaultSessionTimeout.
	MaxSessions, MaxSessionsPerAdmin int
	SessionTimeout                   time.Duration
	Now                              func() time.Time // nil: time.Now
	Log                              *slog.Logger
}

// Service is the ad-hoc commands service.
type Service struct {
	cfg      Config
	host     Host
	admins   map[string]bool // bare JIDs
	commands []*command      // in the order listed
	sessions *sessions
}

// command is one command node.
type command struct {
	node, name string
	// stages are its forms, in order; a command without any completes
	// at once.
	stages []stage
	// complete runs the command on what the stages gathered and returns
	// the payload of the completed <command/>: notes, a result form.
	complete func(ctx context.Context, r *request, v values) (string, error)
}

// request is one request of a command, as the commands see it.
type request struct {
	svc   *Service
	admin jid.JID // who asks: an admin
	at    string  // the address asked, one of the server's domains
}

// ParseAdmin reads an administrator's JID: the bare JID of an account at
// one of domains.
func ParseAdmin(s string, domains []string) (string, error) {
	j, err := account.ParseJID(s)
	if err != nil {
		return "", err
	}
	if !slices.Contains(domains, j.Domainpart()) {
		return "", fmt.Errorf("%s is not at a domain this server serves (%s)", j, strings.Join(domains, ", "))
	}
	return j.String(), nil
}

// New returns the service for cfg's admins.
func New(cfg Config, host Host) (*Service, error) {
	cfg.MaxSessions = cmp.Or(cfg.MaxSessions, DefaultMaxSessions)
	cfg.MaxSessionsPerAdmin = cmp.Or(cfg.MaxSessionsPerAdmin, DefaultMaxSessionsPerAdmin)
	cfg.SessionTimeout = cmp.Or(cfg.SessionTimeout, DefaultSessionTimeout)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Service{cfg: cfg, host: host, admins: map[string]bool{}, commands: adminCommands(),
		sessions: newSessions(cfg.MaxSessions, cfg.MaxSessionsPerAdmin, cfg.SessionTimeout)}
	for _, a := range cfg.Admins {
		bare, err := ParseAdmin(a, cfg.Domains)
		if err != nil {
			return nil, fmt.Errorf("adhoc: admin %q: %w", a, err)
		}
		s.admins[bare] = true
	}
	return s, nil
}

// Register answers commands at the server and lists them in its
// disco#items node (XEP-0050 §2.2) on m.
func (s *Service) Register(m *mux.Mux) {
	m.Handle(mux.Server, NS, s.handle, NS)
	m.Nodes(mux.Server, s)
}

// may reports whether who may see and run cmd: an admin's sessions.
func (s *Service) may(who jid.JID, _ *command) bool {
	return s.admins[who.Bare().String()]
}

func (s *Service) byNode(node string) *command {
	for _, c := range s.commands {
		if c.node == node {
			return c
		}
	}
	return nil
}

// NodeInfo answers disco#info on the command list and on each command
// (XEP-0050 §2.2): a command the asker may not run is forbidden.
func (s *Service) NodeInfo(sess mux.Session, _, node string) ([]mux.Identity, []string, error) {
	if node == NS {
		return []mux.Identity{{Category: "automation", Type: "command-list", Name: "Commands"}}, nil, nil
	}
	c := s.byNode(node)
	if c == nil {
		return nil, nil, mux.ErrNoNode
	}
	if !s.may(sess.JID(), c) {
		return nil, nil, stanza.Errorf("forbidden", "only the server's administrators may run "+c.name)
	}
	return []mux.Identity{{Category: "automation", Type: "command-node", Name: c.name}}, []string{NS, form.NS}, nil
}

// NodeItems lists the commands the asker may run: none for anyone but
// an admin.
func (s *Service) NodeItems(sess mux.Session, at, node string) ([]mux.Item, error) {
	if node != NS {
		return nil, mux.ErrNoNode
	}
	var items []mux.Item
	for _, c := range s.commands {
		if s.may(sess.JID(), c) {
			items = append(items, mux.Item{JID: at, Node: c.node, Name: c.name})
		}
	}
	return items, nil
}

// handle answers a <command/>. Its errors are sent here, with the
// request's <command/> echoed (XEP-0050 §4.4's error example does):
// slixmpp finds the session an error is about by that sessionid.
func (s *Service) handle(ctx context.Context, iq *mux.IQ) error {
	err := s.execute(ctx, iq)
	var (
		ce *cmdError
		se *stanza.Error
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
	case errors.As(err, &se):
		ce = &cmdError{cond: se.Cond, typ: se.Type, text: se.Text}
	default:
		return err // internal-server-error, and logged
	}
	iq.Session.Send(ce.reply(iq))
	iq.Answered()
	return nil
}

func (s *Service) execute(ctx context.Context, iq *mux.IQ) error {
	if iq.Type() != "set" {
		return stanza.Errorf("bad-request", "a command is run with an IQ set (XEP-0050 §3.4)")
	}
	c := iq.Payload
	if c.XMLName.Local != "command" {
		return stanza.Errorf("bad-request", "expected <command/>")
	}
	node := c.Attr("node")
	cmd := s.byNode(node)
	if cmd == nil {
		return stanza.Errorf("item-not-found", "no such command")
	}
	who := iq.Session.JID()
	if !s.may(who, cmd) {
		return stanza.Errorf("forbidden", "only the server's administrators may run "+cmd.name)
	}
	action := cmp.Or(c.Attr("action"), "execute")
	switch action {
	case "execute", "cancel", "prev", "next", "complete":
	default:
		return &cmdError{cond: "bad-request", app: "malformed-action", text: fmt.Sprintf("%.64q is not an action", action)}
	}
	r := &request{svc: s, admin: who, at: cmp.Or(iq.From, who.Domainpart())}
	// The events the command appends say which admin caused them.
	ctx = event.WithCause(ctx, "adhoc:"+who.Bare().String())
	now := s.cfg.Now()
	sid := c.Attr("sessionid")
	if sid == "" {
		if action != "execute" {
			return badAction("a command starts with execute, and %s needs the sessionid it gave", action)
		}
		if len(cmd.stages) == 0 {
			payload, err := cmd.complete(ctx, r, values{})
			if err != nil {
				return err
			}
			// XEP-0050 §4.1: the responder SHOULD give a sessionid, here
			// one that was never open.
			reply(iq, node, "adhoc-once-"+stanza.NewID(), "completed", payload)
			return nil
		}
		se, err := s.sessions.start(who, node, now)
		if err != nil {
			return err
		}
		defer s.sessions.release(se)
		s.show(iq, cmd, se)
		return nil
	}
	se, err := s.sessions.take(sid, who, node, now)
	if err != nil {
		return err
	}
	defer s.sessions.release(se)
	st := &cmd.stages[se.stage]
	last := se.stage == len(cmd.stages)-1
	if action == "execute" { // what the stage's actions said execute means
		action = "next"
		if last {
			action = "complete"
		}
	}
	switch action {
	case "cancel":
		s.sessions.end(se)
		reply(iq, node, se.id, "canceled", "")
		return nil
	case "prev":
		if se.stage == 0 {
			return badAction("this is the first stage")
		}
		se.stage--
		s.show(iq, cmd, se)
		return nil
	case "next":
		if last {
			return badAction("this is the last stage: complete it")
		}
	case "complete":
		if !last && !st.complete {
			return badAction("this stage cannot complete the command: go next")
		}
	}
	got, err := st.read(c)
	if err != nil {
		return err
	}
	v := merge(se.values, got, st)
	if st.check != nil {
		if err := st.check(ctx, r, v); err != nil {
			return err
		}
	}
	se.values = v
	if action == "next" {
		se.stage++
		s.show(iq, cmd, se)
		return nil
	}
	s.sessions.end(se)
	payload, err := cmd.complete(ctx, r, se.values)
	if err != nil {
		return err
	}
	reply(iq, node, se.id, "completed", payload)
	return nil
}

// merge returns the session's values with stage st's fields replaced by
// what was just submitted (a stage submitted again after prev replaces
// what it gave before).
func merge(old, got values, st *stage) values {
	v := values{}
	for k, vals := range old {
		v[k] = vals
	}
	for _, f := range st.fields {
		delete(v, f.name)
		if vals, ok := got[f.name]; ok {
			v[f.name] = vals
		}
	}
	return v
}

// show answers with se's stage: its form and the actions it allows
// (XEP-0050 §3.4: prev, next, complete, and which one execute means).
func (s *Service) show(iq *mux.IQ, cmd *command, se *session) {
	st := &cmd.stages[se.stage]
	last := se.stage == len(cmd.stages)-1
	def := "next"
	if last {
		def = "complete"
	}
	actions := "<actions execute='" + def + "'>"
	if se.stage > 0 {
		actions += "<prev/>"
	}
	if !last {
		actions += "<next/>"
	}
	if last || st.complete {
		actions += "<complete/>"
	}
	actions += "</actions>"
	reply(iq, cmd.node, se.id, "executing", actions+st.render(se.values))
}

// reply answers iq with a <command/> of the status given.
func reply(iq *mux.IQ, node, sid, status, payload string) {
	iq.Result("<command xmlns='" + NS + "' node='" + stanza.Escape(node) + "' sessionid='" + stanza.Escape(sid) +
		"' status='" + status + "'>" + payload + "</command>")
}

// cmdError is a stanza error, with one of XEP-0050's conditions (§4.6)
// beside the defined one where there is one: malformed-action,
// bad-action, bad-payload, bad-sessionid, session-expired.
type cmdError struct{ cond, typ, app, text string }

func (e *cmdError) Error() string { return "adhoc: " + cmp.Or(e.app, e.cond) + ": " + e.text }

// reply is the error answer to iq: the request's <command/> without its
// payload, then the error: the defined condition, the text, the
// application's condition (RFC 6120 §8.3.2).
func (e *cmdError) reply(iq *mux.IQ) string {
	var b strings.Builder
	b.WriteString("<iq type='error' id='" + stanza.Escape(iq.Stanza.Attr("id")) + "'" + stanza.ToFrom(iq.Session.JID().String(), iq.From) + ">")
	if iq.Payload.XMLName.Local == "command" {
		b.WriteString("<command xmlns='" + NS + "'")
		for _, a := range []string{"node", "sessionid", "action"} {
			if v := iq.Payload.Attr(a); v != "" {
				b.WriteString(" " + a + "='" + stanza.Escape(v) + "'")
			}
		}
		b.WriteString("/>")
	}
	b.WriteString("<error type='" + cmp.Or(e.typ, stanza.Types[e.cond], "cancel") + "'><" + e.cond + " xmlns='" + stanza.NSStanzas + "'/>")
	if e.text != "" {
		b.WriteString("<text xmlns='" + stanza.NSStanzas + "'>" + stanza.Escape(e.text) + "</text>")
	}
	if e.app != "" {
		b.WriteString("<" + e.app + " xmlns='" + NS + "'/>")
	}
	b.WriteString("</error></iq>")
	return b.String()
}

func badAction(format string, args ...any) error {
	return &cmdError{cond: "bad-request", app: "bad-action", text: fmt.Sprintf(format, args...)}
}
