package projections

import (
	"context"
	"database/sql"
	"fmt"

	"annals.im/annals/domain/event"
)

// InlineProjection is a projection that an event store applies inside its
// own write transactions (eventstore/sqlite.Inline), so that an append's
// answer means its read-model rows are committed with it. The runner
// still creates, catches up and rebuilds it, but no longer follows it live.
type InlineProjection struct {
	r *Runner
	p Projection
}

// Inline hands the named projection over to a store's writer.
func (r *Runner) Inline(name string) (*InlineProjection, error) {
	ps, err := r.pick([]string{name})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inline == nil {
		r.inline = make(map[string]bool)
	}
	r.inline[ps[0].Name()] = true
	return &InlineProjection{r: r, p: ps[0]}, nil
}

// Name is the projection's name.
func (ip *InlineProjection) Name() string { return ip.p.Name() }

// Checkpoint reads the projection's checkpoint in tx.
func (ip *InlineProjection) Checkpoint(ctx context.Context, tx *sql.Tx) (event.Position, error) {
	var p event.Position
	err := tx.QueryRowContext(ctx, `SELECT commit_pos, prepare_pos FROM projection_checkpoints WHERE name = ?`, ip.p.Name()).
		Scan(&p.Commit, &p.Prepare)
	if err != nil {
		return p, fmt.Errorf("projections: checkpoint of %s: %w", ip.p.Name(), err)
	}
	return p, nil
}

// Apply folds evs into the read model and moves its checkpoint, in tx.
func (ip *InlineProjection) Apply(ctx context.Context, tx *sql.Tx, evs []event.Envelope) error {
	if len(evs) == 0 {
		return nil
	}
	if err := applyAll(ctx, tx, ip.p, evs); err != nil {
		return err
	}
	last := evs[len(evs)-1].Position
	_, err := tx.ExecContext(ctx, `UPDATE projection_checkpoints SET commit_pos = ?, prepare_pos = ? WHERE name = ?`,
		last.Commit, last.Prepare, ip.p.Name())
	return err
}
