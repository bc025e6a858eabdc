package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"annals.im/annals/domain/event"
)

// Inline is a read model the writer keeps in its own transactions: when
// an append is answered, its events are in the read model too, and an
// event and its read-model rows are committed (and fsynced) together. The
// archive uses it so that a client's ack means "archived" and a query
// right after it finds the message.
//
// The read model lives in the store's file. Its checkpoint moves in the
// same transaction; events appended by another process (one-shot
// commands) are read and applied first when the checkpoint lags behind
// the batch. An Apply error fails the whole batch (every append in it gets
// the error; nothing of it is stored): the read model and the log never
// disagree.
type Inline interface {
	Name() string
	// Checkpoint returns the position of the last event applied.
	Checkpoint(ctx context.Context, tx *sql.Tx) (event.Position, error)
	// Apply folds evs, in position order and all after the checkpoint, and
	// moves the checkpoint to the last of them.
	Apply(ctx context.Context, tx *sql.Tx, evs []event.Envelope) error
}

// SetInline makes the writer keep ps from its next batch on. The read
// models should be caught up first (projections.Runner.CatchUp): whatever
// is left is applied inside the next batch's transaction.
func (s *Store) SetInline(ps ...Inline) {
	s.inlineMu.Lock()
	s.inline = append([]Inline(nil), ps...)
	s.inlineMu.Unlock()
}

func (s *Store) inlines() []Inline {
	s.inlineMu.Lock()
	defer s.inlineMu.Unlock()
	return s.inline
}

// applyInline runs the inline read models over the batch's events.
func (b *batchTx) applyInline(ctx context.Context) error {
	ps := b.w.s.inlines()
	if len(ps) == 0 || (len(b.rows) == 0 && !b.catchUp) {
		return nil
	}
	for _, p := range ps {
		cp, ok := b.w.inlinePos[p.Name()]
		if !ok || b.careful {
			var err error
			if cp, err = p.Checkpoint(ctx, b.tx); err != nil {
				return fmt.Errorf("inline %s: checkpoint: %w", p.Name(), err)
			}
		}
		// Events between the checkpoint and this batch: written by another
		// process, or before the read model was set inline.
		for int64(cp.Commit) < b.start {
			gap, err := b.readAfter(ctx, cp, b.start)
			if err != nil {
				return fmt.Errorf("inline %s: catch up: %w", p.Name(), err)
			}
			if len(gap) == 0 {
				break
			}
			if gap, err = b.w.s.open(ctx, gap); err != nil {
				return fmt.Errorf("inline %s: catch up: %w", p.Name(), err)
			}
			if err := p.Apply(ctx, b.tx, gap); err != nil {
				return fmt.Errorf("inline %s: %w", p.Name(), err)
			}
			cp = gap[len(gap)-1].Position
		}
		if len(b.rows) == 0 {
			b.inlinePos[p.Name()] = cp
			continue
		}
		rows, err := b.opened(ctx)
		if err != nil {
			return fmt.Errorf("inline %s: %w", p.Name(), err)
		}
		if err := p.Apply(ctx, b.tx, rows); err != nil {
			return fmt.Errorf("inline %s: %w", p.Name(), err)
		}
		b.inlinePos[p.Name()] = b.rows[len(b.rows)-1].Position
	}
	return nil
}

// opened returns the batch's events as the inline read models see them:
// opened by the codec, once per batch. Opening after the events caught up
// before them (as the inline models see them) lets an erasure appended by
// another process just before this batch erase what this batch sealed
// under the keys it destroyed.
func (b *batchTx) opened(ctx context.Context) ([]event.Envelope, error) {
	if b.w.s.opts.Codec == nil {
		return b.rows, nil
	}
	if b.open == nil {
		open, err := b.w.s.open(ctx, slices.Clone(b.rows))
		if err != nil {
			return nil, err
		}
		b.open = open
	}
	return b.open, nil
}

// readAfter reads, in the batch's transaction, up to a page of events
// after cp and at or before through.
func (b *batchTx) readAfter(ctx context.Context, cp event.Position, through int64) ([]event.Envelope, error) {
	rows, err := b.tx.QueryContext(ctx, `SELECT `+columns+` FROM events
		WHERE position > ? AND position <= ? ORDER BY position LIMIT 4096`, int64(cp.Commit), through)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows, 4096)
}
