// Package owner serializes the commands on each stream inside a process
// and keeps each stream's folded state in memory, as DESIGN.md asks: one
// writer per stream, deciding on the state, appending with the expected
// version, and deciding again after a conflict (another process wrote).
package owner

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// Owner holds the streams of one kind (accounts, rooms).
type Owner[S any] struct {
	store  eventstore.Store
	evolve func(S, event.Envelope) (S, error)

	mu      sync.Mutex
	streams map[string]*entry[S]
}

type entry[S any] struct {
	mu      sync.Mutex
	state   S
	version uint64
}

// New returns an owner folding events with evolve.
func New[S any](store eventstore.Store, evolve func(S, event.Envelope) (S, error)) *Owner[S] {
	return &Owner[S]{store: store, evolve: evolve, streams: make(map[string]*entry[S])}
}

func (o *Owner[S]) entry(stream string) *entry[S] {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.streams[stream]
	if !ok {
		e = &entry[S]{}
		o.streams[stream] = e
	}
	return e
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
// another process: each lost race means that process made progress.
const maxAttempts = 16

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
func (o *Owner[S]) Do(ctx context.Context, stream string, decide func(S) ([]event.Envelope, error)) (S, []event.Envelope, error) {
	e := o.entry(stream)
	e.mu.Lock()
	defer e.mu.Unlock()
	for attempt := 0; ; attempt++ {
		// Catch up first: a command that decides "nothing to do" appends
		// nothing, so a conflict would never tell it that it was stale.
		if err := o.load(ctx, stream, e); err != nil {
			return e.state, nil, err
		}
		evs, err := decide(e.state)
		if err != nil || len(evs) == 0 {
			return e.state, nil, err
		}
		stored, err := o.store.Append(ctx, stream, int64(e.version), evs...)
		if errors.Is(err, eventstore.ErrConflict) && attempt < maxAttempts {
			continue
		}
		if err != nil {
			return e.state, nil, err
		}
		for _, ev := range stored {
			if e.state, err = o.evolve(e.state, ev); err != nil {
				return e.state, stored, err
			}
			e.version = ev.Version
		}
		return e.state, stored, nil
	}
}
