package kurrentdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// Options tune a Store; the zero value takes every default.
type Options struct {
	// SubscriptionBuffer is how many events a subscription receives ahead
	// of Next before it stops reading from the server. Default 1024.
	SubscriptionBuffer int
	// MaxBatch is the most events one Subscription.Next returns. Default 512.
	MaxBatch int
	// SearchPage is how many events a retry search reads at a time, walking
	// a stream back from its head. Default 256.
	SearchPage int
	// Log receives the client's own log lines: its debug and info lines
	// (discovery, reconnects) at Debug, warnings and errors at their level.
	// Nil discards them; the client would otherwise print to stdout.
	Log *slog.Logger
	// Codec, if set, seals what appends say before they are hashed and
	// written, and opens every event the store hands out (reads and
	// subscriptions). Nil: the log keeps what it is given, and readers
	// (audits) see what it keeps.
	Codec eventstore.Codec
}

// Defaults of Options.
const (
	DefaultSubscriptionBuffer = 1024
	DefaultMaxBatch           = 512
	DefaultSearchPage         = 256
)

func (o Options) withDefaults() Options {
	if o.SubscriptionBuffer <= 0 {
		o.SubscriptionBuffer = DefaultSubscriptionBuffer
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.SearchPage <= 0 {
		o.SearchPage = DefaultSearchPage
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Store is an eventstore.Store on a KurrentDB database.
type Store struct {
	db     *kurrentdb.Client
	opts   Options
	closed atomic.Bool
	// subs are the live subscriptions, closed with the store.
	mu   sync.Mutex
	subs map[*subscription]bool
}

var _ eventstore.Store = (*Store)(nil)

// Open connects to the KurrentDB database at url, a KurrentDB connection
// string such as "kurrentdb://localhost:2113?tls=false", and checks that it
// answers a read of $all.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	conf, err := kurrentdb.ParseConnectionString(url)
	if err != nil {
		return nil, fmt.Errorf("kurrentdb: connection string: %w", err)
	}
	opts = opts.withDefaults()
	conf.Logger = clientLog(opts.Log)
	db, err := kurrentdb.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("kurrentdb: %w", err)
	}
	s := &Store{db: db, opts: opts, subs: make(map[*subscription]bool)}
	rs, err := db.ReadAll(ctx, kurrentdb.ReadAllOptions{Direction: kurrentdb.Backwards, From: kurrentdb.End{}}, 1)
	if err == nil {
		_, err = rs.Recv()
		rs.Close()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		db.Close()
		return nil, fmt.Errorf("kurrentdb: %s does not answer a read of $all: %w", conf.Address, err)
	}
	return s, nil
}

// clientLog passes the client's log lines to log.
func clientLog(log *slog.Logger) kurrentdb.LoggingFunc {
	return func(level kurrentdb.LogLevel, format string, args ...any) {
		l := slog.LevelDebug
		switch level {
		case kurrentdb.LogWarn:
			l = slog.LevelWarn
		case kurrentdb.LogError:
			l = slog.LevelError
		}
		if log.Enabled(context.Background(), l) {
			log.Log(context.Background(), l, fmt.Sprintf(format, args...), "store", "kurrentdb")
		}
	}
}

// Close ends the store's subscriptions and its connection.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.mu.Lock()
	subs := s.subs
	s.subs = nil
	s.mu.Unlock()
	for sub := range subs {
		sub.Close()
	}
	return s.db.Close()
}

// Append implements eventstore.Store. See doc.go for the order of steps and
// what each guards against.
func (s *Store) Append(ctx context.Context, stream string, expected int64, evs ...event.Envelope) ([]event.Envelope, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	own, err := proposal(stream, expected, evs)
	if err != nil {
		return nil, err
	}
	if s.opts.Codec == nil {
		return s.append(ctx, stream, expected, own)
	}
	// Sealed once, before the claims: every attempt writes the same bytes
	// under the same hashes, and a retry is recognized by its IDs,
	// whatever bytes another call sealed them to.
	sealed, err := s.opts.Codec.Seal(ctx, own)
	if err != nil {
		return nil, fmt.Errorf("kurrentdb: seal: %w", err)
	}
	out, err := s.append(ctx, stream, expected, sealed)
	if err == nil {
		eventstore.Plain(out, own)
	}
	return out, err
}

// append stores own, as the log keeps them, after the stream's head.
func (s *Store) append(ctx context.Context, stream string, expected int64, own []event.Envelope) ([]event.Envelope, error) {
	prior, err := s.claim(ctx, stream, own)
	if err != nil {
		return nil, err
	}
	// search: whether the stream may already hold these events, and above
	// which version. A claim from an earlier attempt may be anywhere in the
	// stream; after a lost race, only above the head we raced at.
	search, above := prior, uint64(0)
	for {
		head, err := s.head(ctx, stream)
		if err != nil {
			return nil, err
		}
		if search {
			stored, err := s.find(ctx, stream, above, head.Version, own)
			if err != nil || stored != nil {
				return stored, err
			}
		}
		if expected != eventstore.Any && uint64(expected) != head.Version {
			return nil, fmt.Errorf("%w: %s is at version %d, expected %d", eventstore.ErrConflict, stream, head.Version, expected)
		}
		data := make([]kurrentdb.EventData, len(own))
		prev := head.Hash
		for i := range own {
			own[i].Version = head.Version + 1 + uint64(i)
			own[i].Hash = event.Chain(prev, own[i])
			prev = own[i].Hash
			if data[i], err = toEventData(own[i]); err != nil {
				return nil, err
			}
		}
		// Always the head just read, never Any: the hashes chain from it.
		state, err := streamState(int64(head.Version))
		if err != nil {
			return nil, err
		}
		_, err = s.db.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{StreamState: state}, data...)
		if code(err) == kurrentdb.ErrorCodeWrongExpectedVersion {
			// Another writer moved the head; it may have been a concurrent
			// retry of this same append, so look above the old head.
			if !search {
				search, above = true, head.Version
			}
			continue
		}
		if err != nil {
			return nil, s.wrap("append to "+stream, err)
		}
		return s.readBack(ctx, stream, head.Version, own)
	}
}

// proposal checks an append's arguments and returns the events to store,
// normalized, with Stream set. It writes nothing.
func proposal(stream string, expected int64, evs []event.Envelope) ([]event.Envelope, error) {
	if err := validStream(stream); err != nil {
		return nil, err
	}
	if _, err := streamState(expected); err != nil {
		return nil, err
	}
	return eventstore.Proposal(stream, evs)
}

// claim reserves each event ID for stream by creating the stream
// claimStream(ID). It reports whether some ID was already claimed for this
// stream (an earlier attempt of this append), and fails with
// ErrDuplicateID if one was claimed for another stream.
func (s *Store) claim(ctx context.Context, stream string, own []event.Envelope) (prior bool, err error) {
	body, err := json.Marshal(claim{Stream: stream})
	if err != nil {
		return false, err
	}
	for _, e := range own {
		// A fresh KurrentDB event ID per attempt: with the same one,
		// KurrentDB would take a second claim as an idempotent write and
		// hide that the ID was claimed before.
		c := kurrentdb.EventData{EventID: uuid.New(), EventType: claimType, ContentType: kurrentdb.ContentTypeJson, Data: body}
		_, err := s.db.AppendToStream(ctx, claimStream(e.ID), kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.NoStream{}}, c)
		if err == nil {
			continue
		}
		if code(err) != kurrentdb.ErrorCodeWrongExpectedVersion {
			return false, s.wrap("claim "+e.ID.String(), err)
		}
		owner, err := s.claimOwner(ctx, e.ID)
		if err != nil {
			return false, err
		}
		if owner != stream {
			return false, fmt.Errorf("%w: %s is claimed by stream %s", eventstore.ErrDuplicateID, e.ID, owner)
		}
		prior = true
	}
	return prior, nil
}

// claimOwner reads which stream claimed id.
func (s *Store) claimOwner(ctx context.Context, id ulid.ULID) (string, error) {
	rs, err := s.recorded(ctx, claimStream(id), kurrentdb.ReadStreamOptions{From: kurrentdb.Start{}, RequiresLeader: true}, 1)
	if err != nil {
		return "", err
	}
	if len(rs) == 0 {
		return "", fmt.Errorf("kurrentdb: claim stream of %s exists but cannot be read", id)
	}
	var c claim
	if err := json.Unmarshal(rs[0].Data, &c); err != nil || c.Stream == "" {
		return "", fmt.Errorf("kurrentdb: claim of %s: not a claim (%s)", id, rs[0].Data)
	}
	return c.Stream, nil
}

// head returns the last event of stream, or the zero Envelope (version 0,
// no hash) if the stream has none. Reads on the append path ask for the
// leader, which takes the appends: a follower (the nodePreference of the
// connection string) may lag and not yet hold a head or events it acked.
func (s *Store) head(ctx context.Context, stream string) (event.Envelope, error) {
	evs, err := s.envelopes(ctx, stream, kurrentdb.ReadStreamOptions{Direction: kurrentdb.Backwards, From: kurrentdb.End{}, RequiresLeader: true}, 1)
	if err != nil || len(evs) == 0 {
		return event.Envelope{}, err
	}
	return evs[0], nil
}

// find looks for own's events among stream's versions above..head,
// walking back from head. It returns them as stored if the stream holds
// all of them in order (a retry), nil if it holds none, and ErrDuplicateID
// if it holds only some, or others around them.
func (s *Store) find(ctx context.Context, stream string, above, head uint64, own []event.Envelope) ([]event.Envelope, error) {
	index := make(map[ulid.ULID]int, len(own))
	for i, e := range own {
		index[e.ID] = i
	}
	for top := head; top > above; {
		n := min(uint64(s.opts.SearchPage), top-above)
		page, err := s.envelopes(ctx, stream, kurrentdb.ReadStreamOptions{Direction: kurrentdb.Backwards, From: kurrentdb.Revision(top - 1), RequiresLeader: true}, n)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return nil, nil
		}
		first, ok, err := locate(stream, page, index)
		if err != nil {
			return nil, err
		}
		if ok {
			got, err := s.envelopes(ctx, stream, kurrentdb.ReadStreamOptions{From: kurrentdb.Revision(first - 1), RequiresLeader: true}, uint64(len(own)))
			if err != nil {
				return nil, err
			}
			if !sameIDs(got, own) {
				return nil, fmt.Errorf("%w: %s already holds some of this append's events at version %d, but not as this append", eventstore.ErrDuplicateID, stream, first)
			}
			return got, nil
		}
		top = page[len(page)-1].Version - 1
	}
	return nil, nil
}

// locate looks through page, a stream read backwards, for the IDs in index
// (event ID -> place in the append). The highest one found decides: the
// append's first event must be as many versions below it as its place.
func locate(stream string, page []event.Envelope, index map[ulid.ULID]int) (first uint64, ok bool, err error) {
	for _, e := range page {
		i, found := index[e.ID]
		if !found {
			continue
		}
		if e.Version <= uint64(i) {
			return 0, false, fmt.Errorf("%w: %s is %s version %d, out of place for this append", eventstore.ErrDuplicateID, e.ID, stream, e.Version)
		}
		return e.Version - uint64(i), true, nil
	}
	return 0, false, nil
}

// readBack reads the events an append just stored after version head, to
// return them with their $all positions: each event has its own, and the
// append's result carries only one.
func (s *Store) readBack(ctx context.Context, stream string, head uint64, own []event.Envelope) ([]event.Envelope, error) {
	got, err := s.envelopes(ctx, stream, kurrentdb.ReadStreamOptions{From: kurrentdb.Revision(head), RequiresLeader: true}, uint64(len(own)))
	if err != nil {
		return nil, err
	}
	if !sameIDs(got, own) {
		return nil, fmt.Errorf("kurrentdb: %s after version %d does not hold the events just appended", stream, head)
	}
	return got, nil
}

func sameIDs(got, want []event.Envelope) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].ID != want[i].ID {
			return false
		}
	}
	return true
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, max int) ([]event.Envelope, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	if max <= 0 {
		return nil, nil
	}
	if from == 0 {
		from = 1
	}
	evs, err := s.envelopes(ctx, stream, kurrentdb.ReadStreamOptions{From: kurrentdb.Revision(from - 1)}, uint64(max))
	if err != nil {
		return nil, err
	}
	return s.open(ctx, evs)
}

// SetCodec makes the store seal and open with c (Options.Codec), for a
// codec whose keys are kept in a bucket opened after the store. Call it
// before anything else uses the store.
func (s *Store) SetCodec(c eventstore.Codec) { s.opts.Codec = c }

// open opens what the codec sealed, if the store has one: in place, in
// the order given, which is the log's.
func (s *Store) open(ctx context.Context, evs []event.Envelope) ([]event.Envelope, error) {
	if s.opts.Codec == nil || len(evs) == 0 {
		return evs, nil
	}
	if err := s.opts.Codec.Open(ctx, evs); err != nil {
		return nil, fmt.Errorf("kurrentdb: open: %w", err)
	}
	return evs, nil
}

// ReadAll implements eventstore.Store. It reads $all forward and skips what
// is not the Annals log (see skipped), so a page may take several reads.
func (s *Store) ReadAll(ctx context.Context, after event.Position, max int) ([]event.Envelope, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	if max <= 0 {
		return nil, nil
	}
	var out []event.Envelope
	cursor := after
	for {
		// One more than asked: a read from a position includes the event
		// at that position, which was returned before. At least
		// minAllRead, so that a run of skipped events costs few reads.
		count := uint64(max - len(out) + 1)
		if count < minAllRead {
			count = minAllRead
		}
		rs, err := s.db.ReadAll(ctx, kurrentdb.ReadAllOptions{From: fromPosition(cursor)}, count)
		if err != nil {
			return nil, s.wrap("read $all", err)
		}
		var n uint64
		for {
			r, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rs.Close()
				return nil, s.wrap("read $all", err)
			}
			n++
			ev := r.OriginalEvent()
			pos := toPosition(ev.Position)
			if !cursor.Less(pos) {
				continue
			}
			cursor = pos
			if skipped(ev) {
				continue
			}
			e, err := toEnvelope(ev)
			if err != nil {
				rs.Close()
				return nil, err
			}
			out = append(out, e)
			if len(out) == max {
				rs.Close()
				return s.open(ctx, out)
			}
		}
		rs.Close()
		if n < count {
			return s.open(ctx, out) // the end of $all
		}
	}
}

// minAllRead is the fewest events ReadAll asks the server for at a time.
const minAllRead = 32

// envelopes reads up to count events of stream; a stream that does not
// exist has none.
func (s *Store) envelopes(ctx context.Context, stream string, opts kurrentdb.ReadStreamOptions, count uint64) ([]event.Envelope, error) {
	rs, err := s.recorded(ctx, stream, opts, count)
	if err != nil {
		return nil, err
	}
	out := make([]event.Envelope, 0, len(rs))
	for _, r := range rs {
		e, err := toEnvelope(r)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *Store) recorded(ctx context.Context, stream string, opts kurrentdb.ReadStreamOptions, count uint64) ([]*kurrentdb.RecordedEvent, error) {
	rs, err := s.db.ReadStream(ctx, stream, opts, count)
	if err != nil {
		if code(err) == kurrentdb.ErrorCodeResourceNotFound {
			return nil, nil
		}
		return nil, s.wrap("read "+stream, err)
	}
	defer rs.Close()
	var out []*kurrentdb.RecordedEvent
	for {
		r, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if code(err) == kurrentdb.ErrorCodeResourceNotFound {
			return nil, nil
		}
		if err != nil {
			return nil, s.wrap("read "+stream, err)
		}
		out = append(out, r.OriginalEvent())
	}
}

// code is the client's error code of err, ErrorCodeUnknown for others.
func code(err error) kurrentdb.ErrorCode {
	var e *kurrentdb.Error
	if err == nil || !errors.As(err, &e) {
		return kurrentdb.ErrorCodeUnknown
	}
	return e.Code()
}

func (s *Store) wrap(op string, err error) error {
	if s.closed.Load() || code(err) == kurrentdb.ErrorCodeConnectionClosed {
		return fmt.Errorf("kurrentdb: %s: %w (%v)", op, eventstore.ErrClosed, err)
	}
	return fmt.Errorf("kurrentdb: %s: %w", op, err)
}
