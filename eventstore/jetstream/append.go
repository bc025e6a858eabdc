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

// Headers of JetStream's publish API (ADR-50 for the batch ones).
const (
	hdrMsgID       = "Nats-Msg-Id"
	hdrExpectedSub = "Nats-Expected-Last-Subject-Sequence"
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// maxAttempts bounds how often one Append starts over: after a conflict
// under Any, or while the servers elect a leader or have too many batches
// in flight.
const maxAttempts = 100

var errNoBase = errors.New("no event at the expected version")

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected int64, evs ...event.Envelope) ([]event.Envelope, error) {
	if s.isClosed() {
		return nil, eventstore.ErrClosed
	}
	own, err := s.proposed(stream, expected, evs)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		base, err := s.base(ctx, stream, expected, attempt)
		if err == nil {
			out := chain(own, base)
			if err = s.publish(ctx, stream, out); err == nil {
				last := out[len(out)-1]
				s.remember(stream, head{last.Version, last.Hash})
				return out, nil
			}
		}
		var ae *apiError
		errors.As(err, &ae)
		switch {
		case errors.Is(err, errNoBase) || ae != nil && (ae.ErrCode == errWrongLastSeq || ae.ErrCode == errBatchDuplicateID || ae.ErrCode == errDuplicateConflict):
			// A version or an ID is taken: a retry of a stored append,
			// an ID used elsewhere, or a conflict.
			if evs, known, err := s.retried(ctx, stream, own); known {
				return evs, err
			}
			if expected != eventstore.Any {
				return nil, fmt.Errorf("%w: stream %s is not at version %d", eventstore.ErrConflict, stream, expected)
			}
		case ae != nil && (ae.ErrCode == errWrongLastSeqInProc || ae.ErrCode == errBatchIncomplete ||
			ae.ErrCode == errBatchTooMany || ae.ErrCode == errClusterNotLeader || ae.Code == 503),
			errors.Is(err, nats.ErrNoResponders):
			// Transient: another write to the same subject in flight, a
			// batch cut short, a leader election. The server kept nothing.
			backoff(ctx, attempt)
		case ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)):
			// No answer within Options.Timeout, as when the leader stops
			// with the batch in flight: it may be stored or not. The
			// next attempt finds out (its IDs are then taken) and
			// returns the stored events, so callers see no failure.
			backoff(ctx, attempt)
		default:
			return nil, err
		}
		if attempt+1 >= maxAttempts {
			return nil, fmt.Errorf("%w: stream %s: gave up after %d attempts: %v", eventstore.ErrConflict, stream, maxAttempts, err)
		}
	}
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
	if len(evs) == 0 {
		return nil, fmt.Errorf("%w: no events to append", event.ErrInvalid)
	}
	if len(evs) > s.opts.MaxAppend {
		return nil, fmt.Errorf("%w: %d events in one append, at most %d here", event.ErrInvalid, len(evs), s.opts.MaxAppend)
	}
	own := make([]event.Envelope, len(evs))
	seen := make(map[ulid.ULID]bool, len(evs))
	for i, e := range evs {
		if err := e.Normalize(); err != nil {
			return nil, err
		}
		if seen[e.ID] {
			return nil, fmt.Errorf("%w: id %s twice in one append", event.ErrInvalid, e.ID)
		}
		seen[e.ID] = true
		e.Stream, e.Version, e.Position, e.Hash = stream, 0, event.Position{}, nil
		own[i] = e
	}
	return own, nil
}

// base returns the event the append chains from. The server checks that
// nothing follows it, so a stale guess costs a retry, never a fork.
func (s *Store) base(ctx context.Context, stream string, expected int64, attempt int) (head, error) {
	switch {
	case expected == eventstore.NoStream:
		return head{}, nil
	case expected > 0:
		if h, ok := s.cached(stream); ok && h.version == uint64(expected) {
			return h, nil
		}
		e, found, err := s.event(ctx, stream, uint64(expected))
		if err != nil {
			return head{}, err
		}
		if !found {
			return head{}, errNoBase
		}
		return head{e.Version, e.Hash}, nil
	}
	if h, ok := s.cached(stream); ok && attempt == 0 {
		return h, nil
	}
	m, found, err := s.leaderGet(ctx, getReq{LastFor: s.streamFilter(stream)})
	if err != nil || !found {
		return head{}, err
	}
	e, err := s.decode(m)
	if err != nil {
		return head{}, err
	}
	if e.Stream != stream {
		return head{}, fmt.Errorf("jetstream: %s holds stream %s (a hashed subject collided)", m.subj, e.Stream)
	}
	s.remember(stream, head{e.Version, e.Hash})
	return head{e.Version, e.Hash}, nil
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

// publish writes out as one atomic batch: each event on its own version
// subject, then one ID message per event. The first event's subject and
// every ID subject must be empty (expected last subject sequence 0): that
// is the one winner per version, and an ID stored once forever.
func (s *Store) publish(ctx context.Context, stream string, out []event.Envelope) error {
	n := len(out)
	batch := ulid.Make().String()
	msgs := make([]*nats.Msg, 0, 2*n)
	add := func(subj string, data []byte, h nats.Header) {
		h.Set(hdrBatchID, batch)
		h.Set(hdrBatchSeq, strconv.Itoa(len(msgs)+1))
		msgs = append(msgs, &nats.Msg{Subject: subj, Data: data, Header: h})
	}
	subjects := make([]string, n)
	for i, e := range out {
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		subjects[i] = s.eventSubject(stream, e.Version)
		h := nats.Header{hdrMsgID: {e.ID.String()}}
		if i == 0 {
			h.Set(hdrExpectedSub, "0")
		}
		add(subjects[i], data, h)
	}
	for i, e := range out {
		add(s.idSubject(e), []byte(subjects[i]), nats.Header{hdrExpectedSub: {"0"}})
	}
	msgs[len(msgs)-1].Header.Set(hdrBatchCommit, "1")
	for _, m := range msgs[:len(msgs)-1] {
		if err := s.nc.PublishMsg(m); err != nil {
			return err
		}
	}
	rctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.nc.RequestMsgWithContext(rctx, msgs[len(msgs)-1])
	if err != nil {
		return err
	}
	var ack struct {
		Error *apiError `json:"error"`
		Seq   uint64    `json:"seq"`
		Batch string    `json:"batch"`
		Count int       `json:"count"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return fmt.Errorf("jetstream: publish ack: %w", err)
	}
	if ack.Error != nil {
		return ack.Error
	}
	if ack.Batch != batch || ack.Count != len(msgs) || ack.Seq < uint64(len(msgs)) {
		return fmt.Errorf("jetstream: batch %s acknowledged as %s with %d messages at %d", batch, ack.Batch, ack.Count, ack.Seq)
	}
	// A batch is stored at consecutive sequences, ending at the ack's.
	first := ack.Seq - uint64(len(msgs)) + 1
	for i := range out {
		p := first + uint64(i)
		out[i].Position = event.Position{Commit: p, Prepare: p}
	}
	return nil
}

// retried reports whether any of own's IDs is stored. If so, own is a retry
// when all its IDs are, in stream, at consecutive versions: it gets those
// events back; otherwise ErrDuplicateID.
func (s *Store) retried(ctx context.Context, stream string, own []event.Envelope) ([]event.Envelope, bool, error) {
	got := make([]event.Envelope, len(own))
	var known, missing []int
	for i, e := range own {
		stored, found, err := s.lookUpID(ctx, e.ID)
		if err != nil {
			return nil, true, err
		}
		if found {
			got[i] = stored
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

// lookUpID finds the event stored with id through its ID message, which
// names the event's subject: two requests to the leader, only on the
// paths where an append was refused.
func (s *Store) lookUpID(ctx context.Context, id ulid.ULID) (event.Envelope, bool, error) {
	m, found, err := s.leaderGet(ctx, getReq{LastFor: s.idSubj + "." + id.String()})
	if err != nil || !found {
		return event.Envelope{}, false, err
	}
	em, found, err := s.leaderGet(ctx, getReq{LastFor: string(m.data)})
	if err != nil {
		return event.Envelope{}, false, err
	}
	if !found {
		return event.Envelope{}, false, fmt.Errorf("jetstream: id %s names %s, which holds nothing", id, m.data)
	}
	e, err := s.decode(em)
	if err == nil && e.ID != id {
		err = fmt.Errorf("jetstream: id %s names %s, which holds %s", id, m.data, e.ID)
	}
	return e, err == nil, err
}
