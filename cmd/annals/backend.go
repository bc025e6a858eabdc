package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"annals.im/annals/adapters/beside"
	"annals.im/annals/adapters/c2s"
	"annals.im/annals/adapters/credentials"
	"annals.im/annals/adapters/keys"
	"annals.im/annals/adapters/sealing"
	"annals.im/annals/adapters/secrets"
	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/jetstream"
	"annals.im/annals/eventstore/kurrentdb"
	"annals.im/annals/eventstore/sqlite"
)

// logStore is the log a command opened, and where what goes with it is
// kept: the embedded SQLite store in the data directory, whose file also
// holds the read models and the secrets' tables; or a cluster's log
// (--store nats://…), with the read models in a SQLite file of this node's
// own under --data and the secrets in a replicated key-value bucket that
// every node shares.
type logStore struct {
	eventstore.Store
	lite *sqlite.Store // the log, when it is the embedded store
	// openBucket opens a cluster's secrets (nil with lite), on first use
	// only: commands that read the log as kept (audit, node list) never
	// wait for the bucket's servers, which may be electing a leader.
	// Those that open it (rebuild among them: the content keys are there)
	// do when the store is opened.
	openBucket func(context.Context) (*jetstream.Bucket, error)
	bucketMu   sync.Mutex
	bucket     *jetstream.Bucket
	nc         *nats.Conn // a cluster's bus (and the bucket's servers); nil with lite
	closeNC    bool       // Close closes nc (the log's store does not)
	// readModels is the SQLite file of the read models.
	readModels string

	mu       sync.Mutex
	appended event.Position // the last position this process appended at

	// keys seal content beside the log (nil: the command reads the log
	// as kept, c.raw); keysDB holds the embedded store's, a cluster's are
	// in its bucket.
	keys   sealing.Keys
	keysDB *sql.DB
}

// cluster reports whether the log is shared with other nodes.
func (s *logStore) cluster() bool { return s.lite == nil }

// header is a store that can tell the position of the log's last event
// (both here can).
type header interface {
	Head(ctx context.Context) (event.Position, error)
}

// bucketName is the key-value bucket beside a JetStream log.
const bucketName = "ANNALS_BESIDE"

// storeURL is a parsed --store: nil for the embedded store, a NATS
// cluster's servers and the stream's settings, or a KurrentDB connection
// string.
type storeURL struct {
	servers  string // for nats.Connect: comma-separated URLs, without credentials
	user     string // the credentials of the URL's userinfo, unescaped
	password string
	stream   string
	prefix   string
	replicas int
	kurrent  string // the log on KurrentDB: its connection string
}

// kurrentSchemes are the connection strings KurrentDB-Client-Go takes.
var kurrentSchemes = []string{"kurrentdb", "kurrentdb+discover", "esdb", "esdb+discover"}

// parseStore reads --store: nats://[user:pass@]H1[:port],H2,…[?stream=…&prefix=…&replicas=N]
// (tls:// for TLS), where each host may omit the scheme and the port
// (4222). A password belongs in $ANNALS_STORE rather than on the command
// line, which other users see in ps.
func parseStore(s string) (*storeURL, error) {
	if s == "" || s == "sqlite" {
		return nil, nil
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if ok && slices.Contains(kurrentSchemes, scheme) {
		return &storeURL{kurrent: s}, nil
	}
	if !ok || (scheme != "nats" && scheme != "tls") {
		return nil, fmt.Errorf("%w: --store %q: give nats://HOST[:PORT],HOST…, kurrentdb://… (with --bus nats://…), or nothing for the embedded SQLite store in --data", errUsage, redact(s))
	}
	hosts, query, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("%w: --store: %v", errUsage, err)
	}
	u := &storeURL{stream: q.Get("stream"), prefix: q.Get("prefix")}
	if r := q.Get("replicas"); r != "" {
		if u.replicas, err = strconv.Atoi(r); err != nil || u.replicas < 1 || u.replicas > 5 {
			return nil, fmt.Errorf("%w: --store: replicas=%q: give 1 to 5 (3 survives the loss of one server)", errUsage, r)
		}
	}
	for k := range q {
		if k != "stream" && k != "prefix" && k != "replicas" {
			return nil, fmt.Errorf("%w: --store: unknown setting %q (stream, prefix, replicas)", errUsage, k)
		}
	}
	if at := strings.LastIndex(hosts, "@"); at >= 0 {
		// The credentials go to nats.UserInfo, not into the URLs, which
		// errors quote; the userinfo is percent-encoded, as in any URL.
		user, pass, _ := strings.Cut(hosts[:at], ":")
		if u.user, err = url.PathUnescape(user); err == nil {
			u.password, err = url.PathUnescape(pass)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: --store: the user or password is not percent-encoded (a space is %%20)", errUsage)
		}
		hosts = hosts[at+1:]
	}
	var urls []string
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(h, "nats://"), "tls://"))
		if h == "" {
			return nil, fmt.Errorf("%w: --store %q: an empty server", errUsage, redact(s))
		}
		if !strings.Contains(h, ":") || strings.HasSuffix(h, "]") {
			h += ":4222"
		}
		urls = append(urls, scheme+"://"+h)
	}
	u.servers = strings.Join(urls, ",")
	return u, nil
}

// natsOptions are the connection's credentials, if the URL had some.
func (u *storeURL) natsOptions() []nats.Option {
	if u.user == "" && u.password == "" {
		return nil
	}
	return []nats.Option{nats.UserInfo(u.user, u.password)}
}

// redact hides a password in a --store value quoted in a message.
func redact(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if at := strings.LastIndex(rest, "@"); ok && at >= 0 {
		return scheme + "://…@" + rest[at+1:]
	}
	return s
}

// openStore opens the log. With create false it refuses to make a new,
// empty store, so that a mistyped --data is not mistaken for an empty log.
func openStore(ctx context.Context, c Config, create bool, log *slog.Logger) (*logStore, error) {
	u, err := parseStore(c.Store)
	if err != nil {
		return nil, err
	}
	// A directory is one node's of a cluster, or one machine's log: a
	// forgotten --store (or $ANNALS_STORE) must not start an empty log
	// beside a node's read models, nor a cluster node use a log's files.
	if _, err := os.Stat(filepath.Join(c.Data, "readmodels.db")); err == nil && u == nil {
		return nil, fmt.Errorf("%w: %s holds a cluster node's read models: give --store (or $ANNALS_STORE)", errUsage, c.Data)
	}
	if _, err := os.Stat(c.DBPath()); err == nil && u != nil {
		return nil, fmt.Errorf("%w: %s holds the embedded store's log: give a cluster node a directory of its own", errUsage, c.Data)
	}
	if u == nil {
		lite, err := openSQLite(ctx, c, create, log)
		if err != nil {
			return nil, err
		}
		s := &logStore{Store: lite, lite: lite, readModels: lite.Path()}
		if !c.raw {
			if err := s.openCodec(ctx, c); err != nil {
				s.Close()
				return nil, err
			}
		}
		return s, nil
	}
	// A cluster's log exists apart from this directory: it holds this
	// node's read models only.
	if err := os.MkdirAll(c.Data, 0o750); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(c.Data, "readmodels.db")
	// The read models hold messages: readable by the owner only.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("read models: %w", err)
	}
	f.Close()
	var s *logStore
	if u.kurrent != "" {
		if s, err = openKurrent(ctx, c, u, path, log); err != nil {
			return nil, err
		}
	} else {
		js, err := jetstream.Connect(ctx, u.servers, jetstream.Options{Stream: u.stream, Prefix: u.prefix, Replicas: u.replicas}, u.natsOptions()...)
		if err != nil {
			return nil, fmt.Errorf("event store %s: %w", redact(c.Store), err)
		}
		open := func(ctx context.Context) (*jetstream.Bucket, error) {
			return js.Bucket(ctx, bucketName, u.replicas)
		}
		s = &logStore{Store: js, openBucket: open, nc: js.Conn(), readModels: path}
	}
	// Audits and the node list (c.raw) read the log as kept and never
	// wait for the bucket's servers; everything else opens what it reads,
	// with keys kept in the bucket.
	if !c.raw {
		if err := s.openCodec(ctx, c); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// openKurrent opens a log on KurrentDB, and beside it the NATS servers of
// --bus: KurrentDB keeps events only, and what a cluster keeps beside the
// log (credentials, the server's keys) and says between nodes needs a
// store with compare-and-set and a bus, which a small NATS cluster with
// JetStream gives (its bucket holds no event).
func openKurrent(ctx context.Context, c Config, u *storeURL, readModels string, log *slog.Logger) (*logStore, error) {
	bus, err := parseStore(c.Bus)
	if err != nil || bus == nil || bus.servers == "" {
		return nil, fmt.Errorf("%w: --store kurrentdb://… needs --bus nats://H1,H2,H3: the NATS servers (with JetStream) that keep the credentials and carry what the nodes say to each other", errUsage)
	}
	kd, err := kurrentdb.Open(ctx, u.kurrent, kurrentdb.Options{Log: log})
	if err != nil {
		return nil, fmt.Errorf("event store %s: %w", redact(c.Store), err)
	}
	nc, err := nats.Connect(bus.servers, append([]nats.Option{nats.Name("annals"), nats.MaxReconnects(-1)}, bus.natsOptions()...)...)
	if err != nil {
		kd.Close()
		return nil, fmt.Errorf("bus %s: %w", redact(c.Bus), err)
	}
	open := func(ctx context.Context) (*jetstream.Bucket, error) {
		return jetstream.OpenBucket(ctx, nc, bucketName, cmp.Or(bus.replicas, 3), 10*time.Second)
	}
	return &logStore{Store: kd, openBucket: open, nc: nc, closeNC: true, readModels: readModels}, nil
}

// bucketAttempts bounds how often kept asks for the bucket: a bucket whose
// leader was on a server just lost answers nothing until the others elect
// one (seen: the first command after a SIGKILL timed out).
const bucketAttempts = 3

// kept returns a cluster's bucket of secrets, opening it on first use.
func (s *logStore) kept(ctx context.Context) (*jetstream.Bucket, error) {
	s.bucketMu.Lock()
	defer s.bucketMu.Unlock()
	if s.bucket != nil {
		return s.bucket, nil
	}
	var err error
	for range bucketAttempts {
		if s.bucket, err = s.openBucket(ctx); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("the secrets kept beside the log: %w", err)
	}
	return s.bucket, nil
}

// Close closes the log, and the bus's connection when it is not the log's.
func (s *logStore) Close() error {
	err := s.Store.Close()
	if s.keysDB != nil {
		err = errors.Join(err, s.keysDB.Close())
	}
	if s.closeNC {
		s.nc.Close()
	}
	return err
}

func openSQLite(ctx context.Context, c Config, create bool, log *slog.Logger) (*sqlite.Store, error) {
	if create {
		if err := os.MkdirAll(c.Data, 0o750); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
		// The file holds credentials: readable by its owner only. SQLite
		// gives its -wal and -shm files the same mode.
		f, err := os.OpenFile(c.DBPath(), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("event store: %w", err)
		}
		f.Close()
	} else if _, err := os.Stat(c.DBPath()); err != nil {
		return nil, fmt.Errorf("no event store at %s (give --data or $ANNALS_DATA, or --store): %w", c.DBPath(), err)
	}
	d, _ := sqlite.ParseDurability(c.Durability)
	opts := sqlite.Options{Durability: d, Log: log, Metrics: c.metrics}
	if c.server {
		opts.PreallocateWAL, opts.LazyHeads = sqlite.ServerWAL, true
	}
	return sqlite.Open(ctx, c.DBPath(), opts)
}

// codecSetter is a store that seals and opens with a codec given after
// it is opened (all three here).
type codecSetter interface {
	SetCodec(eventstore.Codec)
}

// openCodec makes the store seal users' content under keys kept beside
// the log (adapters/sealing), wrapped under a key derived from the server
// secret: with the embedded store, in its own file; in a cluster, in the
// bucket every node shares, where the server secret is too.
func (s *logStore) openCodec(ctx context.Context, c Config) error {
	secret, err := s.serverSecret(ctx, c)
	if err != nil {
		return err
	}
	kek, err := keys.Derive(secret, keys.ContentKeys)
	if err != nil {
		return err
	}
	if s.cluster() {
		kv, err := s.kept(ctx)
		if err != nil {
			return err
		}
		s.keys, err = sealing.OpenKVKeys(kv, kek, sealing.KVOptions{})
	} else {
		if s.keysDB, err = sqlite.OpenDB(s.lite.Path()); err != nil {
			return fmt.Errorf("content keys: %w", err)
		}
		s.keys, err = sealing.OpenSQLKeys(ctx, s.keysDB, kek)
	}
	if err != nil {
		return err
	}
	s.Store.(codecSetter).SetCodec(sealing.New(s.keys, !c.unsealed))
	return nil
}

// describe names the log for people: its file, or its servers.
func (s *logStore) describe(c Config) string {
	if s.lite != nil {
		return c.DBPath()
	}
	return redact(c.Store)
}

// secrets opens what is kept beside the log: tables in db with the
// embedded store, the shared bucket in a cluster.
func (s *logStore) secrets(ctx context.Context, db *sql.DB, log *slog.Logger) (*credentials.Store, *secrets.Store, error) {
	if s.cluster() {
		b, err := s.kept(ctx)
		if err != nil {
			return nil, nil, err
		}
		return credentials.OnKV(b), secrets.OnKV(b), nil
	}
	creds, err := credentials.Open(ctx, db, log)
	if err != nil {
		return nil, nil, err
	}
	pwds, err := secrets.Open(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	return creds, pwds, nil
}

// serverSecret returns the server's secret (32 random bytes made on first
// use; see secretFile): in the data directory with the embedded store, in
// the shared bucket in a cluster, where the first node to start makes it.
func (s *logStore) serverSecret(ctx context.Context, c Config) ([]byte, error) {
	if !s.cluster() {
		// The file keeps the name it had when it keyed the made-up SCRAM
		// salts only: renaming it would make existing installations
		// forget it.
		return secretFile(filepath.Join(c.Data, "fake-salt.key"))
	}
	kv, err := s.kept(ctx)
	if err != nil {
		return nil, err
	}
	b, err := beside.Keep(ctx, kv, "server-secret", func() ([]byte, error) {
		b := make([]byte, 32)
		rand.Read(b)
		return b, nil
	})
	if err == nil && len(b) != 32 {
		err = errors.New("the server secret in the bucket is not 32 bytes")
	}
	if err != nil {
		return nil, fmt.Errorf("server secret: %w", err)
	}
	return b, nil
}

// selfSigned returns the self-signed certificate used without --tls-cert:
// in the data directory with the embedded store; in the shared bucket in a
// cluster, so that every node shows clients the same one.
func (s *logStore) selfSigned(ctx context.Context, c Config, domains []string) (tls.Certificate, error) {
	if !s.cluster() {
		return c2s.LoadOrCreateCert(c.Data, domains, time.Now())
	}
	kv, err := s.kept(ctx)
	if err != nil {
		return tls.Certificate{}, err
	}
	pair, err := beside.Keep(ctx, kv, "tls-self-signed", func() ([]byte, error) {
		cert, key, err := c2s.SelfSigned(domains, time.Now())
		return append(cert, key...), err
	})
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(pair, pair)
}

// Append is the log's, remembering how far this process has appended.
func (s *logStore) Append(ctx context.Context, stream string, expected int64, evs ...event.Envelope) ([]event.Envelope, error) {
	out, err := s.Store.Append(ctx, stream, expected, evs...)
	if err == nil && len(out) > 0 {
		s.mu.Lock()
		if p := out[len(out)-1].Position; s.appended.Less(p) {
			s.appended = p
		}
		s.mu.Unlock()
	}
	return out, err
}

// lastAppended is the position of the last event this process appended.
func (s *logStore) lastAppended() event.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appended
}

// linear maps a position onto a count the lags are differences of:
// events on the embedded store (its positions are dense), appends on
// JetStream (Sequence; most appends hold one event), KurrentDB's commit
// position (bytes of its log) otherwise.
func (s *logStore) linear(p event.Position) uint64 {
	if l, ok := s.Store.(interface{ Sequence(event.Position) uint64 }); ok {
		return l.Sequence(p)
	}
	return p.Commit
}

// Head returns the position of the log's last event.
func (s *logStore) Head(ctx context.Context) (event.Position, error) {
	h, ok := s.Store.(header)
	if !ok {
		return event.Position{}, errors.New("this event store cannot tell its head")
	}
	return h.Head(ctx)
}
