package c2s

// Contacts at other servers as PEP sees them (XEP-0163 §4.3 with
// XEP-0115): the resources of each contact elsewhere that sent available
// presence to an account here, with what they can do. Their features are
// learned as a local client's are, from the verification string (the
// same cache), asking the remote client once, from the account's bare
// JID, when the string is new. Available and mux.SessionAvailable then
// treat such a resource as a session: PEP notifications reach it through
// federation.
//
// Like local caps, this is not state of the log: presence re-teaches it.

import (
	"context"
	"html"
	"slices"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
)

// Bounds of the remote resources held: past maxRemoteResources a new one
// is not held (it gets no notifications until others go), nor more than
// maxResourcesPerContact of one contact.
const (
	maxRemoteResources     = 1 << 16
	maxResourcesPerContact = 16
	// maxAskers bounds the accounts here one remote resource is known to
	// have told of its presence.
	maxAskers = 64
)

type remoteResources struct {
	mu     sync.Mutex
	byBare map[string]map[string]*remoteSession // contact's bare JID -> resource
	n      int
}

// remoteSession is a contact's resource at another server, as a session
// PEP can deliver to.
type remoteSession struct {
	srv      *Server
	full     jid.JID
	askers   []string // the accounts here it sent its presence to
	ver      string
	features []string // sorted; nil while unknown
	known    bool
}

func (r *remoteSession) JID() jid.JID { return r.full }

// Send sends a stanza the server wrote (its from one of ours) to the
// remote resource.
func (r *remoteSession) Send(s string) {
	if from := rootAttr(s, "from"); from != "" {
		r.srv.sendRemote(from, r.full.String(), s)
	}
}

func (r *remoteSession) SendAll(ss []string) {
	for _, s := range ss {
		r.Send(s)
	}
}

func (r *remoteSession) Deliver(s string, _ bool) { r.Send(s) }

// Notifies implements mux.Capable.
func (r *remoteSession) Notifies(node string) (yes, known bool) {
	r.srv.remotes.mu.Lock()
	defer r.srv.remotes.mu.Unlock()
	if !r.known {
		return false, false
	}
	for _, f := range r.features {
		if f == node+"+notify" {
			return true, true
		}
	}
	return false, true
}

// toldOf is a remote resource as it came online to one account here.
type toldOf struct {
	*remoteSession
	acct string
}

// Owners implements the PEP feature's question of a session elsewhere:
// whose nodes it may hear of now it came online (the account here it
// told of its presence).
func (t toldOf) Owners() []string { return []string{t.acct} }

// remotePresence notes a presence from a contact elsewhere to acct:
// available keeps its resource and learns its caps, unavailable drops it.
func (s *Server) remotePresence(ctx context.Context, acct string, from jid.JID, e *element) {
	if from.Resourcepart() == "" {
		return
	}
	bare, res := from.Bare().String(), from.Resourcepart()
	if e.Attr("type") != "" {
		s.remoteGone(from)
		return
	}
	x, ok := e.Named(nsCaps, "c")
	ver, node := x.Attr("ver"), x.Attr("node")
	if !ok || x.Attr("hash") != "sha-1" {
		ver = "" // NOTSPEC(XEP-0115 §5.4), as for local clients: no events
	}
	s.remotes.mu.Lock()
	r, had := s.remotes.byBare[bare][res]
	switch {
	case had && r.ver == ver:
		known, told := r.known, slices.Contains(r.askers, acct)
		if !told && len(r.askers) < maxAskers {
			r.askers = append(r.askers, acct)
		}
		s.remotes.mu.Unlock()
		if known && !told {
			s.cfg.Mux.SessionAvailable(ctx, toldOf{r, acct})
		}
		return // else a change of show or status: nothing new to learn
	case !had && (s.remotes.n >= maxRemoteResources || len(s.remotes.byBare[bare]) >= maxResourcesPerContact):
		s.remotes.mu.Unlock()
		return
	case !had:
		if s.remotes.byBare == nil {
			s.remotes.byBare = map[string]map[string]*remoteSession{}
		}
		if s.remotes.byBare[bare] == nil {
			s.remotes.byBare[bare] = map[string]*remoteSession{}
		}
		r = &remoteSession{srv: s, full: from}
		s.remotes.byBare[bare][res] = r
		s.remotes.n++
	}
	if !slices.Contains(r.askers, acct) && len(r.askers) < maxAskers {
		r.askers = append(r.askers, acct)
	}
	r.ver, r.features, r.known = ver, nil, ver == ""
	s.remotes.mu.Unlock()
	if ver == "" {
		return // it asks for no events
	}
	s.caps.mu.Lock()
	features, cached := s.caps.byVer[ver]
	s.caps.mu.Unlock()
	if cached {
		s.remoteCapsKnown(ctx, r, ver, features)
		return
	}
	// Asked on the side: the answer comes through the other server.
	go s.askRemoteCaps(r, acct, node, ver)
}

// askRemoteCaps asks a remote client its features for ver and keeps
// them, verified, for every client that says the same.
func (s *Server) askRemoteCaps(r *remoteSession, acct, node, ver string) {
	ctx, cancel := context.WithTimeout(context.Background(), mux.TeardownTimeout)
	defer cancel()
	from, err := jid.Parse(acct)
	if err != nil {
		return
	}
	answer, err := s.AccountIQ(ctx, from, r.full, "get", "<query xmlns='"+nsDiscoInfo+"' node='"+stanza.Escape(node+"#"+ver)+"'/>")
	var features []string
	if err == nil && answer.Attr("type") == "result" {
		if q, ok := answer.Named(nsDiscoInfo, "query"); ok {
			got, verified := verifyCaps(q, ver)
			features = got // NOTSPEC(XEP-0115 §5.4) as for a local client: unverified, kept for this one only
			if verified {
				s.caps.remember(ver, got)
			}
		}
	}
	s.remoteCapsKnown(ctx, r, ver, features)
}

// remoteCapsKnown sets r's features for ver and tells the services it is
// available, unless its presence changed meanwhile.
func (s *Server) remoteCapsKnown(ctx context.Context, r *remoteSession, ver string, features []string) {
	s.remotes.mu.Lock()
	if r.ver != ver {
		s.remotes.mu.Unlock()
		return
	}
	r.features, r.known = features, true
	askers := slices.Clone(r.askers)
	s.remotes.mu.Unlock()
	for _, acct := range askers {
		s.cfg.Mux.SessionAvailable(ctx, toldOf{r, acct})
	}
}

// remoteGone forgets a contact's resource elsewhere that is not there.
func (s *Server) remoteGone(full jid.JID) {
	s.remotes.mu.Lock()
	defer s.remotes.mu.Unlock()
	bare := full.Bare().String()
	if _, ok := s.remotes.byBare[bare][full.Resourcepart()]; ok {
		delete(s.remotes.byBare[bare], full.Resourcepart())
		s.remotes.n--
		if len(s.remotes.byBare[bare]) == 0 {
			delete(s.remotes.byBare, bare)
		}
	}
}

// remoteAvailable returns the resources of a contact elsewhere that told
// an account here they are available.
func (s *Server) remoteAvailable(bare string) []mux.Session {
	s.remotes.mu.Lock()
	defer s.remotes.mu.Unlock()
	out := make([]mux.Session, 0, len(s.remotes.byBare[bare]))
	for _, r := range s.remotes.byBare[bare] {
		out = append(out, r)
	}
	return out
}

// rootAttr returns attribute name of a stanza this package or a feature
// serialized ("" when it has none), read from its start tag.
func rootAttr(s, name string) string {
	end := strings.IndexByte(s, '>')
	if end < 0 {
		return ""
	}
	tag := s[:end]
	i := strings.Index(tag, " "+name+"='")
	if i < 0 {
		return ""
	}
	rest := tag[i+len(name)+3:]
	j := strings.IndexByte(rest, '\'')
	if j < 0 {
		return ""
	}
	return html.UnescapeString(rest[:j])
}
