package pep

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"annals.im/annals/adapters/stanza"
	pepdomain "annals.im/annals/domain/pep"
)

// Bookmarks carry room passwords (XEP-0402 <password/>, and XEP-0048's
// in storage:bookmarks). An item's payload becomes part of an event, and
// events are never erased, so the passwords are taken out before the
// publication is decided: the event keeps an empty <password/> where
// each was and says that there were some (pepdomain.Item.HasPassword); the
// passwords themselves are kept beside the log by the PEP port, where
// deleting the item or the account erases them. Every read that serves
// the account's own clients (items, the XEP-0048 view, autojoin) puts
// them back (pepNode).

// passwordSpan is one password element of a payload: its bytes
// [start, end), its namespace and its text.
type passwordSpan struct {
	start, end int
	space      string
	text       string
}

// passwordSpans finds the password elements of the bookmarks in payload:
// elements called password whose parent is called conference. They are
// matched by local name, whatever their namespace or prefix, so that no
// spelling of a bookmark carries its password into the log.
func passwordSpans(payload string) ([]passwordSpan, error) {
	dec := xml.NewDecoder(strings.NewReader(payload))
	var stack []string
	var spans []passwordSpan
	open := -1 // depth of the password element being read; -1: none
	for {
		off := int(dec.InputOffset())
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if len(stack) > 0 {
				return nil, fmt.Errorf("%w: a payload with an unclosed element", pepdomain.ErrInvalid)
			}
			return spans, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: payload: %v", pepdomain.ErrInvalid, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if open < 0 && t.Name.Local == "password" && len(stack) > 0 && stack[len(stack)-1] == "conference" {
				spans = append(spans, passwordSpan{start: off, space: t.Name.Space})
				open = len(stack)
			}
			stack = append(stack, t.Name.Local)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if open >= 0 && len(stack) == open {
				spans[len(spans)-1].end = int(dec.InputOffset())
				open = -1
			}
		case xml.CharData:
			if open >= 0 {
				spans[len(spans)-1].text += string(t)
			}
		}
	}
}

func passwordElement(space, text string) string {
	x := "<password"
	if space != "" {
		x += " xmlns='" + stanza.Escape(space) + "'"
	}
	if text == "" {
		return x + "/>"
	}
	return x + ">" + stanza.Escape(text) + "</password>"
}

// splitPasswords returns payload with every bookmark password emptied,
// and the passwords, one per password element in document order ("" for
// an element that held none). A payload that cannot be read is refused
// rather than risk logging a password in it.
func splitPasswords(payload string) (string, []string, error) {
	spans, err := passwordSpans(payload)
	if err != nil || len(spans) == 0 {
		return payload, nil, err
	}
	passwords := make([]string, len(spans))
	var b strings.Builder
	last := 0
	for i, sp := range spans {
		passwords[i] = strings.TrimSpace(sp.text)
		if passwords[i] == "" {
			continue // nothing secret: the element stays as it was
		}
		b.WriteString(payload[last:sp.start])
		b.WriteString(passwordElement(sp.space, ""))
		last = sp.end
	}
	b.WriteString(payload[last:])
	if !slices.ContainsFunc(passwords, func(p string) bool { return p != "" }) {
		return payload, nil, nil
	}
	return b.String(), passwords, nil
}

// fillPasswords puts passwords (as splitPasswords returned them) back
// into the empty password elements of payload.
func fillPasswords(payload string, passwords []string) string {
	spans, err := passwordSpans(payload)
	if err != nil || len(passwords) == 0 {
		return payload
	}
	var b strings.Builder
	last := 0
	for i, sp := range spans {
		if i >= len(passwords) || passwords[i] == "" || strings.TrimSpace(sp.text) != "" {
			continue
		}
		b.WriteString(payload[last:sp.start])
		b.WriteString(passwordElement(sp.space, passwords[i]))
		last = sp.end
	}
	b.WriteString(payload[last:])
	return b.String()
}

// pepNode reads one of the account's nodes with the passwords kept beside
// the log back in its items: for the account's own clients only.
func (s *Service) pepNode(ctx context.Context, acct, node string) (pepdomain.Node, error) {
	n, err := s.cfg.PEP.Node(ctx, acct, node)
	if err != nil || !slices.ContainsFunc(n.Items, func(it pepdomain.Item) bool { return it.HasPassword }) {
		return n, err
	}
	passwords, err := s.cfg.PEP.Passwords(ctx, acct, node)
	if err != nil {
		return n, err
	}
	items := slices.Clone(n.Items) // n shares its items with the folded state
	for i, it := range items {
		if it.HasPassword {
			items[i].Payload = fillPasswords(it.Payload, passwords[it.ID])
		}
	}
	n.Items = items
	return n, nil
}
