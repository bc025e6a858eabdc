package pep

// XEP-0049 private XML storage.

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	pepdomain "annals.im/annals/domain/pep"
)

// privateItem is the item ID under which a namespace's private element is kept.
const privateItem = "current"

// reservedPrivate are the namespaces XEP-0049 §2.1 keeps out of private
// storage.
var reservedPrivate = []string{"jabber:client", "jabber:server", nsPrivate, ""}

// privateIQ answers XEP-0049 private XML storage: one element per
// namespace, kept as the item "current" of a PEP node of that name with
// the whitelist access model (XEP-0223: private data via PEP), so that
// it is in the account's stream; XEP-0048 bookmarks are converted to and
// from the PEP bookmarks instead (XEP-0402 §5.2 compatibility).
func (c *conn) privateIQ(ctx context.Context, e *element, q element) error {
	kids := q.Children()
	if len(kids) != 1 {
		// XEP-0049 §2.1: one child, and only one.
		return c.write(c.errorReplyText(e, "modify", "bad-request", "private storage takes one element"))
	}
	if kids[0].XMLName != (xml.Name{Space: nsBookmarksXML, Local: "storage"}) {
		return c.privateData(ctx, e, kids[0], strings.TrimSpace(string(q.Inner)))
	}
	acct := c.jid.Bare().String()
	storage := kids[0]
	reply := func(payload string) error {
		return c.write(fmt.Sprintf(`<iq type='result' id='%s' to='%s'>%s</iq>`, stanza.Escape(e.Attr("id")), stanza.Escape(c.jid.String()), payload))
	}
	n, err := c.srv.pepNode(ctx, acct, nsBookmarks)
	if err != nil {
		return c.write(c.pepErrorReply(e, err))
	}
	if e.Attr("type") == "get" {
		var b strings.Builder
		b.WriteString("<query xmlns='" + nsPrivate + "'><storage xmlns='" + nsBookmarksXML + "'>")
		for _, it := range n.Items {
			bm, _, ok := parseBookmark(it.Payload)
			if !ok {
				continue
			}
			b.WriteString("<conference jid='" + stanza.Escape(it.ID) + "' autojoin='" + strconv.FormatBool(bm.autojoin) + "'")
			if bm.name != "" {
				b.WriteString(" name='" + stanza.Escape(bm.name) + "'")
			}
			b.WriteString(">")
			if bm.nick != "" {
				b.WriteString("<nick>" + stanza.Escape(bm.nick) + "</nick>")
			}
			if bm.password != "" {
				b.WriteString("<password>" + stanza.Escape(bm.password) + "</password>")
			}
			b.WriteString("</conference>")
		}
		b.WriteString("</storage></query>")
		return reply(b.String())
	}
	// A set replaces the whole list: publish what is there, retract what is not.
	keep := map[string]bool{}
	for _, conf := range storage.Children() {
		if conf.XMLName.Local != "conference" {
			continue
		}
		room, err := jid.Parse(conf.Attr("jid"))
		if err != nil {
			return c.write(c.errorReplyText(e, "modify", "bad-request", "conference without a valid jid"))
		}
		bm := bookmark{autojoin: conf.Attr("autojoin") == "true" || conf.Attr("autojoin") == "1", name: conf.Attr("name"),
			nick: conf.ChildText("nick"), password: conf.ChildText("password")}
		old, had := n.Item(room.String())
		_, oldEl, parsed := parseBookmark(old.Payload)
		payload := bookmarkPayload(oldEl, had && parsed, bm, true)
		keep[room.String()] = true
		if had && old.Payload == payload {
			continue
		}
		if err := c.srv.pepPublish(ctx, acct, nsBookmarks, pepdomain.Item{ID: room.String(), Payload: payload}, c.srv.bookmarkOptions(), true); err != nil {
			return c.write(c.pepErrorReply(e, err))
		}
	}
	for _, it := range n.Items {
		if !keep[it.ID] {
			if err := c.srv.pepRetract(ctx, acct, nsBookmarks, it.ID, true); err != nil {
				return c.write(c.pepErrorReply(e, err))
			}
		}
	}
	return reply("")
}

// privateData gets or sets the private element of el's namespace (raw:
// el as the stream reader serialized it).
func (c *conn) privateData(ctx context.Context, e *element, el element, raw string) error {
	ns := el.XMLName.Space
	if slices.Contains(reservedPrivate, ns) {
		return c.write(c.errorReplyText(e, "modify", "not-acceptable", "that namespace cannot be stored"))
	}
	acct := c.jid.Bare().String()
	reply := func(payload string) error {
		return c.write(fmt.Sprintf(`<iq type='result' id='%s' to='%s'>%s</iq>`, stanza.Escape(e.Attr("id")), stanza.Escape(c.jid.String()), payload))
	}
	if e.Attr("type") == "get" {
		n, err := c.srv.pepNode(ctx, acct, ns)
		if err != nil {
			return c.write(c.pepErrorReply(e, err))
		}
		payload := "<" + el.XMLName.Local + " xmlns='" + stanza.Escape(ns) + "'/>" // nothing stored: the element, empty
		if it, ok := n.Item(privateItem); ok {
			payload = it.Payload
		}
		return reply("<query xmlns='" + nsPrivate + "'>" + payload + "</query>")
	}
	opts := &pepdomain.Config{AccessModel: pepdomain.Whitelist, MaxItems: 1}
	if err := c.srv.pepPublish(ctx, acct, ns, pepdomain.Item{ID: privateItem, Payload: raw}, opts, true); err != nil {
		return c.write(c.pepErrorReply(e, err))
	}
	return reply("")
}
