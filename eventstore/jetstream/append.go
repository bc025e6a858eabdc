package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// hdrExpectedSub is the one header of JetStream's publish API this store
// uses: with "0", the server stores the message only if its subject holds
// none. nats-server 2.9 checks it when it applies the message, on every
// replica in log order; later versions also before. (2.9 checks other
// values only before proposing, so two writes in flight could both pass:
// the store never uses them.)
const hdrExpectedSub = "Nats-Expected-Last-Subject-Sequence"

// maxAttempts bounds how often one Append starts over: after a conflict
// under Any, or while the servers elect a leader; maxStale how often of
// those because an ID was claimed for a later append of the stream.
const (
	maxAttempts = 100
	maxStale    = 10
)

// headerRoom is what the headers and subject of an append's message may
// take beside its events, within the servers' max_payload.
const headerRoom = 1024

// Reasons an attempt did not store the append, which Append resolves by
// looking the IDs up (see retried).
var (
	errNoBase  = errors.New("no append ends at the expected version")
	errRefused = errors.New("the append's subject is taken")
	errStored  = errors.New("an event ID is stored")
	errStale   = errors.New("an event ID is claimed for a later version")
)

// refusal is errRefused for one subject.
type refusal struct{ subj string }

func (r *refusal) Error() string        { return "jetstream: " + r.subj + " is taken" }
func (r *refusal) Is(target error) bool { return target == errRefused }

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected int64, evs ...event.Envelope) ([]event.Envelope, error) {
	if s.isClosed() {
		return nil, eventstore.ErrClosed
	}
	own, err := s.proposed(stream, expected, evs)
	if err != nil {
		return nil, err
	}
	if s.opts.Codec == nil {
		return s.append(ctx, stream, expected, own)
	}
	// Sealed once, before the first attempt: every attempt publishes the
	// same bytes under the same hashes, and a retry is recognized by its
	// IDs, whatever bytes another call sealed them to.
	sealed, err := s.opts.Codec.Seal(ctx, own)
	if err != nil {
		return nil, fmt.Errorf("jetstream: seal: %w", err)
	}
	out, err := s.append(ctx, stream, expected, sealed)
	if err == nil {
		eventstore.Plain(out, own)
	}
	return out, err
}

// append stores own, as the log keeps them, after the stream's head.
func (s *Store) append(ctx context.Context, stream string, expected int64, own []event.Envelope) ([]event.Envelope, error) {
	gens := make(map[ulid.ULID]int) // the claim generation this call last held per ID
	stale := 0
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out, err := s.attempt(ctx, stream, expected, own, attempt, gens)
		if err == nil {
			return out, nil
		}
		var taken *refusal
		switch {
		case errors.As(err, &taken) && expected == eventstore.Any:
			// Another append took the subject: unless it is this one
			// (a retry), try again after the head.
			if evs, known, err := s.tookOver(ctx, stream, taken.subj, own, gens); known {
				return evs, err
			}
		case errors.Is(err, errNoBase), errors.Is(err, errRefused), errors.Is(err, errStored), errors.Is(err, errStale):
			// A version or an ID is taken: a retry of a stored append,
			// an ID used elsewhere, or a conflict.
			if evs, known, err := s.retried(ctx, stream, own); known {
				return evs, err
			}
			if expected != eventstore.Any {
				return nil, fmt.Errorf("%w: stream %s is not at version %d", eventstore.ErrConflict, stream, expected)
			}
			if errors.Is(err, errStale) {
				// The head this store read is behind an append
				// another writer is making: give it time to land,
				// but not forever (a claim can only be ahead of the
				// head the leader reports while it is elected).
				if stale++; stale >= maxStale {
					return nil, fmt.Errorf("%w: stream %s: %v", eventstore.ErrConflict, stream, err)
				}
				backoff(ctx, attempt)
			}
		case ctx.Err() == nil && transient(err):
			// Transient: another write to the same subject in flight, a
			// leader election, or no answer (the message may be stored
			// or not: the next attempt finds its claims taken and looks,
			// so callers see no failure).
			backoff(ctx, attempt)
		default:
			return nil, err
		}
		if attempt+1 >= maxAttempts {
			return nil, fmt.Errorf("%w: stream %s: gave up after %d attempts: %v", eventstore.ErrConflict, stream, maxAttempts, err)
		}
	}
}

// attempt tries once to store own after the stream's head: claims each
// ID for the append's subject, then writes the append there.
func (s *Store) attempt(ctx context.Context, stream string, expected int64, own []event.Envelope, attempt int, gens map[ulid.ULID]int) ([]event.Envelope, error) {
	base, err := s.base(ctx, stream, expected, attempt)
	if err != nil {
		return nil, err
	}
	out := chain(own, base)
	data, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	if room := s.nc.MaxPayload() - headerRoom; int64(len(data)) > room {
		return nil, fmt.Errorf("%w: %d events of %d bytes in one append, at most %d bytes here (the servers' max_payload)", event.ErrInvalid, len(out), len(data), room)
	}
	subj := s.logSubject(stream, base.version+1)
	if err := s.claim(ctx, stream, subj, out, gens); err != nil {
		return nil, err
	}
	ack, err := s.publish(ctx, &nats.Msg{Subject: subj, Data: data, Header: nats.Header{hdrExpectedSub: {"0"}}})
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Position = position(ack.Seq, i)
	}
	last := out[len(out)-1]
	s.remember(stream, head{last.Version, last.Hash})
	// Subscribers wait for this; one that misses it polls.
	s.nc.Publish(s.tickSubj, []byte(strconv.FormatUint(ack.Seq, 10)))
	return out, nil
}

// proposed checks the caller's input as every store does and returns the
// events with Data compact and the store's fields cleared.
func (s *Store) proposed(stream string, expected int64, evs []event.Envelope) ([]event.Envelope, error) {
	if err := event.ValidStream(stream); err != nil {
		return nil, err
	}
	if expected < eventstore.Any {
		return nil, fmt.Errorf("%w: expected version %d", event.ErrInvalid, expected)
	}
	if len(evs) > s.opts.MaxAppend {
		return nil, fmt.Errorf("%w: %d events in one append, at most %d here", event.ErrInvalid, len(evs), s.opts.MaxAppend)
	}
	return eventstore.Proposal(stream, evs)
}

// base returns the last event of the append this one chains from, which
// must be the last event of an append (doc.go, Appends). The server
// checks that no append follows it, so a stale guess costs a retry, never
// a fork.
func (s *Store) base(ctx context.Context, stream string, expected int64, attempt int) (head, error) {
	switch {
	case expected == eventstore.NoStream:
		return head{}, nil
	case expected > 0:
		if h, ok := s.cached(stream); ok && h.version == uint64(expected) {
			return h, nil
		} else if ok && h.version > uint64(expected) {
			return head{}, errNoBase // the stream is past expected already
		}
		evs, found, err := s.containing(ctx, stream, uint64(expected))
		if err != nil {
			return head{}, err
		}
		if !found || evs[len(evs)-1].Version != uint64(expected) {
			return head{}, errNoBase
		}
		last := evs[len(evs)-1]
		return head{last.Version, last.Hash}, nil
	}
	if h, ok := s.cached(stream); ok && attempt == 0 {
		return h, nil
	}
	m, found, err := s.leaderGet(ctx, s.log, getReq{LastFor: s.streamFilter(stream)})
	if err != nil || !found {
		return head{}, err
	}
	evs, err := s.decodeOf(stream, m)
	if err != nil {
		return head{}, err
	}
	last := evs[len(evs)-1]
	s.remember(stream, head{last.Version, last.Hash})
	return head{last.Version, last.Hash}, nil
}

// chain gives own the versions and hashes that follow base.
func chain(own []event.Envelope, base head) []event.Envelope {
	out := make([]event.Envelope, len(own))
	prev, v := base.hash, base.version
	for i, e := range own {
		v++
		e.Version = v
		e.Hash = event.Chain(prev, e)
		prev = e.Hash
		out[i] = e
	}
	return out
}

// pubAck is the servers' answer to a publish.
type pubAck struct {
	Error *apiError `json:"error"`
	Seq   uint64    `json:"seq"`
}

// errNoAck: a publish went unanswered within Timeout; it may be stored.
var errNoAck = errors.New("jetstream: no acknowledgement")

// publishAll publishes msgs at once and returns each one's ack, or the
// error the server answered, as errs[i]. A wrong last subject sequence is
// errRefused.
func (s *Store) publishAll(ctx context.Context, msgs []*nats.Msg) ([]pubAck, []error, error) {
	replies, err := s.requests(ctx, msgs, s.opts.Timeout)
	if err != nil {
		return nil, nil, err
	}
	acks, errs := make([]pubAck, len(msgs)), make([]error, len(msgs))
	for i, r := range replies {
		switch {
		case r == nil:
			errs[i] = errNoAck
		case r.Header.Get("Status") == "503":
			errs[i] = nats.ErrNoResponders
		default:
			if err := json.Unmarshal(r.Data, &acks[i]); err != nil {
				errs[i] = fmt.Errorf("jetstream: publish ack: %w", err)
			} else if e := acks[i].Error; e != nil && e.ErrCode == errWrongLastSeq {
				errs[i] = &refusal{msgs[i].Subject}
			} else if e != nil {
				errs[i] = e
			}
		}
	}
	return acks, errs, nil
}

// publish is publishAll of one.
func (s *Store) publish(ctx context.Context, m *nats.Msg) (pubAck, error) {
	acks, errs, err := s.publishAll(ctx, []*nats.Msg{m})
	if err != nil {
		return pubAck{}, err
	}
	return acks[0], errs[0]
}

// tookOver handles an append of own refused under Any because another
// append is on its subject, subj, which every claim of own names: if that
// append holds any of own's IDs, retried decides; otherwise every claim
// names an append that never changes and lacks its ID, and the next
// attempt takes over the next generations without reading them.
func (s *Store) tookOver(ctx context.Context, stream, subj string, own []event.Envelope, gens map[ulid.ULID]int) ([]event.Envelope, bool, error) {
	evs, found, err := s.appendOn(ctx, subj)
	if err != nil || !found {
		return nil, err != nil, err
	}
	for _, e := range own {
		if holds(evs, e.ID) {
			return s.retried(ctx, stream, own)
		}
	}
	if len(evs) > 0 {
		last := evs[len(evs)-1]
		s.remember(stream, head{last.Version, last.Hash})
	}
	for _, e := range own {
		gens[e.ID]++
	}
	return nil, false, nil
}

// retried reports whether any of own's IDs is stored. If so, own is a retry
// when all its IDs are, in stream, at consecutive versions: it gets those
// events back; otherwise ErrDuplicateID.
func (s *Store) retried(ctx context.Context, stream string, own []event.Envelope) ([]event.Envelope, bool, error) {
	ids := make([]ulid.ULID, len(own))
	for i, e := range own {
		ids[i] = e.ID
	}
	got, found, err := s.lookUpIDs(ctx, ids)
	if err != nil {
		return nil, true, err
	}
	var known, missing []int
	for i := range own {
		if found[i] {
			known = append(known, i)
		} else {
			missing = append(missing, i)
		}
	}
	if len(known) == 0 {
		return nil, false, nil
	}
	if len(missing) > 0 {
		return nil, true, fmt.Errorf("%w: %s was stored without %s", eventstore.ErrDuplicateID, own[known[0]].ID, own[missing[0]].ID)
	}
	for i, e := range got {
		switch {
		case e.Stream != stream:
			return nil, true, fmt.Errorf("%w: %s is in stream %s", eventstore.ErrDuplicateID, e.ID, e.Stream)
		case i > 0 && e.Version != got[i-1].Version+1:
			return nil, true, fmt.Errorf("%w: %s is not stored right after %s", eventstore.ErrDuplicateID, e.ID, got[i-1].ID)
		}
	}
	return got, true, nil
}
