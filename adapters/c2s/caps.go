package c2s

// Entity capabilities (XEP-0115): what each client can do, learned from
// the caps element of its presence. The server asks one client per
// verification string (disco#info to node#ver), checks the answer
// against the string, and keeps it for every client that says the same;
// PEP notifications go to the clients that ask for them (+notify).
//
// Caps are not state of the log: they are the clients' own, re-learned
// after a restart from the next presence.

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"slices"
	"sort"
	"strings"
	"sync"

	"annals.im/annals/adapters/stanza"
)

const (
	nsCaps      = "http://jabber.org/protocol/caps"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	capsPrefix  = "caps-" // ids of the server's disco#info questions
	// maxCapsVers bounds the verification strings kept; past it half go,
	// and are asked again. maxCapsAsks bounds questions in flight.
	maxCapsVers = 4096
	maxCapsAsks = 1024
	// maxCapsFeatures bounds the features kept of one client.
	maxCapsFeatures = 512
)

// capsCache keeps the features of each verified verification string and
// the questions in flight.
type capsCache struct {
	mu    sync.Mutex
	byVer map[string][]string // ver -> features, sorted
	asks  map[string]capsAsk  // question id -> what it asks
}

type capsAsk struct {
	c   *conn
	ver string
}

// capsOf is a session's capabilities.
type capsOf struct {
	ver      string
	features []string // sorted; nil while unknown
	known    bool
	initial  bool // its initial presence waits for them (SessionAvailable)
}

// Notifies implements mux.Capable.
func (c *conn) Notifies(node string) (yes, known bool) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if !c.caps.known {
		return false, false
	}
	_, yes = slices.BinarySearch(c.caps.features, node+"+notify")
	return yes, true
}

// learnCaps reads the caps of c's available presence e. initial: it is
// the session's first; the services are told it is available once its
// features are known (at once when they are, or when it has none).
func (c *conn) learnCaps(ctx context.Context, e *element, initial bool) {
	s := c.srv
	x, ok := e.Named(nsCaps, "c")
	ver, node := x.Attr("ver"), x.Attr("node")
	s.mu.Lock()
	if !ok || ver == "" || x.Attr("hash") != "sha-1" {
		// NOTSPEC(XEP-0115 §5.4): only sha-1 strings are verified; a
		// client with another hash (or none) is taken as asking for no
		// events, as XEP-0163 §4.1 has it without caps.
		c.caps = capsOf{known: true}
		s.mu.Unlock()
		if initial {
			s.cfg.Mux.SessionAvailable(ctx, c)
		}
		return
	}
	if c.caps.ver == ver && c.caps.known {
		s.mu.Unlock()
		if initial {
			s.cfg.Mux.SessionAvailable(ctx, c)
		}
		return
	}
	c.caps = capsOf{ver: ver, initial: initial}
	s.mu.Unlock()
	s.caps.mu.Lock()
	features, cached := s.caps.byVer[ver]
	asking := false
	for _, a := range s.caps.asks {
		asking = asking || a.ver == ver && a.c == c
	}
	id := ""
	if !cached && !asking && len(s.caps.asks) < maxCapsAsks {
		if s.caps.asks == nil {
			s.caps.asks = map[string]capsAsk{}
		}
		id = capsPrefix + stanza.NewID()
		s.caps.asks[id] = capsAsk{c: c, ver: ver}
	}
	s.caps.mu.Unlock()
	switch {
	case cached:
		c.capsKnown(ctx, ver, features)
	case id != "":
		c.write("<iq type='get' id='" + id + "' from='" + stanza.Escape(c.domain) + "' to='" + stanza.Escape(c.jid.String()) +
			"'><query xmlns='" + nsDiscoInfo + "' node='" + stanza.Escape(node+"#"+ver) + "'/></iq>")
	case !asking:
		c.capsKnown(ctx, ver, nil) // too many questions in flight: none, for now
	}
}

// capsAnswer takes a client's answer to the server's disco#info question
// (an IQ result or error whose id the server gave); false: not one.
func (c *conn) capsAnswer(ctx context.Context, e *element) bool {
	id := e.Attr("id")
	if to := e.Attr("to"); !strings.HasPrefix(id, capsPrefix) || to != "" && to != c.domain {
		return false
	}
	s := c.srv
	s.caps.mu.Lock()
	a, ok := s.caps.asks[id]
	if ok && a.c == c {
		delete(s.caps.asks, id)
	}
	s.caps.mu.Unlock()
	if !ok || a.c != c {
		return true // not this session's to answer
	}
	var features []string
	if q, ok := e.Named(nsDiscoInfo, "query"); ok && e.Attr("type") == "result" {
		if got, verified := verifyCaps(q, a.ver); verified {
			features = got
			s.caps.remember(a.ver, features)
		} else {
			// NOTSPEC(XEP-0115 §5.4): an answer that does not match its
			// string is not cached; this client still gets what it asked.
			features = got
		}
	}
	c.capsKnown(ctx, a.ver, features)
	return true
}

// capsKnown sets c's features for ver, and tells the services of its
// initial presence if it waited for them.
func (c *conn) capsKnown(ctx context.Context, ver string, features []string) {
	s := c.srv
	s.mu.Lock()
	if c.caps.ver != ver {
		s.mu.Unlock()
		return // its presence changed meanwhile
	}
	initial := c.caps.initial
	c.caps = capsOf{ver: ver, features: features, known: true}
	s.mu.Unlock()
	if initial {
		s.cfg.Mux.SessionAvailable(ctx, c)
	}
}

// verifyCaps reads a disco#info answer's features and reports whether
// it hashes to ver (XEP-0115 §5.1, sha-1).
func verifyCaps(q element, ver string) (features []string, ok bool) {
	type identity struct{ category, typ, lang, name string }
	var ids []identity
	var forms []string
	for _, ch := range q.Children() {
		switch ch.XMLName.Local {
		case "identity":
			ids = append(ids, identity{ch.Attr("category"), ch.Attr("type"), ch.Attr("lang"), ch.Attr("name")})
		case "feature":
			if len(features) < maxCapsFeatures {
				features = append(features, ch.Attr("var"))
			}
		case "x":
			if f, ok := capsForm(ch); ok {
				forms = append(forms, f)
			}
		}
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := ids[i], ids[j]
		return a.category+"/"+a.typ+"/"+a.lang+"/"+a.name < b.category+"/"+b.typ+"/"+b.lang+"/"+b.name
	})
	slices.Sort(features)
	slices.Sort(forms)
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id.category + "/" + id.typ + "/" + id.lang + "/" + id.name + "<")
	}
	for _, f := range features {
		b.WriteString(f + "<")
	}
	for _, f := range forms {
		b.WriteString(f)
	}
	sum := sha1.Sum([]byte(b.String()))
	return slices.Compact(features), base64.StdEncoding.EncodeToString(sum[:]) == ver
}

// capsForm is an extended form's part of the string (FORM_TYPE first,
// then each field by var, its values sorted), or false for a form
// without FORM_TYPE, which does not count.
func capsForm(x element) (string, bool) {
	var formType string
	var fields []string
	for _, f := range x.Children() {
		if f.XMLName.Local != "field" {
			continue
		}
		var values []string
		for _, v := range f.Children() {
			if v.XMLName.Local == "value" {
				values = append(values, v.Text())
			}
		}
		if f.Attr("var") == "FORM_TYPE" {
			if len(values) > 0 {
				formType = values[0]
			}
			continue
		}
		slices.Sort(values)
		field := f.Attr("var") + "<"
		for _, v := range values {
			field += v + "<"
		}
		fields = append(fields, field)
	}
	if formType == "" {
		return "", false
	}
	slices.Sort(fields)
	return formType + "<" + strings.Join(fields, ""), true
}

// remember keeps the verified features of ver, for every client that
// says the same; past maxCapsVers half the strings go.
func (cc *capsCache) remember(ver string, features []string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if len(cc.byVer) >= maxCapsVers {
		for v := range cc.byVer {
			if len(cc.byVer) < maxCapsVers/2 {
				break
			}
			delete(cc.byVer, v)
		}
	}
	if cc.byVer == nil {
		cc.byVer = map[string][]string{}
	}
	cc.byVer[ver] = features
}

// forget drops the questions c's answers were awaited for (it ended).
func (cc *capsCache) forget(c *conn) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for id, a := range cc.asks {
		if a.c == c {
			delete(cc.asks, id)
		}
	}
}
