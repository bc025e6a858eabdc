package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"

	"annals.im/annals/eventstore"
)

// VerifyLog implements eventstore.LogVerifier: it recomputes the log chain
// (see logChain) over every row in position order, and checks the links
// ReadStream follows: each row's prev is its stream's previous event, and
// each stream mark points at the event it names.
func (s *Store) VerifyLog(ctx context.Context) error {
	var prev []byte
	last := int64(0)
	tails := make(map[string]int64) // stream -> position of its last event so far
	for {
		rows, err := s.read.QueryContext(ctx, `SELECT position, stream, version, prev, hash, log_hash FROM events
			WHERE position > ? ORDER BY position LIMIT ?`, last, eventstore.PageSize)
		if err != nil {
			return fmt.Errorf("sqlite: verify log chain: %w", err)
		}
		n := 0
		for rows.Next() {
			var (
				pos, link    int64
				stream       string
				version      uint64
				hash, stored []byte
			)
			if err := rows.Scan(&pos, &stream, &version, &link, &hash, &stored); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: verify log chain: %w", err)
			}
			if want := logChain(prev, pos, hash); !bytes.Equal(want, stored) {
				rows.Close()
				return &eventstore.BrokenError{Stream: stream, Version: version,
					Reason: fmt.Sprintf("not where it was written in the log (position %d breaks the log chain)", pos)}
			}
			if link != tails[stream] {
				rows.Close()
				return &eventstore.BrokenError{Stream: stream, Version: version,
					Reason: fmt.Sprintf("links to position %d as its previous event, which is at %d", link, tails[stream])}
			}
			tails[stream] = pos
			prev, last = stored, pos
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: verify log chain: %w", err)
		}
		if n == 0 {
			break
		}
	}
	return s.verifyMarks(ctx)
}

func (s *Store) verifyMarks(ctx context.Context) error {
	rows, err := s.read.QueryContext(ctx, `SELECT m.stream, m.version, m.position, e.stream, e.version
		FROM stream_marks m LEFT JOIN events e ON e.position = m.position ORDER BY m.stream, m.version`)
	if err != nil {
		return fmt.Errorf("sqlite: verify stream marks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			stream  string
			version uint64
			pos     int64
			eStream sql.NullString
			eVer    sql.NullInt64
		)
		if err := rows.Scan(&stream, &version, &pos, &eStream, &eVer); err != nil {
			return fmt.Errorf("sqlite: verify stream marks: %w", err)
		}
		if eStream.String != stream || uint64(eVer.Int64) != version {
			return &eventstore.BrokenError{Stream: stream, Version: version,
				Reason: fmt.Sprintf("its stream mark points at position %d, which holds another event", pos)}
		}
	}
	return rows.Err()
}
