package upload

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/upload"
)

// Namespaces the service answers.
const (
	NS      = "urn:xmpp:http:upload:0"
	nsInfo  = "http://jabber.org/protocol/disco#info"
	nsItems = "http://jabber.org/protocol/disco#items"
	nsPing  = "urn:xmpp:ping"
	nsData  = "jabber:x:data"
)

// DefaultPath is where the HTTP handler is mounted unless told otherwise.
const DefaultPath = "/upload/"

// DefaultSweepEvery is how often expired files are looked for.
const DefaultSweepEvery = time.Minute

// A PUT has DefaultPutGrace, plus its size at DefaultPutMinRate, to send
// its body: a client that stalls does not hold a connection and a
// temporary file for ever. 16 KiB/s is a poor mobile link; the largest
// file by default (100 MiB) then has 1 h 47 min.
const (
	DefaultPutGrace   = 30 * time.Second
	DefaultPutMinRate = 16 << 10 // bytes a second
)

// Slots grants slots: the account streams (app/accounts).
type Slots interface {
	UploadSlot(ctx context.Context, acct string, r upload.Request, now time.Time) (upload.Granted, error)
}

// Config is what the service needs.
type Config struct {
	Domain  string   // its own: upload.<first domain>
	Domains []string // the server's: only their accounts get slots
	Slots   Slots
	Dir     string // where the files are kept: <data>/uploads
	// URL is the HTTP listener's public base URL, e.g.
	// https://upload.example.org:5443; Path is where Handler is mounted
	// on it (DefaultPath).
	URL  string
	Path string
	// Limits bound the slots (upload.Defaults for the zero fields).
	Limits upload.Limits
	// SweepEvery: how often Run deletes the expired files
	// (DefaultSweepEvery).
	SweepEvery time.Duration
	// PutGrace and PutMinRate bound the time a PUT takes: the grace
	// plus its size at the rate (DefaultPutGrace, DefaultPutMinRate).
	PutGrace   time.Duration
	PutMinRate int64
	Now        func() time.Time // the clock; time.Now when nil
	Log        *slog.Logger
	// Metrics counts the bytes of the files stored (adapters/metrics);
	// nil counts nothing.
	Metrics Metrics
}

// Metrics is told of each file stored, by its size in bytes.
type Metrics interface {
	Uploaded(bytes int64)
}

type noMetrics struct{}

func (noMetrics) Uploaded(int64) {}

// Service is the upload service.
type Service struct {
	cfg  Config
	base string // URL + Path, ending in /

	// putting counts the PUTs in progress by slot: the sweeper leaves
	// their directories alone, though their window may be over (a
	// large file at a slow pace takes longer than the window, which
	// bounds only when an upload starts).
	mu      sync.Mutex
	putting map[string]int
}

// New returns the service, ready to be mounted on cfg.Domain and its
// Handler on cfg.Path.
func New(cfg Config) (*Service, error) {
	if cfg.Domain == "" || cfg.Slots == nil || cfg.Dir == "" {
		return nil, errors.New("upload: a domain, slots and a directory are needed")
	}
	if err := CheckURL(cfg.URL); err != nil {
		return nil, err
	}
	cfg.Path = cmp.Or(cfg.Path, DefaultPath)
	if !strings.HasPrefix(cfg.Path, "/") || !strings.HasSuffix(cfg.Path, "/") {
		return nil, fmt.Errorf("upload: the path %q must start and end with /", cfg.Path)
	}
	d := upload.Defaults()
	l := &cfg.Limits
	l.MaxSize, l.Quota, l.MaxOpen, l.PutWindow = cmp.Or(l.MaxSize, d.MaxSize), cmp.Or(l.Quota, d.Quota), cmp.Or(l.MaxOpen, d.MaxOpen), cmp.Or(l.PutWindow, d.PutWindow)
	cfg.SweepEvery = cmp.Or(cfg.SweepEvery, DefaultSweepEvery)
	cfg.PutGrace, cfg.PutMinRate = cmp.Or(cfg.PutGrace, DefaultPutGrace), cmp.Or(cfg.PutMinRate, DefaultPutMinRate)
	if cfg.PutGrace < 0 || cfg.PutMinRate < 0 {
		return nil, errors.New("upload: a PUT's grace and minimum rate must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Service{cfg: cfg, base: strings.TrimSuffix(cfg.URL, "/") + cfg.Path, putting: map[string]int{}}, nil
}

// SetURL changes the public base URL, before the service serves (the
// listener's port is known once it listens).
func (s *Service) SetURL(u string) error {
	if err := CheckURL(u); err != nil {
		return err
	}
	s.base = strings.TrimSuffix(u, "/") + s.cfg.Path
	s.cfg.URL = u
	return nil
}

// CheckURL checks a public base URL: absolute, https, no query.
// NOTSPEC(XEP-0363 §4): http is allowed for a loopback host, for tests
// and a reverse proxy on the same machine; the XEP asks for TLS.
func CheckURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" || p.RawQuery != "" || p.Fragment != "" || p.User != nil {
		return fmt.Errorf("upload: the base URL %q is not an absolute URL without query, e.g. https://upload.example.org:5443", u)
	}
	switch p.Scheme {
	case "https":
	case "http":
		if ip := net.ParseIP(p.Hostname()); p.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("upload: the base URL %q: http only on loopback; XEP-0363 asks for https", u)
		}
	default:
		return fmt.Errorf("upload: the base URL %q is not http(s)", u)
	}
	return nil
}

// Register mounts the service on m and lists it among the server's
// items, where clients look for it (XEP-0363 §2).
func (s *Service) Register(m *mux.Mux) {
	m.Mount(s.cfg.Domain, s)
	m.Item(mux.Server, mux.Item{JID: s.cfg.Domain, Name: "HTTP File Upload"})
}

// Handle takes every stanza sent to the service's domain.
func (s *Service) Handle(ctx context.Context, sess mux.Session, e *stanza.Element, to jid.JID) error {
	typ := e.Attr("type")
	switch {
	case typ == "error" || e.XMLName.Local == "presence":
		return nil
	case e.XMLName.Local == "message":
		return s.fail(sess, e, to, stanza.Errorf("service-unavailable", ""), "")
	case typ == "result":
		return nil
	case typ != "get" && typ != "set":
		return s.fail(sess, e, to, stanza.Errorf("bad-request", ""), "")
	}
	q, ok := e.Child()
	if !ok || to.Localpart() != "" || to.Resourcepart() != "" {
		return s.fail(sess, e, to, stanza.Errorf("service-unavailable", ""), "")
	}
	switch {
	case typ == "get" && q.XMLName.Space == nsInfo && q.XMLName.Local == "query" && q.Attr("node") == "":
		s.result(sess, e, to, s.info())
	case typ == "get" && q.XMLName.Space == nsItems && q.XMLName.Local == "query" && q.Attr("node") == "":
		s.result(sess, e, to, "<query xmlns='"+nsItems+"'/>")
	case typ == "get" && q.XMLName.Space == nsPing && q.XMLName.Local == "ping":
		s.result(sess, e, to, "")
	case q.XMLName.Space == NS && q.XMLName.Local == "request":
		if typ != "get" {
			return s.fail(sess, e, to, stanza.Errorf("bad-request", "a slot request is an IQ get"), "")
		}
		return s.slot(ctx, sess, e, q, to)
	default:
		return s.fail(sess, e, to, stanza.Errorf("service-unavailable", ""), "")
	}
	return nil
}

// info is the service's disco#info (XEP-0363 §2), with the largest file
// it takes (XEP-0128).
func (s *Service) info() string {
	return "<query xmlns='" + nsInfo + "'><identity category='store' type='file' name='HTTP File Upload'/>" +
		"<feature var='" + NS + "'/><feature var='" + nsInfo + "'/><feature var='" + nsItems + "'/><feature var='" + nsPing + "'/>" +
		"<x xmlns='" + nsData + "' type='result'><field var='FORM_TYPE' type='hidden'><value>" + NS + "</value></field>" +
		"<field var='max-file-size'><value>" + strconv.FormatInt(s.cfg.Limits.MaxSize, 10) + "</value></field></x></query>"
}

// Request is a slot request as a client sent it.
type Request struct {
	Filename, ContentType string
	Size                  int64
}

// ParseRequest reads a <request/> (XEP-0363 §4): filename and size are
// required, size a decimal count of bytes; content-type is optional.
// The values are checked by the domain (upload.Decide).
func ParseRequest(q stanza.Element) (Request, error) {
	r := Request{Filename: q.Attr("filename"), ContentType: q.Attr("content-type")}
	size := q.Attr("size")
	if r.Filename == "" || size == "" {
		return r, fmt.Errorf("%w: a request needs a filename and a size", upload.ErrInvalid)
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n <= 0 || size[0] == '+' {
		return r, fmt.Errorf("%w: the size %q is not a count of bytes", upload.ErrInvalid, size)
	}
	r.Size = n
	return r, nil
}

// slot grants a slot, or refuses it.
func (s *Service) slot(ctx context.Context, sess mux.Session, e *stanza.Element, q stanza.Element, to jid.JID) error {
	who := sess.JID()
	if !slices.Contains(s.cfg.Domains, who.Domainpart()) {
		// Its quota would be nobody's: only the accounts here upload.
		return s.fail(sess, e, to, stanza.Errorf("forbidden", "only accounts of this server upload here"), "")
	}
	r, err := ParseRequest(q)
	if err != nil {
		return s.refuse(sess, e, to, err)
	}
	token := newToken()
	slot := SlotID(token)
	now := s.cfg.Now()
	g, err := s.cfg.Slots.UploadSlot(ctx, who.Bare().String(), upload.Request{Slot: slot, Filename: r.Filename, Size: r.Size,
		ContentType: r.ContentType, Limits: s.cfg.Limits, Stored: s.stored}, now)
	if err != nil {
		return s.refuse(sess, e, to, err)
	}
	if err := s.keep(g); err != nil {
		// The grant counts against the quota until it expires, though
		// nothing can be uploaded to it.
		s.cfg.Log.Error("upload: a slot was granted but not kept", "account", who.Bare().String(), "slot", slot, "err", err)
		return s.fail(sess, e, to, stanza.Errorf("internal-server-error", ""), "")
	}
	u := s.URL(token, g.Filename)
	s.cfg.Log.Info("upload: slot granted", "account", who.Bare().String(), "slot", slot, "size", g.Size)
	s.result(sess, e, to, "<slot xmlns='"+NS+"'><put url='"+stanza.Escape(u)+"'/><get url='"+stanza.Escape(u)+"'/></slot>")
	return nil
}

// URL is where a slot's file is put and got: the token, then the name
// percent-encoded (XEP-0363 §4 asks for non-ASCII to be).
func (s *Service) URL(token, filename string) string {
	return s.base + token + "/" + url.PathEscape(filename)
}

// tokenBytes is the secret in a slot's URLs: 128 bits from crypto/rand.
const tokenBytes = 16

func newToken() string {
	b := make([]byte, tokenBytes)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// SlotID is the id of the slot of token: what the log and the data
// directory name it by, so that neither tells the URL.
func SlotID(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:upload.SlotIDLen/2])
}

// refuse answers a domain error; file-too-large says the limit (XEP-0363
// §5).
func (s *Service) refuse(sess mux.Session, e *stanza.Element, to jid.JID, err error) error {
	se, ok := stanza.ErrorFor(err)
	if !ok {
		s.cfg.Log.Error("upload: a slot request failed", "err", err)
	}
	extra := ""
	if errors.Is(err, upload.ErrTooLarge) {
		se.Text = "File too large. The maximum file size is " + strconv.FormatInt(s.cfg.Limits.MaxSize, 10) + " bytes"
		extra = "<file-too-large xmlns='" + NS + "'><max-file-size>" + strconv.FormatInt(s.cfg.Limits.MaxSize, 10) + "</max-file-size></file-too-large>"
	}
	return s.fail(sess, e, to, se, extra)
}

// fail answers e with error se, from the address it was sent to, with an
// application-specific condition extra (serialized, or "").
func (s *Service) fail(sess mux.Session, e *stanza.Element, to jid.JID, se *stanza.Error, extra string) error {
	x := se.XML()
	if extra != "" {
		x = strings.TrimSuffix(x, "</error>") + extra + "</error>"
	}
	sess.Send("<" + e.XMLName.Local + " xmlns='" + stanza.NSClient + "' type='error' id='" + stanza.Escape(e.Attr("id")) + "' from='" +
		stanza.Escape(to.String()) + "' to='" + stanza.Escape(sess.JID().String()) + "'>" + x + "</" + e.XMLName.Local + ">")
	return nil
}

func (s *Service) result(sess mux.Session, e *stanza.Element, to jid.JID, payload string) {
	sess.Send("<iq xmlns='" + stanza.NSClient + "' type='result' id='" + stanza.Escape(e.Attr("id")) + "' from='" +
		stanza.Escape(to.String()) + "' to='" + stanza.Escape(sess.JID().String()) + "'>" + payload + "</iq>")
}
