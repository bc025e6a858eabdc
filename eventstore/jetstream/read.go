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

// got is the answer to one get: the message, or found false.
type got struct {
	m     msg
	found bool
}

// getReq is the JSON body of both message-get APIs (JSApiMsgGetRequest
// as nats-server 2.9 has it: no batches).
type getReq struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
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
	errWrongLastSeqInProc = 10164 // 2.10+: the subject has a write in flight
)

// Bounds of a burst: gets sent at once, each answered on its own, which
// is how a page is read from servers without batch gets (2.9). A read's
// first burst asks for firstBurst messages, each burst that finds all it
// asked for four times as many, up to maxBurst, and fewer when the
// messages seen so far were large, so that about burstBytes are in
// flight.
const (
	firstBurst = 8
	maxBurst   = 128
	burstBytes = 8 << 20
)

// getAttempts bounds how often a leader get is asked again while the
// stream has no leader.
const getAttempts = 20

// errNoLeader: a stream's leader did not answer, as while it is elected.
var errNoLeader = errors.New("jetstream: no answer from the stream leader")

// transient reports whether err is one the servers give while they elect
// a leader or lose a server: asking again later may succeed.
func transient(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		switch {
		case ae.ErrCode == errWrongLastSeqInProc, ae.ErrCode == errClusterNotLeader, ae.Code == 503:
			return true
		}
		return false
	}
	return errors.Is(err, errNoLeader) || errors.Is(err, errNoAck) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrConnectionReconnecting)
}

// gets is the requests of reqs to subj.
func (s *Store) gets(ctx context.Context, subj string, reqs []getReq, wait time.Duration) ([]*nats.Msg, error) {
	msgs := make([]*nats.Msg, len(reqs))
	for i, r := range reqs {
		body, _ := json.Marshal(r)
		msgs[i] = &nats.Msg{Subject: subj, Data: body}
	}
	return s.requests(ctx, msgs, wait)
}

// directWait bounds how long a burst of direct gets waits for answers: a
// replica that died with requests in flight never answers them, and what
// went unanswered is asked of the leader anyway.
const directWait = time.Second

// leaderGets asks the stream's leader, which has applied every
// acknowledged write, for each of reqs, all at once; asks again for what
// went unanswered while the stream elects a leader.
func (s *Store) leaderGets(ctx context.Context, a api, reqs []getReq) ([]got, error) {
	out := make([]got, len(reqs))
	todo := make([]int, len(reqs))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		if s.isClosed() {
			return nil, eventstore.ErrClosed
		}
		ask := make([]getReq, len(todo))
		for j, i := range todo {
			ask[j] = reqs[i]
		}
		replies, err := s.gets(ctx, a.get, ask, s.opts.Timeout)
		if err != nil {
			return nil, fmt.Errorf("jetstream: get: %w", err)
		}
		var again []int
		var last error
		for j, r := range replies {
			i := todo[j]
			if r == nil || r.Header.Get("Status") == "503" { // no answer, or no responders: no leader yet
				again, last = append(again, i), errNoLeader
				continue
			}
			var resp struct {
				Error   *apiError `json:"error"`
				Message *struct {
					Subject  string `json:"subject"`
					Sequence uint64 `json:"seq"`
					Data     []byte `json:"data"`
				} `json:"message"`
			}
			if err := json.Unmarshal(r.Data, &resp); err != nil {
				return nil, fmt.Errorf("jetstream: get: %w", err)
			}
			switch {
			case resp.Error != nil && resp.Error.ErrCode == errNoMessage:
			case resp.Error != nil && (resp.Error.ErrCode == errClusterNotLeader || resp.Error.Code == 503):
				again, last = append(again, i), resp.Error
			case resp.Error != nil:
				return nil, resp.Error
			case resp.Message == nil:
				return nil, errors.New("jetstream: get: empty answer")
			default:
				out[i] = got{msg{resp.Message.Subject, resp.Message.Sequence, resp.Message.Data}, true}
			}
		}
		if len(again) > 0 && attempt+1 >= getAttempts {
			return nil, fmt.Errorf("jetstream: get from %s: %w", a.stream, last)
		}
		if len(again) > 0 {
			backoff(ctx, attempt)
		}
		todo = again
	}
	return out, nil
}

// leaderGet is leaderGets of one.
func (s *Store) leaderGet(ctx context.Context, a api, r getReq) (msg, bool, error) {
	g, err := s.leaderGets(ctx, a, []getReq{r})
	if err != nil {
		return msg{}, false, err
	}
	return g[0].m, g[0].found, nil
}

// directGets asks any replicas for each of reqs, all at once. A replica
// may lag the leader: not found (or no answer) only means that it has not
// seen the message, and callers ask the leader before they conclude.
func (s *Store) directGets(ctx context.Context, a api, reqs []getReq) ([]got, error) {
	replies, err := s.gets(ctx, a.direct, reqs, min(directWait, s.opts.Timeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: direct get: %w", err)
	}
	out := make([]got, len(reqs))
	for i, r := range replies {
		if r == nil {
			continue
		}
		switch st := r.Header.Get("Status"); st {
		case "":
		case "404", "503": // not there, or no replica answers
			continue
		default:
			return nil, fmt.Errorf("jetstream: direct get: status %s %s", st, r.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(r.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("jetstream: direct get: sequence %q", r.Header.Get("Nats-Sequence"))
		}
		m := msg{r.Header.Get("Nats-Subject"), seq, r.Data}
		if s.lagging != nil && s.lagging(m) {
			continue
		}
		out[i] = got{m, true}
	}
	return out, nil
}

// bursts sizes the bursts of one read.
type bursts struct {
	window, largest int
}

// next is how many messages the next burst asks for, at most want.
func (b *bursts) next(want int) int {
	if b.window == 0 {
		b.window = firstBurst
	}
	n := min(want, b.window)
	if b.largest > 0 {
		n = min(n, burstBytes/b.largest)
	}
	return max(n, 1)
}

// saw records a burst's answers: all found widens the next one.
func (b *bursts) saw(gs []got) {
	all := true
	for _, g := range gs {
		all = all && g.found
		b.largest = max(b.largest, len(g.m.data))
	}
	if all {
		b.window = min(4*b.window, maxBurst)
	}
}

// decode reads the message of one append: its events, in order, with
// their positions. It refuses a message whose subject does not name the
// stream and first version it holds, or whose versions skip.
func (s *Store) decode(m msg) ([]event.Envelope, error) {
	var evs []event.Envelope
	if err := json.Unmarshal(m.data, &evs); err != nil {
		return nil, fmt.Errorf("jetstream: message %d (%s): %w", m.seq, m.subj, err)
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("jetstream: message %d (%s) holds no event", m.seq, m.subj)
	}
	first := evs[0]
	if want := s.logSubject(first.Stream, first.Version); m.subj != want {
		return nil, fmt.Errorf("jetstream: message %d is on %s but holds %s version %d", m.seq, m.subj, first.Stream, first.Version)
	}
	for i := range evs {
		if evs[i].Stream != first.Stream || evs[i].Version != first.Version+uint64(i) {
			return nil, fmt.Errorf("jetstream: message %d (%s) holds %s version %d at %d", m.seq, m.subj, evs[i].Stream, evs[i].Version, i)
		}
		evs[i].Position = position(m.seq, i)
	}
	return evs, nil
}

// decodeOf is decode for a message that must hold stream, which a hashed
// subject could in theory not.
func (s *Store) decodeOf(stream string, m msg) ([]event.Envelope, error) {
	evs, err := s.decode(m)
	if err == nil && evs[0].Stream != stream {
		err = fmt.Errorf("jetstream: %s holds stream %s (a hashed subject collided)", m.subj, evs[0].Stream)
	}
	return evs, err
}

// containing returns the events of the append that holds version v of
// stream, as the leader has it. Appends start at the versions that have
// a subject, and tile the stream: the append holding v is the one on the
// highest subject at or below v, found by asking for the subjects below
// v in growing bursts.
func (s *Store) containing(ctx context.Context, stream string, v uint64) ([]event.Envelope, bool, error) {
	for hi, width := v, uint64(4); hi >= 1; width = min(width*4, maxBurst) {
		lo := hi - min(width, hi) + 1
		reqs := make([]getReq, 0, hi-lo+1)
		for k := hi; k >= lo; k-- {
			reqs = append(reqs, getReq{LastFor: s.logSubject(stream, k)})
		}
		gs, err := s.leaderGets(ctx, s.log, reqs)
		if err != nil {
			return nil, false, err
		}
		for _, g := range gs {
			if !g.found {
				continue
			}
			evs, err := s.decodeOf(stream, g.m)
			if err != nil || evs[len(evs)-1].Version < v {
				return nil, false, err // v is past the stream's last event
			}
			return evs, true, nil
		}
		hi = lo - 1
	}
	return nil, false, nil
}

// ReadStream implements eventstore.Store. It finds the append holding
// version from with the leader, then asks replicas for the subjects the
// next appends may start at, a burst at a time, and the leader for each
// one a replica did not have: the last such answer is the stream's end.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]event.Envelope, error) {
	if s.isClosed() {
		return nil, eventstore.ErrClosed
	}
	if limit <= 0 || event.ValidStream(stream) != nil {
		return nil, nil
	}
	from = max64(from, 1)
	evs, found, err := s.containing(ctx, stream, from)
	if err != nil || !found {
		return nil, err
	}
	out := evs[from-evs[0].Version:]
	out = out[:min(len(out), limit)]
	next, size := evs[len(evs)-1].Version+1, bursts{}
	for len(out) < limit {
		n := size.next(limit - len(out))
		reqs := make([]getReq, n)
		for i := range reqs {
			reqs[i].LastFor = s.logSubject(stream, next+uint64(i))
		}
		gs, err := s.directGets(ctx, s.log, reqs)
		if err != nil {
			return nil, err
		}
		size.saw(gs)
		base := next
		for len(out) < limit && next-base < uint64(n) {
			g := gs[next-base]
			if !g.found {
				if g.m, g.found, err = s.leaderGet(ctx, s.log, reqs[next-base]); err != nil {
					return nil, err
				}
				if !g.found {
					return s.open(ctx, out) // the stream ends before next
				}
			}
			evs, err := s.decodeOf(stream, g.m)
			if err != nil {
				return nil, err
			}
			out = append(out, evs[:min(len(evs), limit-len(out))]...)
			next = evs[len(evs)-1].Version + 1
		}
	}
	return s.open(ctx, out)
}

// ReadAll implements eventstore.Store. Sequences of the log stream are
// dense (nothing is deleted), so it asks replicas for the sequences after
// the position, a burst at a time, and the leader for the first one a
// replica did not have: if the leader has none, that is the end.
func (s *Store) ReadAll(ctx context.Context, after event.Position, limit int) ([]event.Envelope, error) {
	if s.isClosed() {
		return nil, eventstore.ErrClosed
	}
	if limit <= 0 {
		return nil, nil
	}
	var out []event.Envelope
	// The append holding after may have events after it.
	seq, size := max64(seqOf(after), 1), bursts{}
	for len(out) < limit {
		n := size.next(limit - len(out))
		reqs := make([]getReq, n)
		for i := range reqs {
			reqs[i].Seq = seq + uint64(i)
		}
		gs, err := s.directGets(ctx, s.log, reqs)
		if err != nil {
			return nil, err
		}
		size.saw(gs)
		base := seq
		for len(out) < limit && seq-base < uint64(n) {
			g := gs[seq-base]
			if !g.found {
				if g.m, g.found, err = s.leaderGet(ctx, s.log, getReq{Seq: seq, NextFor: s.logSubj + ".>"}); err != nil {
					return nil, err
				}
				if !g.found {
					return s.open(ctx, out)
				}
			}
			evs, err := s.decode(g.m)
			if err != nil {
				return nil, err
			}
			for _, e := range evs {
				if after.Less(e.Position) && len(out) < limit {
					out = append(out, e)
				}
			}
			if g.m.seq != seq { // a gap the leader skipped: the rest of the burst is stale
				seq = g.m.seq + 1
				break
			}
			seq++
		}
	}
	return s.open(ctx, out)
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
