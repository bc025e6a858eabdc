package kurrentdb

import (
	"context"
	"errors"
	"io"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// maxHeadPages bounds how far back Head walks $all past events that are
// not the log's (KurrentDB's own, ID claims): each page is minAllRead.
const maxHeadPages = 64

// Head returns the position of the log's last Annals event, reading $all
// backwards from its end: every append acknowledged before the call is at
// or before it. A node waits until its read models pass it to read its
// own writes, or another node's.
func (s *Store) Head(ctx context.Context) (event.Position, error) {
	if s.closed.Load() {
		return event.Position{}, eventstore.ErrClosed
	}
	var from kurrentdb.AllPosition = kurrentdb.End{}
	for range maxHeadPages {
		rs, err := s.db.ReadAll(ctx, kurrentdb.ReadAllOptions{Direction: kurrentdb.Backwards, From: from}, minAllRead)
		if err != nil {
			return event.Position{}, s.wrap("read $all backwards", err)
		}
		n := 0
		for {
			r, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rs.Close()
				return event.Position{}, s.wrap("read $all backwards", err)
			}
			n++
			ev := r.OriginalEvent()
			if !skipped(ev) {
				rs.Close()
				return toPosition(ev.Position), nil
			}
			from = ev.Position
		}
		rs.Close()
		if n < minAllRead {
			return event.Position{}, nil // the start of $all: no Annals event
		}
	}
	return event.Position{}, errors.New("kurrentdb: no Annals event in the last part of $all read for its head")
}
