package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// Reading the log: a stream, everything after a position, the recorded
// stream heads.

const columns = `position, id, stream, version, type, schema, occurred_at, cause, data, hash`

func scanEvents(rows *sql.Rows, capHint int) ([]event.Envelope, error) {
	defer rows.Close()
	out := make([]event.Envelope, 0, capHint)
	for rows.Next() {
		var (
			e    event.Envelope
			pos  int64
			id   []byte
			at   int64
			typ  string
			data []byte // not json.RawMessage: a TEXT value (written by hand) must still scan
		)
		if err := rows.Scan(&pos, &id, &e.Stream, &e.Version, &typ, &e.Schema, &at, &e.Cause, &data, &e.Hash); err != nil {
			return nil, fmt.Errorf("sqlite: scan event: %w", err)
		}
		if len(id) != len(e.ID) {
			return nil, fmt.Errorf("sqlite: event at position %d has a %d-byte id", pos, len(id))
		}
		copy(e.ID[:], id)
		e.Type = event.Type(typ)
		e.Data = data
		e.Position = event.Position{Commit: uint64(pos), Prepare: uint64(pos)}
		e.OccurredAt = time.Unix(0, at).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read events: %w", err)
	}
	return out, nil
}

// ReadStream implements eventstore.Store. It finds the nearest event at
// or after the last version wanted (a stream mark, else the head) and walks
// the prev links back to from, in one recursive query.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, max int) ([]event.Envelope, error) {
	if max <= 0 {
		return nil, nil
	}
	from = cmp.Or(from, 1)
	last := from + uint64(max) - 1
	var start int64
	var startVersion uint64
	err := s.read.QueryRowContext(ctx, `SELECT position, version FROM stream_marks
		WHERE stream = ? AND version >= ? ORDER BY version LIMIT 1`, stream, last).Scan(&start, &startVersion)
	if errors.Is(err, sql.ErrNoRows) {
		start, startVersion, err = s.head(ctx, stream)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: read stream %s: %w", stream, err)
	}
	if start == 0 {
		return nil, nil
	}
	if startVersion < from {
		return nil, nil
	}
	rows, err := s.read.QueryContext(ctx, `WITH RECURSIVE chain(pos) AS (
			SELECT ?1
			UNION ALL
			SELECT e.prev FROM events e JOIN chain ON e.position = chain.pos
			WHERE e.version > ?2 AND e.prev > 0
		)
		SELECT `+columns+` FROM events
		WHERE position IN chain AND stream = ?3 AND version BETWEEN ?2 AND ?4
		ORDER BY position`, start, from, stream, last)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read stream %s: %w", stream, err)
	}
	evs, err := scanEvents(rows, min(max, 256))
	if err != nil {
		return nil, err
	}
	return s.open(ctx, s.visible(evs))
}

// open opens what the codec sealed, if the store has one.
func (s *Store) open(ctx context.Context, evs []event.Envelope) ([]event.Envelope, error) {
	if s.opts.Codec == nil || len(evs) == 0 {
		return evs, nil
	}
	if err := s.opts.Codec.Open(ctx, evs); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	return evs, nil
}

// head finds a stream's last event: its row in streams, or a newer event
// after heads_position that a lazy writer has not recorded there yet. The
// three reads need no common snapshot: heads_position is read first, so
// whatever a flush moves into streams meanwhile is still after it.
func (s *Store) head(ctx context.Context, stream string) (pos int64, version uint64, err error) {
	var cp int64
	if err := s.read.QueryRowContext(ctx, qHeadsPosition).Scan(&cp); err != nil {
		return 0, 0, err
	}
	err = s.read.QueryRowContext(ctx, `SELECT position, version FROM streams WHERE stream = ?`, stream).Scan(&pos, &version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, 0, err
	}
	var tPos int64
	var tVersion uint64
	var hash []byte
	err = s.read.QueryRowContext(ctx, qTail, max(cp, pos), stream).Scan(&tVersion, &hash, &tPos)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return pos, version, nil
	case err != nil:
		return 0, 0, err
	case tVersion > version:
		return tPos, tVersion, nil
	}
	return pos, version, nil
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, after event.Position, max int) ([]event.Envelope, error) {
	if max <= 0 {
		return nil, nil
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+columns+` FROM events
		WHERE position > ? ORDER BY position LIMIT ?`, int64(after.Commit), max)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read all: %w", err)
	}
	// A follower mostly reads a batch or two behind the head: a few
	// events, not max. Sizing the slice to max zeroed 4,096 envelopes per
	// read (14% of a receiving server's CPU in BenchmarkFederation).
	evs, err := scanEvents(rows, min(max, 64))
	if err != nil {
		return nil, err
	}
	return s.open(ctx, s.visible(evs))
}

// RecordedHeads implements eventstore.HeadRecorder.
func (s *Store) RecordedHeads(ctx context.Context) ([]eventstore.Head, event.Position, error) {
	var cp int64
	if err := s.read.QueryRowContext(ctx, qHeadsPosition).Scan(&cp); err != nil {
		return nil, event.Position{}, fmt.Errorf("sqlite: read heads position: %w", err)
	}
	complete := event.Position{Commit: uint64(cp), Prepare: uint64(cp)}
	rows, err := s.read.QueryContext(ctx, `SELECT stream, version, hash, position FROM streams ORDER BY stream`)
	if err != nil {
		return nil, complete, fmt.Errorf("sqlite: read stream heads: %w", err)
	}
	defer rows.Close()
	var heads []eventstore.Head
	for rows.Next() {
		var h eventstore.Head
		var pos int64
		if err := rows.Scan(&h.Stream, &h.Version, &h.Hash, &pos); err != nil {
			return nil, complete, fmt.Errorf("sqlite: read stream heads: %w", err)
		}
		h.Position = event.Position{Commit: uint64(pos), Prepare: uint64(pos)}
		heads = append(heads, h)
	}
	return heads, complete, rows.Err()
}
