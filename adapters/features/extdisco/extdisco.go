// Package extdisco answers External Service Discovery (XEP-0215) for the
// STUN and TURN servers the operator configured (`annals serve
// --external-service`), so that Conversations, Dino and other clients
// can place calls through them. With a shared secret (coturn's
// static-auth-secret) each TURN service comes with time-limited
// credentials made by the TURN REST convention
// (draft-uberti-behave-turn-rest): the username is
// "<unix expiry>:<bare JID>" and the password base64(HMAC-SHA1(secret,
// username)), which the TURN server checks without asking anyone.
//
// Only the accounts of the domain asked are answered: their sessions
// here. Users of other servers are forbidden: this server's relays are
// for its own users.
//
// None of this is events: the services are configuration, given at
// start, and credentials are computed on each request from the secret
// and the clock; nothing is recorded and nothing needs replaying.
package extdisco

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
)

// NS is XEP-0215's namespace.
const NS = "urn:xmpp:extdisco:2"

// Bounds of the configuration, each with its flag in annals serve.
const (
	// MaxServices bounds --external-service: a client is sent the whole
	// list on every request.
	MaxServices = 32
	// DefaultTTL is how long credentials last (--turn-ttl): a day, as
	// Prosody's default, so a client asks again about daily.
	DefaultTTL = 24 * time.Hour
	// MinTTL and MaxTTL bound --turn-ttl: shorter than a minute and a
	// call could not start before its credentials ran out; longer than
	// 30 days and a leaked password is a standing pass to the relay.
	MinTTL = time.Minute
	MaxTTL = 30 * 24 * time.Hour
)

// External is one service outside XMPP the server tells its users of.
type External struct {
	Type      string // stun, stuns, turn or turns
	Host      string // a DNS name, or an IP address (IPv6 without brackets)
	Port      int
	Transport string // udp or tcp
}

// ErrService is the error ParseService wraps for a malformed service.
var ErrService = errors.New("extdisco: malformed service")

// ParseService reads a service as a STUN or TURN URI (RFC 7064, RFC
// 7065) with its port and transport written out:
//
//	turn:turn.example.org:3478?transport=udp
//	turns:turn.example.org:5349?transport=tcp
//	stun:[2001:db8::1]:3478?transport=udp
//
// NOTSPEC(RFC 7064 §3.1, RFC 7065 §3.1): the port and the transport are
// required here, though the URIs have defaults for both, and a stun URI
// takes a transport, which RFC 7064 does not define: XEP-0215 tells
// clients both, and an operator who writes them says what the relay
// really listens on.
func ParseService(s string) (External, error) {
	bad := func(why string) (External, error) {
		return External{}, fmt.Errorf("%w %q: %s; write e.g. turn:turn.example.org:3478?transport=udp", ErrService, s, why)
	}
	typ, rest, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return bad("no type: start with stun:, stuns:, turn: or turns:")
	case typ != "stun" && typ != "stuns" && typ != "turn" && typ != "turns":
		return bad("the type is stun, stuns, turn or turns")
	}
	addr, query, ok := strings.Cut(rest, "?")
	if !ok {
		return bad("no transport: end with ?transport=udp or ?transport=tcp")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return bad("give host:port (an IPv6 address in brackets)")
	}
	if !validHost(host) {
		return bad("the host is neither a DNS name nor an IP address")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return bad("the port is a number from 1 to 65535")
	}
	transport, ok := strings.CutPrefix(query, "transport=")
	if !ok || (transport != "udp" && transport != "tcp") {
		return bad("the only parameter is transport=udp or transport=tcp")
	}
	return External{Type: typ, Host: strings.ToLower(host), Port: int(p), Transport: transport}, nil
}

// validHost: an IP address, or a DNS name of letters, digits and
// hyphens (RFC 1123 §2.1).
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// String is the service as ParseService reads it.
func (e External) String() string {
	return e.Type + ":" + net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) + "?transport=" + e.Transport
}

// relay says whether e is a TURN relay: the services the secret is for.
func (e External) relay() bool { return e.Type == "turn" || e.Type == "turns" }

// Credentials are the TURN REST credentials (draft-uberti-behave-turn-rest
// §2.2) for account bare until expires: the username
// "<unix seconds>:<bare>", the password the base64 of its HMAC-SHA1 under
// secret.
func Credentials(secret []byte, bare string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + bare
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Config is what the operator configured.
type Config struct {
	Domains  []string   // the domains served; their accounts may ask
	Services []External // at most MaxServices, each once
	// Secret is the TURN server's shared secret; nil: no credentials.
	// With one, some service must be a relay.
	Secret []byte
	TTL    time.Duration // how long credentials last; 0: DefaultTTL
}

// Service answers external service discovery.
type Service struct {
	cfg Config
	now func() time.Time
}

// New checks cfg and returns the service.
func New(cfg Config) (*Service, error) {
	if len(cfg.Services) > MaxServices {
		return nil, fmt.Errorf("extdisco: %d services; at most %d", len(cfg.Services), MaxServices)
	}
	for i, e := range cfg.Services {
		if slices.Contains(cfg.Services[:i], e) {
			return nil, fmt.Errorf("extdisco: %s is given twice", e)
		}
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < MinTTL || cfg.TTL > MaxTTL {
		return nil, fmt.Errorf("extdisco: credentials lasting %v: give between %v and %v", cfg.TTL, MinTTL, MaxTTL)
	}
	if cfg.Secret != nil {
		if len(cfg.Secret) == 0 {
			return nil, errors.New("extdisco: the TURN secret is empty")
		}
		if !slices.ContainsFunc(cfg.Services, External.relay) {
			return nil, errors.New("extdisco: a TURN secret is given, but no turn: or turns: service to use it")
		}
	}
	return &Service{cfg: cfg, now: time.Now}, nil
}

// Register answers on the server's domain, and advertises NS there, when
// there are services to tell of: without, the server does not claim the
// feature.
func (s *Service) Register(m *mux.Mux) {
	if len(s.cfg.Services) == 0 {
		return
	}
	m.Handle(mux.Server, NS, s.serve, NS)
}

func (s *Service) serve(_ context.Context, iq *mux.IQ) error {
	if iq.Type() != "get" {
		return stanza.Errorf("bad-request", "external services are asked for with an IQ get")
	}
	asker := iq.Session.JID()
	domain := asker.Domainpart()
	// XEP-0215 leaves who may ask to the server: its relays are for its
	// own accounts, each asking its own domain (Prosody forbids those
	// not on c2s alike).
	if !slices.Contains(s.cfg.Domains, domain) || (iq.From != "" && iq.From != domain) {
		return stanza.Errorf("forbidden", "this server's external services are for its own accounts")
	}
	bare := asker.Bare().String()
	switch iq.Payload.XMLName.Local {
	case "services":
		return s.services(iq, bare)
	case "credentials":
		return s.credentials(iq, bare)
	}
	return stanza.Errorf("bad-request", "ask for <services/> or <credentials/>")
}

// services lists the services (§3.1), or those of one type (§3.2), with
// credentials for the relays: clients such as Conversations use these
// and never ask for credentials apart.
func (s *Service) services(iq *mux.IQ, bare string) error {
	typ := iq.Payload.Attr("type")
	var b strings.Builder
	b.WriteString("<services xmlns='" + NS + "'")
	if typ != "" {
		b.WriteString(" type='" + stanza.Escape(typ) + "'")
	}
	b.WriteString(">")
	expires := s.expiry()
	for _, e := range s.cfg.Services {
		if typ == "" || e.Type == typ {
			s.service(&b, e, bare, expires)
		}
	}
	b.WriteString("</services>")
	iq.Result(b.String())
	return nil
}

// credentials answers a request for credentials at given services (§3.3):
// each named by type and host, and port if it says one. A service not
// configured here, or one without credentials, is item-not-found.
func (s *Service) credentials(iq *mux.IQ, bare string) error {
	asked := iq.Payload.Children()
	if len(asked) == 0 {
		return stanza.Errorf("bad-request", "name a <service/> by its type and host")
	}
	found := make([]bool, len(s.cfg.Services))
	for _, a := range asked {
		if a.XMLName.Local != "service" || a.XMLName.Space != NS || a.Attr("type") == "" || a.Attr("host") == "" {
			return stanza.Errorf("bad-request", "name each <service/> by its type and host")
		}
		port := 0
		if p := a.Attr("port"); p != "" {
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil {
				return stanza.Errorf("bad-request", "a port is a number from 0 to 65535")
			}
			port = int(n)
		}
		matched := false
		for i, e := range s.cfg.Services {
			if e.relay() && s.cfg.Secret != nil && e.Type == a.Attr("type") && strings.EqualFold(e.Host, a.Attr("host")) && (port == 0 || port == e.Port) {
				found[i], matched = true, true
			}
		}
		if !matched {
			return stanza.Errorf("item-not-found", "no "+a.Attr("type")+" service with credentials at "+a.Attr("host")+" here")
		}
	}
	var b strings.Builder
	b.WriteString("<credentials xmlns='" + NS + "'>")
	expires := s.expiry()
	for i, e := range s.cfg.Services {
		if found[i] {
			s.service(&b, e, bare, expires)
		}
	}
	b.WriteString("</credentials>")
	iq.Result(b.String())
	return nil
}

// expiry is when credentials made now expire, to the second: the
// username says it in whole seconds.
func (s *Service) expiry() time.Time {
	return time.Unix(s.now().Add(s.cfg.TTL).Unix(), 0).UTC()
}

// service writes e's <service/>, with credentials for bare if it is a
// relay and there is a secret.
func (s *Service) service(b *strings.Builder, e External, bare string, expires time.Time) {
	b.WriteString("<service type='" + e.Type + "' host='" + stanza.Escape(e.Host) + "' port='" + strconv.Itoa(e.Port) + "' transport='" + e.Transport + "'")
	if e.relay() && s.cfg.Secret != nil {
		user, pass := Credentials(s.cfg.Secret, bare, expires)
		// XEP-0082 DateTime, in UTC as §2 asks.
		b.WriteString(" restricted='1' username='" + stanza.Escape(user) + "' password='" + pass + "' expires='" + expires.Format(time.RFC3339) + "'")
	}
	b.WriteString("/>")
}
