// Package mam answers message archive management (XEP-0313, with the
// #extended queries and XEP-0441 preferences) on the sender's own archive
// and, for the room service, on a room's: the query form, RSM paging
// (XEP-0059), flip-page, metadata. It reads through Archive and never
// writes messages: archiving happens where messages are routed.
//
// Pages are bounded in items (archive.MaxPage) and bytes (PageBytes),
// and a page and its answer are sent as one write.
package mam

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/adapters/stanza/form"
	"annals.im/annals/domain/archive"
)

const (
	nsMAM         = "urn:xmpp:mam:2"
	nsMAMExtended = "urn:xmpp:mam:2#extended"
	nsRSM         = "http://jabber.org/protocol/rsm"
	nsData        = "jabber:x:data"
)

// Archive is what answering needs of the archives.
type Archive interface {
	Query(ctx context.Context, acct string, q archive.Query) (archive.Page, error)
	Bounds(ctx context.Context, acct string) (first, last archive.Entry, ok bool, err error)
	Prefs(ctx context.Context, acct string) (archive.Prefs, error)
	SetPrefs(ctx context.Context, acct string, p archive.Prefs) error
}

// Service answers MAM requests.
type Service struct {
	archive   Archive
	pageBytes int
	log       *slog.Logger
}

// New returns the service, reading from a, with pages of at most
// pageBytes of stanzas (0: no bound but archive.MaxPage items).
func New(a Archive, pageBytes int, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{archive: a, pageBytes: pageBytes, log: log}
}

// Register answers MAM on the sender's own account on m.
func (s *Service) Register(m *mux.Mux) {
	m.Handle(mux.Account, nsMAM, func(ctx context.Context, iq *mux.IQ) error {
		// serve answers with stanzas of its own (a page is many).
		defer iq.Answered()
		return s.serve(ctx, iq.Session, iq.Stanza, iq.Payload, iq.Session.JID().Bare().String(), iq.From, false)
	}, nsMAM, nsMAMExtended, nsMAM+"#groupchat-field", nsMAM+"#groupchat-available",
		// XEP-0424 §5: retracted messages are tombstones in the archive.
		"urn:xmpp:message-retract:1#tombstone")
}

// ServeRoom answers the MAM request e (payload q) from sess on the archive
// of room, which holds nothing but groupchat and has no preferences. The
// room service calls it once it has checked that sess may read the room.
func (s *Service) ServeRoom(ctx context.Context, sess mux.Session, e *stanza.Element, q stanza.Element, room string) error {
	return s.serve(ctx, sess, e, q, room, room, true)
}

// queryError is a stanza error with a text for the client.
type queryError struct {
	typ, cond, text string
}

func (e *queryError) Error() string { return e.cond + ": " + e.text }

func badRequest(format string, args ...any) error {
	return &queryError{"modify", "bad-request", fmt.Sprintf(format, args...)}
}

// serve answers the XEP-0313 requests on an archive: the user's own, or a
// room's (room true). The answer comes from `answerFrom` (the address
// asked; "" when none was); errors returned are for the log.
func (s *Service) serve(ctx context.Context, sess mux.Session, e *stanza.Element, q stanza.Element, acct, answerFrom string, room bool) error {
	to := sess.JID().String()
	from := ""
	if answerFrom != "" {
		from = " from='" + stanza.Escape(answerFrom) + "'"
	}
	reply := func(payload string) error {
		sess.Send(fmt.Sprintf(`<iq type='result' id='%s' to='%s'%s>%s</iq>`, stanza.Escape(e.Attr("id")), stanza.Escape(to), from, payload))
		return nil
	}
	answer := func(typ, cond, text string) error {
		se := &stanza.Error{Type: typ, Cond: cond, Text: text}
		sess.Send(fmt.Sprintf(`<iq type='error' id='%s' to='%s'%s>%s</iq>`, stanza.Escape(e.Attr("id")), stanza.Escape(to), from, se.XML()))
		return nil
	}
	fail := func(err error) error {
		var qe *queryError
		switch {
		case errors.As(err, &qe):
			return answer(qe.typ, qe.cond, qe.text)
		}
		se, ok := stanza.ErrorFor(err)
		answer(se.Type, se.Cond, se.Text)
		if ok {
			return nil
		}
		return fmt.Errorf("mam: archive of %s: %w", acct, err)
	}
	typ := e.Attr("type")
	switch {
	case q.XMLName.Local == "query" && typ == "get":
		return reply(mamForm)
	case q.XMLName.Local == "query" && typ == "set":
		query, err := parseMAMQuery(q)
		if err != nil {
			return fail(err)
		}
		query.Groupchat = query.Groupchat || room
		query.MaxBytes = s.pageBytes
		page, err := s.archive.Query(ctx, acct, query)
		if err != nil {
			return fail(err)
		}
		if query.Max == 0 && rsmMaxZero(q) {
			// RSM <max>0</max>: no items, only whether there are any.
			page.Complete, page.Entries = len(page.Entries) == 0, nil
		}
		queryID := ""
		if id := q.Attr("queryid"); id != "" {
			queryID = " queryid='" + stanza.Escape(id) + "'"
		}
		out := make([]string, 0, len(page.Entries)+1)
		head := "<message xmlns='" + stanza.NSClient + "' to='" + stanza.Escape(to) + "' from='" + stanza.Escape(acct) +
			"'><result xmlns='" + nsMAM + "'" + queryID + " id='"
		for _, en := range page.Entries {
			out = append(out, head+stanza.Escape(en.ID)+"'><forwarded xmlns='"+stanza.NSForward+"'><delay xmlns='"+stanza.NSDelay+
				"' stamp='"+stanza.Stamp(en.At)+"'/>"+en.Stanza+"</forwarded></result></message>")
		}
		var fin strings.Builder
		fin.WriteString("<fin xmlns='" + nsMAM + "'")
		if page.Complete {
			fin.WriteString(" complete='true'")
		}
		fin.WriteString("><set xmlns='" + nsRSM + "'>")
		if n := len(page.Entries); n > 0 {
			fin.WriteString("<first>" + stanza.Escape(page.Entries[0].ID) + "</first><last>" + stanza.Escape(page.Entries[n-1].ID) + "</last>")
		}
		fin.WriteString("</set></fin>")
		// The results and the answer go out together, in order.
		out = append(out, fmt.Sprintf(`<iq type='result' id='%s' to='%s'%s>%s</iq>`, stanza.Escape(e.Attr("id")), stanza.Escape(to), from, fin.String()))
		sess.SendAll(out)
		return nil
	case q.XMLName.Local == "metadata" && typ == "get":
		first, last, ok, err := s.archive.Bounds(ctx, acct)
		if err != nil {
			return fail(err)
		}
		if !ok {
			return reply("<metadata xmlns='" + nsMAM + "'/>")
		}
		return reply(fmt.Sprintf("<metadata xmlns='%s'><start id='%s' timestamp='%s'/><end id='%s' timestamp='%s'/></metadata>",
			nsMAM, stanza.Escape(first.ID), stanza.Stamp(first.At), stanza.Escape(last.ID), stanza.Stamp(last.At)))
	case q.XMLName.Local == "prefs" && room:
		return answer("cancel", "feature-not-implemented", "a room's archive has no preferences")
	case q.XMLName.Local == "prefs" && typ == "get":
		p, err := s.archive.Prefs(ctx, acct)
		if err != nil {
			return fail(err)
		}
		return reply(prefsXML(p))
	case q.XMLName.Local == "prefs" && typ == "set":
		p, err := parsePrefs(q)
		if err != nil {
			return fail(err)
		}
		if err := s.archive.SetPrefs(ctx, acct, p); err != nil {
			return fail(err)
		}
		return reply(prefsXML(p))
	}
	return answer("cancel", "feature-not-implemented", "")
}

// mamForm is the query form (XEP-0313 §4.1.1).
const mamForm = `<query xmlns='` + nsMAM + `'><x xmlns='` + nsData + `' type='form'>` +
	`<field type='hidden' var='FORM_TYPE'><value>` + nsMAM + `</value></field>` +
	`<field type='jid-single' var='with'/><field type='text-single' var='start'/><field type='text-single' var='end'/>` +
	`<field type='text-single' var='before-id'/><field type='text-single' var='after-id'/>` +
	`<field type='boolean' var='include-groupchat'/>` +
	`<field type='list-multi' var='ids'><validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:string'><open/></validate></field>` +
	`</x></query>`

// parseMAMQuery reads a query's form, RSM set and flip-page.
func parseMAMQuery(q stanza.Element) (archive.Query, error) {
	var query archive.Query
	for _, ch := range q.Children() {
		switch ch.XMLName {
		case xml.Name{Space: nsData, Local: "x"}:
			if err := parseMAMForm(ch, &query); err != nil {
				return query, err
			}
		case xml.Name{Space: nsRSM, Local: "set"}:
			if err := parseRSM(ch, &query); err != nil {
				return query, err
			}
		case xml.Name{Space: nsMAM, Local: "flip-page"}:
			query.Flip = true
		}
	}
	return query, nil
}

// parseMAMForm applies the query form x (XEP-0313 §4.1.1, and the
// #extended fields) to query.
func parseMAMForm(x stanza.Element, query *archive.Query) error {
	f, err := form.Parse(x)
	if err != nil {
		return badRequest("%v", err)
	}
	if f.Type != form.TypeSubmit && f.Type != "" {
		return badRequest("the form's type is %q, not submit", f.Type)
	}
	for _, fl := range f.Fields {
		one := fl.Value()
		switch name := fl.Var; name {
		case "with":
			if one == "" {
				continue
			}
			j, err := jid.Parse(one)
			if err != nil {
				return badRequest("with: %q is not a JID", one)
			}
			query.With = j.String()
		case "start", "end":
			if one == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, one)
			if err != nil {
				return badRequest("%s: %q is not an XEP-0082 DateTime", name, one)
			}
			switch {
			case name == "start":
				query.Start = t
			case wholeSecond(one):
				// NOTSPEC(XEP-0313 §4.1.1): an end given to the second
				// covers that whole second. Clients that keep stamps to the
				// second (poezio) ask up to the stamp of a message they
				// have; read as the instant, the query would leave out the
				// messages stored later in that second, and the client asks
				// again and shows one twice.
				query.End = t.Add(time.Second - time.Nanosecond)
			default:
				query.End = t
			}
		case "after-id":
			query.AfterID = one
		case "before-id":
			query.BeforeID = one
		case "include-groupchat":
			if query.Groupchat, err = fl.Bool(); err != nil {
				return badRequest("%v", err)
			}
		case "ids":
			for _, v := range fl.Values {
				if v = strings.TrimSpace(v); v != "" {
					query.IDs = append(query.IDs, v)
				}
			}
		default:
			// A filter the server ignored would answer a different question.
			return badRequest("unsupported field %q", name)
		}
	}
	if f.FormType != nsMAM {
		return badRequest("FORM_TYPE must be %s", nsMAM)
	}
	return nil
}

func parseRSM(set stanza.Element, query *archive.Query) error {
	for _, ch := range set.Children() {
		v := strings.TrimSpace(ch.Text())
		switch ch.XMLName.Local {
		case "max":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return badRequest("max: %q is not a count", v)
			}
			query.Max = n
		case "after":
			if v == "" {
				return badRequest("after needs an ID")
			}
			query.RSMAfter = v
		case "before":
			query.RSMBefore, query.Last = v, true
		case "index":
			return &queryError{"cancel", "feature-not-implemented", "RSM index is not supported; page with after and before"}
		}
	}
	return nil
}

// rsmMaxZero reports whether the query's RSM set says <max>0</max>.
func rsmMaxZero(q stanza.Element) bool {
	for _, ch := range q.Children() {
		if ch.XMLName == (xml.Name{Space: nsRSM, Local: "set"}) {
			for _, m := range ch.Children() {
				if m.XMLName.Local == "max" && strings.TrimSpace(m.Text()) == "0" {
					return true
				}
			}
		}
	}
	return false
}

func prefsXML(p archive.Prefs) string {
	var b strings.Builder
	def := p.Default
	if def == "" {
		def = archive.Always
	}
	b.WriteString("<prefs xmlns='" + nsMAM + "' default='" + def + "'><always>")
	for _, j := range p.Always {
		b.WriteString("<jid>" + stanza.Escape(j) + "</jid>")
	}
	b.WriteString("</always><never>")
	for _, j := range p.Never {
		b.WriteString("<jid>" + stanza.Escape(j) + "</jid>")
	}
	b.WriteString("</never></prefs>")
	return b.String()
}

func parsePrefs(q stanza.Element) (archive.Prefs, error) {
	p := archive.Prefs{Default: q.Attr("default")}
	for _, list := range q.Children() {
		for _, j := range list.Children() {
			if j.XMLName.Local != "jid" {
				continue
			}
			v := strings.TrimSpace(j.Text())
			switch list.XMLName.Local {
			case "always":
				p.Always = append(p.Always, v)
			case "never":
				p.Never = append(p.Never, v)
			}
		}
	}
	return p, nil
}

// wholeSecond reports an XEP-0082 DateTime without fractions of a second.
func wholeSecond(v string) bool {
	_, clock, ok := strings.Cut(v, "T")
	return ok && !strings.Contains(clock, ".")
}
