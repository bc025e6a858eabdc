package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// msg is one stored message as the get APIs return it.
type msg struct {
	subj string
	seq  uint64
	data []byte
}

// getReq is the JSON body of both message-get APIs (JSApiMsgGetRequest).
type getReq struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
}

type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("jetstream: %s (%d/%d)", e.Description, e.Code, e.ErrCode)
}

// JetStream API error codes this store acts on (nats-server's
// jetstream_errors_generated.go).
const (
	errNoMessage          = 10037
	errClusterNotLeader   = 10009
	errWrongLastSeq       = 10071
	errWrongLastSeqInProc = 10164 // the subject has a write in flight
	errBatchIncomplete    = 10176
	errBatchDuplicateID   = 10201
	errBatchTooMany       = 10210
	errDuplicateConflict  = 10158
)

// maxPage bounds the messages one direct batch request asks for, so that a
// reply stays within the client's pending limits.
const maxPage = 1024

// leaderGet asks the stream leader, which has applied every acknowledged
// append, for one message. found is false when there is none.
func (s *Store) leaderGet(ctx context.Context, r getReq) (m msg, found bool, err error) {
	body, _ := json.Marshal(r)
	for attempt := 0; ; attempt++ {
		if s.isClosed() {
			return msg{}, false, eventstore.ErrClosed
		}
		rctx, cancel := s.bound(ctx)
		resp, err := s.nc.RequestWithContext(rctx, s.apiGet, body)
		cancel()
		if err != nil {
			// No leader yet (an election): the API does not answer.
			if ctx.Err() == nil && (errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded)) && attempt < 20 {
				backoff(ctx, attempt)
				continue
			}
			return msg{}, false, fmt.Errorf("jetstream: get: %w", err)
		}
		var out struct {
			Error   *apiError `json:"error"`
			Message *struct {
				Subject  string `json:"subject"`
				Sequence uint64 `json:"seq"`
				Data     []byte `json:"data"`
			} `json:"message"`
		}
		if err := json.Unmarshal(resp.Data, &out); err != nil {
			return msg{}, false, fmt.Errorf("jetstream: get: %w", err)
		}
		switch {
		case out.Error != nil && out.Error.ErrCode == errNoMessage:
			return msg{}, false, nil
		case out.Error != nil && (out.Error.ErrCode == errClusterNotLeader || out.Error.Code == 503) && attempt < 20:
			backoff(ctx, attempt)
			continue
		case out.Error != nil:
			return msg{}, false, out.Error
		case out.Message == nil:
			return msg{}, false, errors.New("jetstream: get: empty answer")
		}
		return msg{out.Message.Subject, out.Message.Sequence, out.Message.Data}, true, nil
	}
}

// directBatch asks any replica for up to n messages from seq on matching
// filter. A replica may lag the leader: callers treat a short answer as
// possibly incomplete (see readRange).
func (s *Store) directBatch(ctx context.Context, filter string, seq uint64, n int) ([]msg, error) {
	body, _ := json.Marshal(getReq{Seq: seq, NextFor: filter, Batch: n})
	inbox := s.nc.NewInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := s.nc.PublishRequest(s.direct, inbox, body); err != nil {
		return nil, err
	}
	rctx, cancel := s.bound(ctx)
	defer cancel()
	var out []msg
	for {
		m, err := sub.NextMsgWithContext(rctx)
		if err != nil {
			return nil, fmt.Errorf("jetstream: direct get: %w", err)
		}
		switch st := m.Header.Get("Status"); st {
		case "":
		case "204", "404": // end of batch; nothing (more) matches
			return out, nil
		default:
			return nil, fmt.Errorf("jetstream: direct get: status %s %s", st, m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("jetstream: direct get: sequence %q", m.Header.Get("Nats-Sequence"))
		}
		out = append(out, msg{m.Header.Get("Nats-Subject"), seq, m.Data})
	}
}

// readRange returns up to max messages matching filter from seq on, all
// that the leader has: replicas serve the pages, and the leader is asked
// only whether a short page was the end.
func (s *Store) readRange(ctx context.Context, filter string, seq uint64, max int) ([]msg, error) {
	var out []msg
	for len(out) < max {
		want := min(max-len(out), maxPage)
		page, err := s.directBatch(ctx, filter, seq, want)
		if err != nil {
			return nil, err
		}
		if s.lagging != nil {
			page = s.lagging(page)
		}
		out = append(out, page...)
		if len(page) > 0 {
			seq = page[len(page)-1].seq + 1
		}
		if len(page) == want || len(out) == max {
			continue
		}
		m, found, err := s.leaderGet(ctx, getReq{Seq: seq, NextFor: filter})
		if err != nil {
			return nil, err
		}
		if !found {
			break
		}
		out = append(out, m) // the replica lagged
		seq = m.seq + 1
	}
	return out, nil
}

// decode reads an event message, refusing one whose subject does not
// name the stream and version it holds.
func (s *Store) decode(m msg) (event.Envelope, error) {
	var e event.Envelope
	if err := json.Unmarshal(m.data, &e); err != nil {
		return e, fmt.Errorf("jetstream: message %d (%s): %w", m.seq, m.subj, err)
	}
	if want := s.eventSubject(e.Stream, e.Version); m.subj != want {
		return e, fmt.Errorf("jetstream: message %d is on %s but holds %s version %d", m.seq, m.subj, e.Stream, e.Version)
	}
	e.Position = event.Position{Commit: m.seq, Prepare: m.seq}
	return e, nil
}

// event returns version v of stream as the leader has it.
func (s *Store) event(ctx context.Context, stream string, v uint64) (event.Envelope, bool, error) {
	m, found, err := s.leaderGet(ctx, getReq{LastFor: s.eventSubject(stream, v)})
	if err != nil || !found {
		return event.Envelope{}, false, err
	}
	e, err := s.decode(m)
	if err == nil && e.Stream != stream {
		err = fmt.Errorf("jetstream: %s holds stream %s (a hashed subject collided)", m.subj, e.Stream)
	}
	return e, err == nil, err
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, max int) ([]event.Envelope, error) {
	if s.isClosed() {
		return nil, eventstore.ErrClosed
	}
	if max <= 0 || event.ValidStream(stream) != nil {
		return nil, nil
	}
	from = max64(from, 1)
	first, found, err := s.event(ctx, stream, from)
	if err != nil || !found {
		return nil, err
	}
	out := []event.Envelope{first}
	if max == 1 {
		return out, nil
	}
	rest, err := s.readRange(ctx, s.streamFilter(stream), first.Position.Commit+1, max-1)
	if err != nil {
		return nil, err
	}
	for _, m := range rest {
		e, err := s.decode(m)
		if err != nil {
			return nil, err
		}
		if e.Stream != stream || e.Version != out[len(out)-1].Version+1 {
			return nil, fmt.Errorf("jetstream: %s version %d follows version %d of %s", e.Stream, e.Version, out[len(out)-1].Version, stream)
		}
		out = append(out, e)
	}
	return out, nil
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, after event.Position, max int) ([]event.Envelope, error) {
	if s.isClosed() {
		return nil, eventstore.ErrClosed
	}
	if max <= 0 {
		return nil, nil
	}
	ms, err := s.readRange(ctx, s.logSubj+".>", after.Commit+1, max)
	if err != nil {
		return nil, err
	}
	out := make([]event.Envelope, len(ms))
	for i, m := range ms {
		if out[i], err = s.decode(m); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// backoff sleeps a little longer at each attempt, up to 200ms, or until ctx ends.
func backoff(ctx context.Context, attempt int) {
	d := time.Duration(1<<min(attempt, 7)) * 2 * time.Millisecond
	t := time.NewTimer(min(d, 200*time.Millisecond))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
