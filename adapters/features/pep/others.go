package pep

// Reading another account's nodes (XEP-0163 §3, XEP-0060 §6.5): a
// contact's avatar, nickname or OMEMO device list and bundles, as the
// node's access model allows.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"annals.im/annals/adapters/stanza"
	pepdomain "annals.im/annals/domain/pep"
	"annals.im/annals/domain/roster"
)

// Rosters reads accounts' rosters: who may read which node.
type Rosters interface {
	Roster(ctx context.Context, acct string) (roster.State, error)
}

// othersPubsubIQ answers pubsub requests to another account's bare JID
// (c.from), from anyone: an items request, if the node's access model
// lets the asker read it. Nothing else of another account's service is
// anyone's to do (forbidden).
func (c *conn) othersPubsubIQ(ctx context.Context, e *element, q element) error {
	owner, asker := c.from, c.jid.Bare().String()
	reply := func(payload string) error {
		return c.write("<iq type='result' id='" + stanza.Escape(e.Attr("id")) + "'" + stanza.ToFrom(c.jid.String(), owner) + ">" + payload + "</iq>")
	}
	fail := func(err error) error { return c.write(c.othersError(e, err)) }
	kids := q.Children()
	if len(kids) == 0 {
		return fail(fmt.Errorf("%w: empty pubsub request", pepdomain.ErrInvalid))
	}
	op := kids[0]
	switch {
	case e.Attr("type") == "set":
		// XEP-0060 §7.1.3.1: only the owner publishes to its PEP nodes.
		return c.write(c.errorReplyText(e, "auth", "forbidden", "only the account publishes to its nodes"))
	case op.XMLName.Local != "items":
		return c.write(c.errorReplyText(e, "cancel", "feature-not-implemented", "only items can be read from another account's nodes"))
	}
	node := op.Attr("node")
	n, err := c.srv.cfg.PEP.Node(ctx, owner, node) // not pepNode: passwords are the owner's alone
	if err != nil {
		return fail(err)
	}
	if n.Config.AccessModel == "" {
		return fail(pepdomain.ErrItemNotFound) // no such node
	}
	if err := n.CanRead(c.srv.reader(ctx, owner, asker)); err != nil {
		return fail(err)
	}
	items, err := selectItems(n, op)
	if err != nil {
		return fail(err)
	}
	return reply(renderItems(node, items))
}

// reader is asker as owner's roster sees it.
func (s *Service) reader(ctx context.Context, owner, asker string) pepdomain.Reader {
	r := pepdomain.Reader{Owner: owner == asker}
	if s.cfg.Rosters == nil || r.Owner {
		return r
	}
	st, err := s.cfg.Rosters.Roster(ctx, owner)
	if err != nil {
		s.cfg.Log.Error("PEP: reading the owner's roster", "account", owner, "err", err)
		return r
	}
	if it, ok := st.Items[asker]; ok {
		r.InRoster, r.Groups = true, it.Groups
		r.Subscribed = it.Subscription == roster.From || it.Subscription == roster.Both
	}
	return r
}

// selectItems picks what an items request asks of n: all, the last
// max_items, or the one item it names.
func selectItems(n pepdomain.Node, op element) ([]pepdomain.Item, error) {
	items := n.Items
	if m, err := strconv.Atoi(op.Attr("max_items")); err == nil && m >= 0 && m < len(items) {
		items = items[len(items)-m:]
	}
	if want, ok := op.Named(nsPubsub, "item"); ok && want.Attr("id") != "" {
		it, found := n.Item(want.Attr("id"))
		if !found {
			return nil, pepdomain.ErrItemNotFound
		}
		items = []pepdomain.Item{it}
	}
	return items, nil
}

// renderItems is the pubsub payload of an items result.
func renderItems(node string, items []pepdomain.Item) string {
	var b strings.Builder
	b.WriteString("<pubsub xmlns='" + nsPubsub + "'><items node='" + stanza.Escape(node) + "'>")
	for _, it := range items {
		b.WriteString("<item id='" + stanza.Escape(it.ID) + "'>" + it.Payload + "</item>")
	}
	b.WriteString("</items></pubsub>")
	return b.String()
}

// othersError is the answer to a refused read of another account's node
// (XEP-0060 §6.5.9), from that account.
func (c *conn) othersError(e *element, err error) string {
	cond, pubsubCond, typ := "", "", "auth"
	switch {
	case errors.Is(err, pepdomain.ErrNotSubscribed):
		cond, pubsubCond = "not-authorized", "presence-subscription-required"
	case errors.Is(err, pepdomain.ErrNotInRosterGroup):
		cond, pubsubCond = "not-authorized", "not-in-roster-group"
	case errors.Is(err, pepdomain.ErrClosedNode):
		cond, pubsubCond, typ = "not-allowed", "closed-node", "cancel"
	case errors.Is(err, pepdomain.ErrItemNotFound):
		return c.errorReply(e, "cancel", "item-not-found")
	default:
		return c.pepErrorReply(e, err)
	}
	return fmt.Sprintf(`<iq type='error' id='%s'%s><error type='%s'><%s xmlns='%s'/><%s xmlns='%s'/></error></iq>`,
		stanza.Escape(e.Attr("id")), stanza.ToFrom(c.jid.String(), c.from), typ, cond, nsStanzas, pubsubCond, nsPubsubErrors)
}
