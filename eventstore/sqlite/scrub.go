package sqlite

import (
	"context"
	"fmt"

	"annals.im/annals/eventstore"
)

// What erasure needs of the store (adapters/sealing): a codec set after
// Open, the inline read models caught up without an append, and a WAL
// that keeps no page of a deleted row.

// CatchUpInline brings the inline read models up to the log's tip in a
// batch of their own, and returns once it is durable: events another
// process appended (an erasure, an expiry) reach them without waiting
// for this process's next append.
func (s *Store) CatchUpInline(ctx context.Context) error {
	req := &appendReq{catchUp: true, result: make(chan appendResult, 1)}
	select {
	case s.queue <- req:
	case <-s.done:
		return eventstore.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case r := <-req.result:
		return r.err
	case <-s.exited:
		return eventstore.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Scrub empties the WAL into the database file and truncates it, so that
// no file keeps the pages of rows deleted since (the database file does
// not: secure_delete zeroes them); a server's preallocated WAL is then
// extended with zeros again. It waits for readers and the writer, and
// fails if they keep it from finishing.
func (s *Store) Scrub(ctx context.Context) error {
	conn, err := s.checkpoints.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: scrub the WAL: %w", err)
	}
	defer conn.Close()
	// A truncating checkpoint holds the write lock while it waits for
	// readers: wait briefly, and let the caller ask again, rather than
	// stall appends for the connection's usual busy timeout.
	if _, err := conn.ExecContext(ctx, `PRAGMA busy_timeout = 250`); err != nil {
		return fmt.Errorf("sqlite: scrub the WAL: %w", err)
	}
	defer conn.ExecContext(context.Background(), `PRAGMA busy_timeout = 10000`)
	var busy, frames, copied int
	err = conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied)
	if err != nil {
		return fmt.Errorf("sqlite: scrub the WAL: %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("sqlite: scrub the WAL: readers or the writer kept the checkpoint from finishing; try again")
	}
	if s.opts.PreallocateWAL > 0 {
		return preallocateWAL(ctx, s.write, s.path+"-wal", s.opts.PreallocateWAL)
	}
	return nil
}

// SetCodec makes the store seal and open with c (Options.Codec), for a
// codec whose keys live in the store's own file and so can only be made
// after Open. Call it before anything else uses the store.
func (s *Store) SetCodec(c eventstore.Codec) { s.opts.Codec = c }
