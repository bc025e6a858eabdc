// Package owner serializes the commands on each stream inside a process
// and keeps each stream's folded state in memory, as DESIGN.md asks: one
// writer per stream, deciding on the state, appending with the expected
// version, and deciding again after a conflict (another process wrote).
package owner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// Owner holds the streams of one kind (accounts, rooms).
type Owner[S any] struct {
	store  eventstore.Store
	evolve func(S, event.Envelope) (S, error)

	mu      sync.Mutex
	streams map[string]*entry[S]
	max     int // entries kept before idle ones are dropped
}

// MaxStreams is how many streams' folded states an owner keeps in memory;
// past it, idle ones are dropped (and folded again from the log when next
// used). Messages to JIDs that do not exist must not grow it forever.
const MaxStreams = 1 << 16

type entry[S any] struct {
	mu      sync.Mutex // held by the stream's leader while it decides and appends
	state   S
	version uint64

	qmu     sync.Mutex
	queue   []*request[S] // commands waiting for the next append
	leading bool          // a caller is deciding and appending for the stream
}

// request is one Do waiting for its stream's leader.
type request[S any] struct {
	decide func(S) ([]event.Envelope, error)
	done   chan result[S]
	lead   chan struct{} // this request's caller is to lead the next batch
}

type result[S any] struct {
	state  S
	stored []event.Envelope
	err    error
}

// New returns an owner folding events with evolve.
func New[S any](store eventstore.Store, evolve func(S, event.Envelope) (S, error)) *Owner[S] {
	return &Owner[S]{store: store, evolve: evolve, streams: make(map[string]*entry[S]), max: MaxStreams}
}

func (o *Owner[S]) entry(stream string) *entry[S] {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.streams[stream]
	if !ok {
		if len(o.streams) >= o.max {
			o.evictLocked()
		}
		e = &entry[S]{}
		o.streams[stream] = e
	}
	return e
}

// evictLocked drops idle entries until at most half of max are left. An
// entry in use is kept; one that a caller picked just before it was
// dropped still works: a second entry for the stream may then exist for a
// moment, and the store's expected versions keep the two from writing
// over each other (a conflict, decided again).
func (o *Owner[S]) evictLocked() {
	for stream, e := range o.streams {
		if len(o.streams) <= o.max/2 {
			return
		}
		if !e.mu.TryLock() {
			continue
		}
		e.qmu.Lock()
		idle := !e.leading && len(e.queue) == 0
		e.qmu.Unlock()
		if idle {
			delete(o.streams, stream)
		}
		e.mu.Unlock()
	}
}

// load folds the events of stream after what e holds.
func (o *Owner[S]) load(ctx context.Context, stream string, e *entry[S]) error {
	for {
		page, err := o.store.ReadStream(ctx, stream, e.version+1, eventstore.PageSize)
		if err != nil {
			return err
		}
		for _, ev := range page {
			if e.state, err = o.evolve(e.state, ev); err != nil {
				return fmt.Errorf("owner: fold %s version %d: %w", stream, ev.Version, err)
			}
			e.version = ev.Version
		}
		if len(page) < eventstore.PageSize {
			return nil
		}
	}
}

// maxAttempts bounds how often Do decides again after losing a race with
// another process: each lost race means that process made progress. On a
// cluster two nodes may write one busy room without pause, and the one
// that just lost reads its way back while the winner appends from a warm
// cache, so it can lose many times in a row: it waits a random while
// (backoff) before deciding again, which desynchronizes the two and lets
// its queue of commands grow into one append.
const maxAttempts = 64

// backoff waits before the attempt'th retry after a conflict: a random
// time up to 1ms doubled each retry, at most 64ms (about 2s over every
// attempt); false if ctx ended first.
func backoff(ctx context.Context, attempt int) bool {
	d := time.Duration(rand.Int64N(int64(time.Millisecond << min(attempt, 6))))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Get returns the current state of stream.
func (o *Owner[S]) Get(ctx context.Context, stream string) (S, error) {
	e := o.entry(stream)
	e.mu.Lock()
	defer e.mu.Unlock()
	// Always catch up: another process (a CLI command) may have appended.
	// Reading an empty tail is one indexed query.
	if err := o.load(ctx, stream, e); err != nil {
		var zero S
		return zero, err
	}
	return e.state, nil
}

// Do runs decide on the state of stream and appends what it returns. It
// returns the state after the events and the events as stored. decide may
// run more than once (after a conflict), so it must be pure.
//
// Commands on one stream are decided one after the other, each on the
// state the previous ones left, but appended together: while one append
// is being made durable, the commands that arrive queue up, and the next
// append takes them all (group commit per stream). A busy stream (a room
// with many speakers) thus needs one fsync per batch, not per command.
func (o *Owner[S]) Do(ctx context.Context, stream string, decide func(S) ([]event.Envelope, error)) (S, []event.Envelope, error) {
	e := o.entry(stream)
	req := &request[S]{decide: decide, done: make(chan result[S], 1), lead: make(chan struct{}, 1)}
	e.qmu.Lock()
	e.queue = append(e.queue, req)
	if !e.leading {
		e.leading = true
		req.lead <- struct{}{}
	}
	e.qmu.Unlock()
	select {
	case r := <-req.done:
		return r.state, r.stored, r.err
	case <-req.lead:
		o.lead(context.WithoutCancel(ctx), stream, e)
	}
	r := <-req.done
	return r.state, r.stored, r.err
}

// lead appends one batch: everything queued for the stream, its own
// command included. Then it hands the lead to the first command queued
// meanwhile, so that no caller keeps working for others.
func (o *Owner[S]) lead(ctx context.Context, stream string, e *entry[S]) {
	e.qmu.Lock()
	batch := e.queue
	e.queue = nil
	e.qmu.Unlock()
	e.mu.Lock()
	o.run(ctx, stream, e, batch)
	e.mu.Unlock()
	e.qmu.Lock()
	defer e.qmu.Unlock()
	if len(e.queue) == 0 {
		e.leading = false
		return
	}
	e.queue[0].lead <- struct{}{}
}

// run decides a batch of commands and appends their events in one append.
func (o *Owner[S]) run(ctx context.Context, stream string, e *entry[S], batch []*request[S]) {
	for attempt := 0; ; attempt++ {
		// Catch up first: a command that decides "nothing to do" appends
		// nothing, so a conflict would never tell it that it was stale.
		if err := o.load(ctx, stream, e); err != nil {
			for _, r := range batch {
				r.done <- result[S]{state: e.state, err: err}
			}
			return
		}
		// Decide each command on the state the earlier ones leave, with
		// their events numbered as the store will number them.
		st, version := e.state, e.version
		var all []event.Envelope
		counts := make([]int, len(batch))
		errs := make([]error, len(batch))
		states := make([]S, len(batch))
		for i, r := range batch {
			evs, err := r.decide(st)
			if err != nil {
				errs[i], states[i] = err, st
				continue
			}
			next := st
			for j := range evs {
				p := evs[j]
				p.Stream, p.Version = stream, version+uint64(j)+1
				if next, err = o.evolve(next, p); err != nil {
					break
				}
			}
			if err != nil {
				errs[i], states[i] = err, st
				continue
			}
			st, version = next, version+uint64(len(evs))
			counts[i], states[i] = len(evs), st
			all = append(all, evs...)
		}
		var stored []event.Envelope
		if len(all) > 0 {
			var err error
			stored, err = o.store.Append(ctx, stream, int64(e.version), all...)
			if errors.Is(err, eventstore.ErrConflict) && attempt < maxAttempts && backoff(ctx, attempt) {
				continue
			}
			if err != nil {
				for i, r := range batch {
					if errs[i] == nil {
						errs[i] = err
					}
					r.done <- result[S]{state: e.state, err: errs[i]}
				}
				return
			}
		}
		for _, ev := range stored {
			var err error
			if e.state, err = o.evolve(e.state, ev); err != nil {
				// The store took what this process decided: a fold that fails
				// now is a bug in evolve, reported to every caller.
				for _, r := range batch {
					r.done <- result[S]{state: e.state, err: fmt.Errorf("owner: fold %s version %d: %w", stream, ev.Version, err)}
				}
				return
			}
			e.version = ev.Version
		}
		at := 0
		for i, r := range batch {
			if errs[i] != nil {
				r.done <- result[S]{state: states[i], err: errs[i]}
				continue
			}
			r.done <- result[S]{state: states[i], stored: stored[at : at+counts[i]]}
			at += counts[i]
		}
		return
	}
}
