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
	// The event IDs' claims are kept in a second stream, Stream+"-IDS".
	Stream string
	// Prefix is the first subject token of every message in both streams;
	// default "annals". Two logs in one account need two prefixes.
	Prefix string
	// Replicas of the streams when Open creates them; default 3. An
	// existing stream keeps its own.
	Replicas int
	// MaxAppend bounds the events of one Append; default 400. The events
	// of an append are one message, so together they must also fit the
	// servers' max_payload (1 MiB by default).
	MaxAppend int
	// MaxCachedHeads bounds the stream heads the store remembers to skip a
	// read before an append; default 4096. Emptied when full.
	MaxCachedHeads int
	// Timeout bounds each request to the servers when the caller's context
	// has no earlier deadline; default 10s.
	Timeout time.Duration
	// PollInterval bounds how long a subscription with nothing to read
	// waits before it reads again without a tick (Subscribe); default 1s.
	PollInterval time.Duration
	// Codec, if set, seals what appends say before they are hashed and
	// published, and opens every event the store hands out (reads and
	// subscriptions). Nil: the log keeps what it is given, and readers
	// (audits) see what it keeps.
	Codec eventstore.Codec
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
	if o.MaxAppend <= 0 || o.MaxAppend > maxAppendEvents {
		o.MaxAppend = 400
	}
	if o.MaxCachedHeads <= 0 {
		o.MaxCachedHeads = 4096
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
}

// Store is the event log in one JetStream stream, with the claims of its
// event IDs in a second one.
type Store struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options
	own  bool // Close closes nc

	logSubj, idSubj string // "annals.log", "annals.id"
	tickSubj        string // "annals.tick", core NATS only
	log, ids        api    // the two streams
	mux             *mux   // where replies come

	// lagging, set only by tests, drops each direct answer the way a
	// replica that has not applied the tail yet would: true drops it.
	lagging func(msg) bool

	mu     sync.Mutex
	heads  map[string]head // stream -> the last event of a stored append, likely the stream's last
	closed bool
	done   chan struct{}
}

// api names a stream and the subjects of its two message-get APIs: the
// leader's, which has applied every acknowledged write, and the direct
// one, which any replica answers.
type api struct {
	stream, get, direct string
}

func newAPI(stream string) api {
	return api{stream, "$JS.API.STREAM.MSG.GET." + stream, "$JS.API.DIRECT.GET." + stream}
}

// head is the last event of a stored append, which Append may chain
// from: its version and hash. Only the last event of an append may be a
// head (see doc.go, Appends).
type head struct {
	version uint64
	hash    []byte
}

// Connect dials urls (comma-separated, as nats.Connect takes them) and
// opens the store over that connection, which Close then closes.
//
// more are further connection options (credentials, TLS), given apart from
// the URLs so that no error quotes a password.
func Connect(ctx context.Context, urls string, opts Options, more ...nats.Option) (*Store, error) {
	nc, err := nats.Connect(urls, append([]nats.Option{nats.Name("annals"), nats.MaxReconnects(-1)}, more...)...)
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

// Open opens the store over nc, creating its two streams if they do not
// exist. Existing ones must hold their subject tree, allow direct gets,
// and have no limit that would remove a message.
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
		logSubj: opts.Prefix + ".log", idSubj: opts.Prefix + ".id", tickSubj: opts.Prefix + ".tick",
		log: newAPI(opts.Stream), ids: newAPI(opts.Stream + "-IDS"),
		heads: make(map[string]head), done: make(chan struct{})}
	if s.mux, err = newMux(nc); err != nil {
		return nil, err
	}
	for _, st := range []struct{ name, subj, what string }{
		{s.log.stream, s.logSubj, "Annals event log"},
		{s.ids.stream, s.idSubj, "Annals event log: the claims of its event IDs"},
	} {
		if err := s.ensureStream(ctx, st.name, st.subj, st.what); err != nil {
			s.mux.sub.Unsubscribe()
			return nil, fmt.Errorf("jetstream: stream %s: %w", st.name, err)
		}
	}
	return s, nil
}

// ensureStream creates stream name on subj.> or checks the one that
// exists. A busy cluster may not answer in time: it asks again, a few
// times.
func (s *Store) ensureStream(ctx context.Context, name, subj, what string) error {
	cfg := jetstream.StreamConfig{
		Name:              name,
		Description:       what,
		Subjects:          []string{subj + ".>"},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxAge:            0,
		MaxMsgsPerSubject: -1,
		Storage:           jetstream.FileStorage,
		Replicas:          s.opts.Replicas,
		DenyDelete:        true,
		DenyPurge:         true,
		AllowDirect:       true,
	}
	var err error
	for attempt := 0; attempt < openAttempts; attempt++ {
		actx, cancel := s.bound(ctx)
		var st jetstream.Stream
		st, err = s.js.Stream(actx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			st, err = s.js.CreateStream(actx, cfg)
		}
		cancel()
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			continue // another store created it first
		}
		if err == nil {
			return checkConfig(st.CachedInfo().Config, subj)
		}
		if ctx.Err() != nil || !transient(err) {
			return err
		}
		backoff(ctx, attempt)
	}
	return err
}

// openAttempts bounds how often Open asks for a stream.
const openAttempts = 5

// checkConfig refuses an existing stream this store cannot keep its
// promises on.
func checkConfig(c jetstream.StreamConfig, subj string) error {
	switch {
	case len(c.Subjects) != 1 || c.Subjects[0] != subj+".>":
		return fmt.Errorf("subjects %v are not [%s.>]", c.Subjects, subj)
	case !c.AllowDirect:
		return errors.New("direct get is off (allow_direct)")
	case c.MaxAge != 0 || c.MaxMsgs > 0 || c.MaxBytes > 0 || c.MaxMsgsPerSubject > 0:
		return errors.New("limits would delete messages")
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
	s.mux.sub.Unsubscribe()
	if s.own {
		s.nc.Close()
	}
	return nil
}

// SetCodec makes the store seal and open with c (Options.Codec), for a
// codec whose keys live in the store's own bucket and so can only be made
// after Connect. Call it before anything else uses the store.
func (s *Store) SetCodec(c eventstore.Codec) { s.opts.Codec = c }

// open opens what the codec sealed, if the store has one: in place, in
// the order given, which is the log's.
func (s *Store) open(ctx context.Context, evs []event.Envelope) ([]event.Envelope, error) {
	if s.opts.Codec == nil || len(evs) == 0 {
		return evs, nil
	}
	if err := s.opts.Codec.Open(ctx, evs); err != nil {
		return nil, fmt.Errorf("jetstream: open: %w", err)
	}
	return evs, nil
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

// logSubject is where the append whose first event is version first of
// stream is: the message holding its events.
func (s *Store) logSubject(stream string, first uint64) string {
	return s.streamPrefix(stream) + strconv.FormatUint(first, 10)
}

// streamFilter matches every append of stream.
func (s *Store) streamFilter(stream string) string { return s.streamPrefix(stream) + "*" }

// streamPrefix starts the subject of every append of stream.
func (s *Store) streamPrefix(stream string) string { return s.logSubj + "." + Token(stream) + "." }

// claimSubject is generation gen (from 1) of the claim of id.
func (s *Store) claimSubject(id string, gen int) string {
	return s.idSubj + "." + id + "." + strconv.Itoa(gen)
}

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
