package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// maxGenerations bounds the claims of one ID: each new generation takes
// over one whose append was refused, so only an ID retried that often
// against a stream other writers keep moving reaches it.
const maxGenerations = 1000

// claim makes every event's ID name subj, where the append of out is
// about to go, before it is written (doc.go, Idempotent retries). Each
// ID's next generation is written with expected last subject sequence 0,
// all at once; a generation that exists already is looked at one ID at a
// time. It returns errStored if an ID is stored, errStale if one is
// claimed for a later append of stream still unwritten, ErrDuplicateID
// if one is claimed for another stream's unwritten append.
func (s *Store) claim(ctx context.Context, stream, subj string, out []event.Envelope, gens map[ulid.ULID]int) error {
	msgs := make([]*nats.Msg, len(out))
	for i, e := range out {
		gens[e.ID] = max(gens[e.ID], 1)
		msgs[i] = s.claimMsg(e.ID, gens[e.ID], subj)
	}
	_, errs, err := s.publishAll(ctx, msgs)
	if err != nil {
		return err
	}
	for i, e := range out {
		if errs[i] == nil {
			continue
		}
		if !errors.Is(errs[i], errRefused) {
			return errs[i]
		}
		if gens[e.ID], err = s.claimTaken(ctx, stream, subj, e.ID, gens[e.ID]); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) claimMsg(id ulid.ULID, gen int, subj string) *nats.Msg {
	return &nats.Msg{Subject: s.claimSubject(id.String(), gen), Data: []byte(subj),
		Header: nats.Header{hdrExpectedSub: {"0"}}}
}

// claimTaken claims id for subj when generation gen of its claim exists:
// it is the claim already if it names subj; it may be taken over if the
// append it names was refused (its subject holds another append, which
// never changes); otherwise id is stored, or its append may still be on
// its way (see doc.go for why neither case may be taken over).
func (s *Store) claimTaken(ctx context.Context, stream, subj string, id ulid.ULID, gen int) (int, error) {
	for steps := 0; gen <= maxGenerations && steps < 2*maxGenerations; gen, steps = gen+1, steps+1 {
		cm, found, err := s.leaderGet(ctx, s.ids, getReq{LastFor: s.claimSubject(id.String(), gen)})
		if err != nil {
			return 0, err
		}
		if found {
			named := string(cm.data)
			if named == subj {
				return gen, nil
			}
			evs, written, err := s.appendOn(ctx, named)
			switch {
			case err != nil:
				return 0, err
			case written && holds(evs, id):
				return 0, fmt.Errorf("%w: %s at %s", errStored, id, named)
			case !written && !strings.HasPrefix(named, s.streamPrefix(stream)):
				return 0, fmt.Errorf("%w: %s is claimed by an append to another stream (%s) not written yet", eventstore.ErrDuplicateID, id, named)
			case !written:
				return 0, fmt.Errorf("%w: %s is claimed for %s, after this append's %s", errStale, id, named, subj)
			}
			continue // refused: the next generation takes it over
		}
		// A generation refused yet absent cannot be read back (the
		// leader that refused it has it): publish it again.
		_, err = s.publish(ctx, s.claimMsg(id, gen, subj))
		switch {
		case err == nil:
			return gen, nil
		case errors.Is(err, errRefused):
			gen-- // read it again
		default:
			return 0, err
		}
	}
	return 0, fmt.Errorf("%w: %s has %d claims, all of refused appends", eventstore.ErrConflict, id, maxGenerations)
}

// appendOn returns the append stored on a log subject, if any.
func (s *Store) appendOn(ctx context.Context, subj string) ([]event.Envelope, bool, error) {
	m, found, err := s.leaderGet(ctx, s.log, getReq{LastFor: subj})
	if err != nil || !found {
		return nil, false, err
	}
	evs, err := s.decode(m)
	return evs, err == nil, err
}

func holds(evs []event.Envelope, id ulid.ULID) bool {
	for _, e := range evs {
		if e.ID == id {
			return true
		}
	}
	return false
}

// lookUpIDs finds the events stored with ids: each ID's last claim names
// the only append that can hold it (doc.go). It reads the first
// generations of every claim at once, then the next ones of those that
// have them, and so on, then the appends the last ones name.
func (s *Store) lookUpIDs(ctx context.Context, ids []ulid.ULID) ([]event.Envelope, []bool, error) {
	named := make([]string, len(ids))
	todo := make([]int, len(ids))
	for i := range todo {
		todo[i] = i
	}
	// Two generations a round: most IDs have one claim, so one round
	// finds them all.
	for gen := 1; len(todo) > 0; gen += 2 {
		if gen > maxGenerations {
			return nil, nil, fmt.Errorf("jetstream: %s has more than %d claims", ids[todo[0]], maxGenerations)
		}
		reqs := make([]getReq, 0, 2*len(todo))
		for _, i := range todo {
			reqs = append(reqs, getReq{LastFor: s.claimSubject(ids[i].String(), gen)},
				getReq{LastFor: s.claimSubject(ids[i].String(), gen+1)})
		}
		gs, err := s.leaderGets(ctx, s.ids, reqs)
		if err != nil {
			return nil, nil, err
		}
		var next []int
		for j, i := range todo {
			switch a, b := gs[2*j], gs[2*j+1]; {
			case b.found:
				named[i] = string(b.m.data)
				next = append(next, i)
			case a.found:
				named[i] = string(a.m.data)
			}
		}
		todo = next
	}
	appends := make(map[string][]event.Envelope)
	var subjects []string
	for _, n := range named {
		if _, ok := appends[n]; n != "" && !ok {
			appends[n] = nil
			subjects = append(subjects, n)
		}
	}
	reqs := make([]getReq, len(subjects))
	for i, subj := range subjects {
		reqs[i].LastFor = subj
	}
	gs, err := s.leaderGets(ctx, s.log, reqs)
	if err != nil {
		return nil, nil, err
	}
	for i, g := range gs {
		if g.found {
			if appends[subjects[i]], err = s.decode(g.m); err != nil {
				return nil, nil, err
			}
		}
	}
	out, found := make([]event.Envelope, len(ids)), make([]bool, len(ids))
	for i, id := range ids {
		for _, e := range appends[named[i]] {
			if e.ID == id {
				out[i], found[i] = e, true
			}
		}
	}
	return out, found, nil
}
