package sasl

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"annals.im/annals/adapters/credentials"
)

// Conditions a failed exchange reports, named after the XMPP SASL failure
// elements (RFC 6120 §6.5) that the c2s adapter sends for them.
var (
	ErrNotAuthorized    = errors.New("sasl: not-authorized")
	ErrMalformedRequest = errors.New("sasl: malformed-request")
	ErrInvalidMechanism = errors.New("sasl: invalid-mechanism")
	ErrInvalidAuthzid   = errors.New("sasl: invalid-authzid")
)

// Lookup returns the credentials of the account whose local name (the SASL
// authentication identity) is user, or credentials.ErrNotFound.
type Lookup func(ctx context.Context, user string) (credentials.Credentials, error)

// Exchange is one server-side authentication in progress.
type Exchange interface {
	// Next takes the client's next message and returns the server's reply.
	// done reports that authentication succeeded; reply is then the
	// additional data to send with success (may be nil).
	Next(ctx context.Context, in []byte) (reply []byte, done bool, err error)
	// User is the user the client named: authenticated only once Next
	// reported done, and "" if the client has not named one yet.
	User() string
}

// Mechanisms lists what Start accepts, strongest first.
var Mechanisms = []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}

// MaxUsername is the longest username an exchange looks up: RFC 7622
// §3.3.1 caps a JID's local part at 1023 bytes, so a longer name is no
// account. Refusing it before the lookup keeps a client's megabyte of name
// out of every map, query and log line behind this package.
const MaxUsername = 1023

// Option adjusts an exchange.
type Option func(*options)

type options struct {
	snonce string
	// verify checks a PLAIN password: Credentials.Verify, replaced by
	// tests that count the work done.
	verify func(credentials.Credentials, string) bool
}

// WithNonce fixes the server's nonce part: for test vectors only.
func WithNonce(n string) Option { return func(o *options) { o.snonce = n } }

// Start begins an exchange with mechanism mech. fakeSaltKey keys the salts
// made up for unknown users, so that the same unknown name always gets the
// same salt; it must be used for nothing else, or the salts reveal what
// else it computes.
func Start(mech string, lookup Lookup, fakeSaltKey []byte, opts ...Option) (Exchange, error) {
	o := options{verify: credentials.Credentials.Verify}
	for _, opt := range opts {
		opt(&o)
	}
	switch mech {
	case "PLAIN":
		return &plain{lookup: lookup, fakeKey: fakeSaltKey, verify: o.verify}, nil
	case "SCRAM-SHA-1", "SCRAM-SHA-256":
		return &scram{lookup: lookup, fakeKey: fakeSaltKey, sha256: mech == "SCRAM-SHA-256", snonce: o.snonce}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrInvalidMechanism, mech)
}

// fakeSalt is the salt made up for an unknown user: stable per name, and
// unpredictable without the key.
func fakeSalt(key []byte, user string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(user))
	return m.Sum(nil)[:16]
}

// plain is RFC 4616: authzid NUL authcid NUL password, in one message.
type plain struct {
	lookup  Lookup
	fakeKey []byte
	verify  func(credentials.Credentials, string) bool
	user    string
}

func (p *plain) Next(ctx context.Context, in []byte) ([]byte, bool, error) {
	parts := bytes.Split(in, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return nil, false, fmt.Errorf("%w: PLAIN wants authzid NUL authcid NUL password", ErrMalformedRequest)
	}
	if len(parts[1]) > MaxUsername {
		return nil, false, fmt.Errorf("%w: username longer than %d bytes", ErrNotAuthorized, MaxUsername)
	}
	authz, user, password := string(parts[0]), string(parts[1]), string(parts[2])
	p.user = user
	c, err := p.lookup(ctx, user)
	switch {
	case errors.Is(err, credentials.ErrNotFound):
		// Derive against made-up credentials with the same salt length
		// and iteration count as real ones: an unknown name costs the
		// same time as a wrong password, so timing does not tell which
		// names exist. The stored key is empty, so nothing matches.
		c = credentials.Credentials{SHA256: credentials.Keys{Salt: fakeSalt(p.fakeKey, user), Iterations: credentials.Iterations}}
	case err != nil:
		return nil, false, err
	}
	if !p.verify(c, password) {
		return nil, false, ErrNotAuthorized
	}
	if authz != "" && authz != user && !strings.HasPrefix(authz, user+"@") {
		return nil, false, fmt.Errorf("%w: %q may not act as %q", ErrInvalidAuthzid, user, authz)
	}
	return nil, true, nil
}

func (p *plain) User() string { return p.user }

// scram is the server side of SCRAM-SHA-1 and SCRAM-SHA-256.
type scram struct {
	lookup  Lookup
	fakeKey []byte
	sha256  bool
	snonce  string

	step        int
	gs2Header   string
	clientFirst string // client-first-message-bare
	serverFirst string
	nonce       string
	user        string
	keys        credentials.Keys
	known       bool // the user exists
}

func (s *scram) hash() func() hash.Hash {
	if s.sha256 {
		return sha256.New
	}
	return sha1.New
}

func (s *scram) User() string { return s.user }

func (s *scram) Next(ctx context.Context, in []byte) ([]byte, bool, error) {
	s.step++
	switch s.step {
	case 1:
		return s.first(ctx, string(in))
	case 2:
		return s.final(string(in))
	}
	return nil, false, fmt.Errorf("%w: the exchange is over", ErrMalformedRequest)
}

func (s *scram) first(ctx context.Context, msg string) ([]byte, bool, error) {
	// gs2-header: cb-flag "," [authzid] ","
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return nil, false, fmt.Errorf("%w: no GS2 header", ErrMalformedRequest)
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, false, fmt.Errorf("%w: no GS2 header", ErrMalformedRequest)
	}
	switch {
	case flag == "n" || flag == "y":
	case strings.HasPrefix(flag, "p="):
		return nil, false, fmt.Errorf("%w: channel binding is not offered", ErrNotAuthorized)
	default:
		return nil, false, fmt.Errorf("%w: channel binding flag %q", ErrMalformedRequest, flag)
	}
	s.gs2Header, s.clientFirst = flag+","+authz+",", bare
	attrs, err := parseAttrs(bare)
	if err != nil {
		return nil, false, err
	}
	if _, ext := attrs['m']; ext {
		return nil, false, fmt.Errorf("%w: mandatory extension", ErrMalformedRequest)
	}
	user, err := unescapeName(attrs['n'])
	if err != nil {
		return nil, false, err
	}
	if len(user) > MaxUsername {
		return nil, false, fmt.Errorf("%w: username longer than %d bytes", ErrNotAuthorized, MaxUsername)
	}
	cnonce := attrs['r']
	if user == "" || cnonce == "" || strings.ContainsRune(cnonce, ',') {
		return nil, false, fmt.Errorf("%w: client-first-message needs n= and r=", ErrMalformedRequest)
	}
	if strings.HasPrefix(authz, "a=") {
		z, err := unescapeName(authz[2:])
		if err != nil {
			return nil, false, err
		}
		if z != user && !strings.HasPrefix(z, user+"@") {
			return nil, false, fmt.Errorf("%w: %q may not act as %q", ErrInvalidAuthzid, user, z)
		}
	} else if authz != "" {
		return nil, false, fmt.Errorf("%w: authzid %q", ErrMalformedRequest, authz)
	}
	s.user = user
	c, err := s.lookup(ctx, user)
	switch {
	case err == nil:
		s.known = true
		s.keys = c.SHA1
		if s.sha256 {
			s.keys = c.SHA256
		}
	case errors.Is(err, credentials.ErrNotFound):
		// Go on with a made-up salt: the client learns nothing until the
		// proof fails, as it would with a wrong password.
		s.keys = credentials.Keys{Salt: fakeSalt(s.fakeKey, user), Iterations: credentials.Iterations}
	default:
		return nil, false, err
	}
	if s.snonce == "" {
		b := make([]byte, 18)
		rand.Read(b)
		s.snonce = base64.RawStdEncoding.EncodeToString(b)
	}
	s.nonce = cnonce + s.snonce
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.keys.Salt) + ",i=" + strconv.Itoa(s.keys.Iterations)
	return []byte(s.serverFirst), false, nil
}

func (s *scram) final(msg string) ([]byte, bool, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, false, fmt.Errorf("%w: client-final-message without proof", ErrMalformedRequest)
	}
	withoutProof := msg[:i]
	attrs, err := parseAttrs(msg)
	if err != nil {
		return nil, false, err
	}
	cb, err := base64.StdEncoding.DecodeString(attrs['c'])
	if err != nil || string(cb) != s.gs2Header {
		return nil, false, fmt.Errorf("%w: channel binding data does not match the GS2 header", ErrNotAuthorized)
	}
	if attrs['r'] != s.nonce {
		return nil, false, fmt.Errorf("%w: nonce", ErrNotAuthorized)
	}
	proof, err := base64.StdEncoding.DecodeString(attrs['p'])
	if err != nil {
		return nil, false, fmt.Errorf("%w: proof is not base64", ErrMalformedRequest)
	}
	h := s.hash()
	authMessage := s.clientFirst + "," + s.serverFirst + "," + withoutProof
	if !s.known || len(proof) != h().Size() {
		return nil, false, ErrNotAuthorized
	}
	sig := hmacOf(h, s.keys.StoredKey, authMessage)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	k := h()
	k.Write(clientKey)
	if subtle.ConstantTimeCompare(k.Sum(nil), s.keys.StoredKey) != 1 {
		return nil, false, ErrNotAuthorized
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacOf(h, s.keys.ServerKey, authMessage))), true, nil
}

func hmacOf(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// parseAttrs reads "a=value,b=value"; a repeated attribute is malformed.
func parseAttrs(s string) (map[byte]string, error) {
	out := make(map[byte]string)
	for _, kv := range strings.Split(s, ",") {
		if len(kv) < 2 || kv[1] != '=' {
			return nil, fmt.Errorf("%w: attribute %q", ErrMalformedRequest, kv)
		}
		if _, dup := out[kv[0]]; dup {
			return nil, fmt.Errorf("%w: attribute %c twice", ErrMalformedRequest, kv[0])
		}
		out[kv[0]] = kv[2:]
	}
	return out, nil
}

// unescapeName decodes SCRAM's "=2C" (,) and "=3D" (=); any other "=" is
// malformed (RFC 5802 §5.1).
func unescapeName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", fmt.Errorf("%w: bad escape in %q", ErrMalformedRequest, s)
		}
		i += 2
	}
	return b.String(), nil
}
