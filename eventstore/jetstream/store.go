package jetstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// Options configure a Store. The zero value is usable: every field has a
// default.
type Options struct {
	// Stream is the JetStream stream that holds the log; default "ANNALS".
	Stream string
	// Prefix is the first subject token of every message in it; default
	// "annals". Two logs in one account need two prefixes.
	Prefix string
	// Replicas of the stream when Open creates it; default 3. An existing
	// stream keeps its own.
	Replicas int
	// DuplicateWindow is JetStream's Nats-Msg-Id window when Open creates
	// the stream; default 2 minutes. Retries older than it are still
	// recognized, by the ID subjects (see doc.go).
	DuplicateWindow time.Duration
	// MaxAppend bounds the events of one Append: each takes two messages of
	// one atomic batch, and the server refuses batches over its
	// max_batch_size (1000 by default); default 400.
	MaxAppend int
	// MaxCachedHeads bounds the stream heads the store remembers to skip a
	// read before an append; default 4096. Emptied when full.
	MaxCachedHeads int
	// Timeout bounds each request to the servers when the caller's context
	// has no earlier deadline; default 10s.
	Timeout time.Duration
}

func (o *Options) defaults() {
	if o.Stream == "" {
		o.Stream = "ANNALS"
	}
	if o.Prefix == "" {
		o.Prefix = "annals"
	}
	if o.Replicas <= 0 {
		o.Replicas = 3
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = 2 * time.Minute
	}
	if o.MaxAppend <= 0 {
		o.MaxAppend = 400
	}
	if o.MaxCachedHeads <= 0 {
		o.MaxCachedHeads = 4096
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
}

// Store is the event log in one JetStream stream.
type Store struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options
	own  bool // Close closes nc

	logSubj, idSubj string // "annals.log", "annals.id"
	apiGet, direct  string // leader and direct message-get subjects

	// lagging, set only by tests, cuts each direct page as a replica that
	// has not applied the tail yet would.
	lagging func([]msg) []msg

	mu     sync.Mutex
	heads  map[string]head // stream -> an event known to be stored, likely its last
	closed bool
	done   chan struct{}
}

// head is a stored event that Append chains from: its version and hash.
type head struct {
	version uint64
	hash    []byte
}

// Connect dials urls (comma-separated, as nats.Connect takes them) and
// opens the store over that connection, which Close then closes.
func Connect(ctx context.Context, urls string, opts Options) (*Store, error) {
	nc, err := nats.Connect(urls, nats.Name("annals"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("jetstream: connect %s: %w", urls, err)
	}
	s, err := Open(ctx, nc, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// Open opens the store over nc, creating the stream if it does not exist.
// An existing stream must allow atomic batches and hold both subject trees.
func Open(ctx context.Context, nc *nats.Conn, opts Options) (*Store, error) {
	opts.defaults()
	if strings.ContainsAny(opts.Prefix, ".*> \t\r\n") || opts.Prefix == "" {
		return nil, fmt.Errorf("jetstream: prefix %q is not one subject token", opts.Prefix)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	s := &Store{nc: nc, js: js, opts: opts,
		logSubj: opts.Prefix + ".log", idSubj: opts.Prefix + ".id",
		apiGet: "$JS.API.STREAM.MSG.GET." + opts.Stream, direct: "$JS.API.DIRECT.GET." + opts.Stream,
		heads: make(map[string]head), done: make(chan struct{})}
	cfg := jetstream.StreamConfig{
		Name:               opts.Stream,
		Description:        "Annals event log",
		Subjects:           []string{s.logSubj + ".>", s.idSubj + ".>"},
		Retention:          jetstream.LimitsPolicy,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxAge:             0,
		MaxMsgsPerSubject:  -1,
		Storage:            jetstream.FileStorage,
		Replicas:           opts.Replicas,
		Duplicates:         opts.DuplicateWindow,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowDirect:        true,
		AllowAtomicPublish: true,
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	st, err := js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		st, err = js.Stream(ctx, opts.Stream)
	}
	// A server older than 2.12 ignores allow_atomic and would store a
	// batch's messages one by one: the stream as the server describes it
	// must say that it takes batches.
	if err == nil {
		err = s.checkConfig(st.CachedInfo().Config)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: stream %s: %w", opts.Stream, err)
	}
	return s, nil
}

// checkConfig refuses an existing stream this store cannot keep its
// promises on.
func (s *Store) checkConfig(c jetstream.StreamConfig) error {
	have := map[string]bool{}
	for _, subj := range c.Subjects {
		have[subj] = true
	}
	switch {
	case !c.AllowAtomicPublish:
		return errors.New("atomic publish is off (allow_atomic)")
	case !c.AllowDirect:
		return errors.New("direct get is off (allow_direct)")
	case !have[s.logSubj+".>"] || !have[s.idSubj+".>"]:
		return fmt.Errorf("subjects %v lack %s.> or %s.>", c.Subjects, s.logSubj, s.idSubj)
	case c.MaxAge != 0 || c.MaxMsgs > 0 || c.MaxBytes > 0 || c.MaxMsgsPerSubject > 0:
		return errors.New("limits would delete events")
	}
	return nil
}

// Close implements eventstore.Store. Subscriptions end with it.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.done)
	if s.own {
		s.nc.Close()
	}
	return nil
}

func (s *Store) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// bound gives ctx the store's Timeout unless it ends sooner.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < s.opts.Timeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.opts.Timeout)
}

// maxToken bounds an encoded stream name: a subject travels in every
// protocol line and header, and servers cap those at 4 KiB by default,
// while a stream name may have 3200 bytes (each escaped up to 3 times).
const maxToken = 200

// Token encodes a stream name as one subject token. Letters, digits and
// "-_@+=" stand for themselves; every other byte, '.' (the separator), '*'
// and '>' (wildcards), white space and non-ASCII included, is "%XX". An
// encoding longer than maxToken is "%%" and the hex SHA-256 of the name:
// "%%" never starts an escaped name, so the two forms cannot meet.
func Token(stream string) string {
	var b strings.Builder
	for i := 0; i < len(stream); i++ {
		c := stream[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '@', c == '+', c == '=':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
		if b.Len() > maxToken {
			sum := sha256.Sum256([]byte(stream))
			return "%%" + hex.EncodeToString(sum[:])
		}
	}
	return b.String()
}

// eventSubject is where version v of stream is: one subject per event, so
// that "version v exists" is one lookup and one expected-sequence check.
func (s *Store) eventSubject(stream string, v uint64) string {
	return s.logSubj + "." + Token(stream) + "." + strconv.FormatUint(v, 10)
}

func (s *Store) streamFilter(stream string) string {
	return s.logSubj + "." + Token(stream) + ".*"
}

func (s *Store) idSubject(e event.Envelope) string { return s.idSubj + "." + e.ID.String() }

// cached returns the head the store last saw for stream.
func (s *Store) cached(stream string) (head, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.heads[stream]
	return h, ok
}

// remember records an event of stream as its likely head: any stored event
// is a sound place to chain from, and the server refuses the append if it
// is not the last one.
func (s *Store) remember(stream string, h head) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.heads[stream]; ok && old.version >= h.version {
		return
	}
	if len(s.heads) >= s.opts.MaxCachedHeads {
		clear(s.heads)
	}
	s.heads[stream] = h
}

var _ eventstore.Store = (*Store)(nil)
