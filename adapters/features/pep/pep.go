package pep

import (
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/adapters/stanza/form"
	pepdomain "annals.im/annals/domain/pep"
)

const (
	nsPubsub        = "http://jabber.org/protocol/pubsub"
	nsPubsubEvent   = "http://jabber.org/protocol/pubsub#event"
	nsPubsubErrors  = "http://jabber.org/protocol/pubsub#errors"
	nsBookmarks     = "urn:xmpp:bookmarks:1"
	nsPrivate       = "jabber:iq:private"
	nsBookmarksXML  = "storage:bookmarks"
	pubsubOptionsNS = "http://jabber.org/protocol/pubsub#publish-options"
)

// PEP is the account's personal eventing service, kept in its stream.
type PEP interface {
	Node(ctx context.Context, acct, node string) (pepdomain.Node, error)
	// Nodes returns all of the account's nodes, by name.
	Nodes(ctx context.Context, acct string) (map[string]pepdomain.Node, error)
	// Do runs a pepdomain.Publish or pepdomain.Retract on the account's nodes; a
	// publication's Passwords are kept beside the log (and a retraction
	// erases them).
	Do(ctx context.Context, acct string, cmd any) error
	// Passwords returns the passwords kept beside the log for the node's
	// items (pepdomain.Item.HasPassword), by item ID, as pepdomain.Publish had them.
	Passwords(ctx context.Context, acct, node string) (map[string][]string, error)
}

// pepFeatures are advertised on the account with PEP.
var pepFeatures = []string{nsPubsub + "#publish", pubsubOptionsNS, nsPubsub + "#retract-items", nsPubsub + "#retrieve-items",
	nsPubsub + "#persistent-items", nsBookmarks + "#compat"}

// pubsubIQ answers pubsub requests to the user's own PEP service.
func (c *conn) pubsubIQ(ctx context.Context, e *element, q element) error {
	acct := c.jid.Bare().String()
	reply := func(payload string) error {
		return c.write(fmt.Sprintf(`<iq type='result' id='%s' to='%s'>%s</iq>`, stanza.Escape(e.Attr("id")), stanza.Escape(c.jid.String()), payload))
	}
	fail := func(err error) error { return c.write(c.pepErrorReply(e, err)) }
	kids := q.Children()
	if len(kids) == 0 {
		return fail(fmt.Errorf("%w: empty pubsub request", pepdomain.ErrInvalid))
	}
	op := kids[0]
	node := op.Attr("node")
	switch {
	case e.Attr("type") == "set" && op.XMLName.Local == "publish":
		item, ok := op.Named(nsPubsub, "item")
		if !ok || len(strings.TrimSpace(string(item.Inner))) == 0 {
			return fail(fmt.Errorf("%w: publish one item with a payload", pepdomain.ErrInvalid))
		}
		var opts *pepdomain.Config
		for _, k := range kids[1:] {
			if k.XMLName.Local == "publish-options" {
				cfg, err := parsePublishOptions(k, c.srv.pepMaxItems())
				if err != nil {
					return fail(err)
				}
				opts = &cfg
			}
		}
		id := item.Attr("id")
		if id == "" {
			id = stanza.NewID()
		}
		if err := c.srv.pepPublish(ctx, acct, node, pepdomain.Item{ID: id, Payload: strings.TrimSpace(string(item.Inner))}, opts, true); err != nil {
			return fail(err)
		}
		return reply(fmt.Sprintf(`<pubsub xmlns='%s'><publish node='%s'><item id='%s'/></publish></pubsub>`, nsPubsub, stanza.Escape(node), stanza.Escape(id)))
	case e.Attr("type") == "set" && op.XMLName.Local == "retract":
		item, ok := op.Named(nsPubsub, "item")
		if !ok || item.Attr("id") == "" {
			return fail(fmt.Errorf("%w: retract names an item", pepdomain.ErrInvalid))
		}
		if err := c.srv.pepRetract(ctx, acct, node, item.Attr("id"), true); err != nil {
			return fail(err)
		}
		return reply("")
	case e.Attr("type") == "get" && op.XMLName.Local == "items":
		// NOTSPEC(XEP-0060 §6.5.9.11): a node the account never made reads
		// as empty to it, not item-not-found: clients ask for their
		// bookmarks before they have any. Others get item-not-found.
		n, err := c.srv.pepNode(ctx, acct, node)
		if err != nil {
			return fail(err)
		}
		items, err := selectItems(n, op)
		if err != nil {
			return fail(err)
		}
		return reply(renderItems(node, items))
	}
	return c.write(c.errorReply(e, "cancel", "feature-not-implemented"))
}

func (c *conn) pepErrorReply(e *element, err error) string {
	switch {
	case errors.Is(err, pepdomain.ErrPrecondition):
		return fmt.Sprintf(`<iq type='error' id='%s' to='%s'><error type='cancel'><conflict xmlns='%s'/><precondition-not-met xmlns='%s'/></error></iq>`,
			stanza.Escape(e.Attr("id")), stanza.Escape(c.jid.String()), nsStanzas, nsPubsubErrors)
	case errors.Is(err, pepdomain.ErrPayloadTooBig):
		// XEP-0060 §7.1.3.4.
		return c.pepError(e, "modify", "not-acceptable", "payload-too-big", err.Error())
	case errors.Is(err, pepdomain.ErrTooManyNodes):
		// NOTSPEC(XEP-0060 §7.1.3): no condition is given for a publication
		// that would create a node past a limit; the schema's
		// <max-nodes-exceeded/> says which, under resource-constraint (type
		// cancel: the same request fails until the user frees room).
		return c.pepError(e, "cancel", "resource-constraint", "max-nodes-exceeded", err.Error())
	}
	if se, ok := stanza.ErrorFor(err); ok {
		return c.errorReplyText(e, se.Type, se.Cond, se.Text)
	}
	c.log.Error("PEP request failed", "err", err)
	return c.errorReply(e, "wait", "internal-server-error")
}

// pepError is an error with a pubsub-specific condition beside the
// stanza error's.
func (c *conn) pepError(e *element, typ, cond, pubsubCond, text string) string {
	return fmt.Sprintf(`<iq type='error' id='%s' to='%s'><error type='%s'><%s xmlns='%s'/><%s xmlns='%s'/><text xmlns='%s'>%s</text></error></iq>`,
		stanza.Escape(e.Attr("id")), stanza.Escape(c.jid.String()), typ, cond, nsStanzas, pubsubCond, nsPubsubErrors, nsStanzas, stanza.Escape(text))
}

// parsePublishOptions reads the publish-options form (XEP-0223).
// "max" is maxItems.
func parsePublishOptions(po element, maxItems int) (pepdomain.Config, error) {
	var cfg pepdomain.Config
	x, ok := po.Named(nsData, "x")
	if !ok {
		return cfg, nil
	}
	f, err := form.Parse(x)
	if err != nil {
		return cfg, fmt.Errorf("%w: %v", pepdomain.ErrInvalid, err)
	}
	// persist_items (always), send_last_published_item and FORM_TYPE
	// need nothing: items are always kept, in the log.
	if fl, ok := f.Field("pubsub#access_model"); ok {
		cfg.AccessModel = fl.Value()
	}
	if fl, ok := f.Field("pubsub#roster_groups_allowed"); ok {
		cfg.RosterGroups = append([]string{}, fl.Values...)
	}
	if fl, ok := f.Field("pubsub#max_items"); ok {
		v := fl.Value()
		if v == "max" {
			cfg.MaxItems = maxItems
			return cfg, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return cfg, fmt.Errorf("%w: pubsub#max_items %q", pepdomain.ErrInvalid, v)
		}
		cfg.MaxItems = n
	}
	return cfg, nil
}

// pepPublish publishes an item and notifies the account's clients;
// byClient says a client asked, so a bookmark may make the account join.
//
// Bookmark passwords in the payload are kept beside the log, never in it
// (pep_passwords.go); the account's clients are notified with them.
func (s *Service) pepPublish(ctx context.Context, acct, node string, it pepdomain.Item, opts *pepdomain.Config, byClient bool) error {
	payload, passwords, err := splitPasswords(it.Payload)
	if err != nil {
		return err
	}
	logged := pepdomain.Item{ID: it.ID, Payload: payload}
	if err := s.cfg.PEP.Do(ctx, acct, pepdomain.Publish{Node: node, Item: logged, Options: opts, Passwords: passwords, Limits: s.cfg.Limits}); err != nil {
		return err
	}
	s.pepNotify(ctx, acct, node, "<item id='"+stanza.Escape(it.ID)+"'>"+it.Payload+"</item>")
	if byClient && node == nsBookmarks {
		s.followBookmark(ctx, acct, it)
	}
	return nil
}

func (s *Service) pepRetract(ctx context.Context, acct, node, id string, byClient bool) error {
	if err := s.cfg.PEP.Do(ctx, acct, pepdomain.Retract{Node: node, ID: id}); err != nil {
		return err
	}
	s.pepNotify(ctx, acct, node, "<retract id='"+stanza.Escape(id)+"'/>")
	if byClient && node == nsBookmarks {
		s.followBookmark(ctx, acct, pepdomain.Item{ID: id})
	}
	return nil
}

// bookmark is what the server reads of a XEP-0402 conference bookmark.
type bookmark struct {
	autojoin bool
	name     string
	nick     string
	password string
}

var (
	nickElement     = regexp.MustCompile(`<nick(\s[^>]*)?>[^<]*</nick>|<nick(\s[^>]*)?/>`)
	passwordPattern = regexp.MustCompile(`<password(\s[^>]*)?>[^<]*</password>|<password(\s[^>]*)?/>`)
)

func parseBookmark(payload string) (bookmark, element, bool) {
	var e element
	if err := xmlUnmarshal(payload, &e); err != nil || e.XMLName.Local != "conference" {
		return bookmark{}, e, false
	}
	return bookmark{autojoin: e.Attr("autojoin") == "true" || e.Attr("autojoin") == "1", name: e.Attr("name"),
		nick: e.ChildText("nick"), password: e.ChildText("password")}, e, true
}

// bookmarkPayload renders a conference bookmark, keeping what the old
// one had beyond autojoin and nick (extensions; the password unless
// setPassword, which replaces it with b's).
func bookmarkPayload(old element, had bool, b bookmark, setPassword bool) string {
	inner := ""
	if had {
		inner = strings.TrimSpace(nickElement.ReplaceAllString(string(old.Inner), ""))
	}
	password := ""
	if setPassword {
		inner = strings.TrimSpace(passwordPattern.ReplaceAllString(inner, ""))
		if b.password != "" {
			// XEP-0402's order: nick, password, extensions.
			password = "<password>" + stanza.Escape(b.password) + "</password>"
		}
	}
	name := ""
	if b.name != "" {
		name = " name='" + stanza.Escape(b.name) + "'"
	}
	nick := ""
	if b.nick != "" {
		nick = "<nick>" + stanza.Escape(b.nick) + "</nick>"
	}
	return "<conference xmlns='" + nsBookmarks + "' autojoin='" + strconv.FormatBool(b.autojoin) + "'" + name + ">" + nick + password + inner + "</conference>"
}

// bookmarkOptions are the bookmarks node's publish-options (XEP-0402
// §3): whitelist, and as many items as a node may hold ("max").
func (s *Service) bookmarkOptions() *pepdomain.Config {
	return &pepdomain.Config{AccessModel: pepdomain.Whitelist, MaxItems: s.pepMaxItems()}
}

// pepMaxItems is the highest pubsub#max_items ("max").
func (s *Service) pepMaxItems() int { return cmp.Or(s.cfg.Limits.MaxItems, pepdomain.MaxItems) }

// SetAutojoin keeps the account's bookmark of a room in step with its
// occupancy: joining sets autojoin (creating the bookmark), leaving
// clears it. The room service calls it (muc.Bookmarks).
func (s *Service) SetAutojoin(ctx context.Context, acct, r, nick string, autojoin bool) {
	n, err := s.pepNode(ctx, acct, nsBookmarks)
	if err != nil {
		s.cfg.Log.Error("reading bookmarks", "account", acct, "err", err)
		return
	}
	it, had := n.Item(r)
	b, old, ok := parseBookmark(it.Payload)
	switch {
	case !had && !autojoin:
		return
	case had && ok && b.autojoin == autojoin && (!autojoin || b.nick == nick):
		return
	}
	b.autojoin = autojoin
	if autojoin {
		b.nick = nick
	}
	if err := s.pepPublish(ctx, acct, nsBookmarks, pepdomain.Item{ID: r, Payload: bookmarkPayload(old, had && ok, b, false)}, s.bookmarkOptions(), false); err != nil {
		s.cfg.Log.Error("updating a bookmark", "account", acct, "room", r, "err", err)
	}
}

// Holds reports whether acct's bookmarks keep it in room r with no
// client attached: unless a bookmark of r says no autojoin. The room
// service asks (muc.Bookmarks) when a client joins, so as not to turn
// such a bookmark into an autojoin one, and when the last client goes.
func (s *Service) Holds(ctx context.Context, acct, r string) bool {
	n, err := s.pepNode(ctx, acct, nsBookmarks)
	if err != nil {
		s.cfg.Log.Error("reading bookmarks", "account", acct, "err", err)
		return true // as before bookmarks could say otherwise
	}
	it, had := n.Item(r)
	if !had {
		return true
	}
	b, _, ok := parseBookmark(it.Payload)
	return !ok || b.autojoin
}

// followBookmark has the room service of the room a client's bookmark
// change names make the account join or leave it: autojoin true joins
// (with the bookmark's nick, no session attached until a client joins),
// false or a retraction leaves.
func (s *Service) followBookmark(ctx context.Context, acct string, it pepdomain.Item) {
	r, err := jid.Parse(it.ID)
	if err != nil || r.Localpart() == "" || r.Resourcepart() != "" {
		return
	}
	svc, ok := s.mux.Service(r.Domainpart())
	f, follows := svc.(bookmarkFollower)
	if !ok || !follows {
		return
	}
	b, _, ok := parseBookmark(it.Payload)
	f.FollowBookmark(ctx, acct, r.String(), b.nick, b.password, ok && b.autojoin)
}

// bookmarkFollower is a service whose rooms bookmarks can join.
type bookmarkFollower interface {
	FollowBookmark(ctx context.Context, acct, room, nick, password string, autojoin bool)
}

func xmlUnmarshal(s string, e *element) error { return xml.Unmarshal([]byte(s), e) }
