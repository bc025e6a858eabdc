package mirrors

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/mirror"
)

// Name is stored with the checkpoint; change it and the read model is
// rebuilt from the start of the log.
//
// v2: the link's state (MirrorLinked) and when the master was last heard.
const Name = "mirrors/v2"

// Projection is the mirrors read model.
type Projection struct{}

func (Projection) Name() string { return Name }
func (Projection) Tables() []string {
	return []string{"mirror_rooms", "mirror_occupants", "mirror_messages"}
}
func (Projection) Schema() string {
	return `CREATE TABLE IF NOT EXISTS mirror_rooms (
		room    TEXT PRIMARY KEY,
		seq     INTEGER NOT NULL, -- the last master sequence applied
		subject TEXT NOT NULL,
		pending INTEGER NOT NULL, -- local messages the master has not accepted
		version INTEGER NOT NULL,
		link_down INTEGER NOT NULL DEFAULT 0, -- 1: the link to the master is lost
		link_at   INTEGER NOT NULL DEFAULT 0, -- Unix ns of the last change of the link, 0: none
		heard_at  INTEGER NOT NULL DEFAULT 0  -- Unix ns of the last thing the master said
	) WITHOUT ROWID;
	CREATE TABLE IF NOT EXISTS mirror_occupants (
		room        TEXT NOT NULL,
		nick        TEXT NOT NULL,
		jid         TEXT NOT NULL,
		affiliation TEXT NOT NULL,
		role        TEXT NOT NULL,
		show        TEXT NOT NULL,
		status      TEXT NOT NULL,
		PRIMARY KEY (room, nick)
	) WITHOUT ROWID;
	CREATE TABLE IF NOT EXISTS mirror_messages (
		room     TEXT NOT NULL,
		version  INTEGER NOT NULL, -- of the event that brought it to the mirror
		seq      INTEGER,          -- the master's; NULL while pending
		local_id TEXT NOT NULL,    -- a local user's post; '' for the master's own
		account  TEXT NOT NULL,    -- the local poster; '' for the master's own
		stanza   TEXT NOT NULL,
		PRIMARY KEY (room, version)
	) WITHOUT ROWID;
	CREATE UNIQUE INDEX IF NOT EXISTS mirror_messages_seq ON mirror_messages (room, seq) WHERE seq IS NOT NULL;
	CREATE INDEX IF NOT EXISTS mirror_messages_local ON mirror_messages (room, local_id) WHERE local_id != '';`
}

// Reads implements projections.Selective: mirror streams only.
func (Projection) Reads(e event.Envelope) bool { return mirror.RoomOf(e.Stream) != "" }

// Apply implements projections.Projection.
func (Projection) Apply(ctx context.Context, tx *sql.Tx, e event.Envelope) error {
	r := mirror.RoomOf(e.Stream)
	if r == "" {
		return nil
	}
	exec := func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}
	err := exec(`INSERT INTO mirror_rooms (room, seq, subject, pending, version) VALUES (?, 0, '', 0, 0) ON CONFLICT (room) DO NOTHING`, r)
	if err != nil {
		return fmt.Errorf("mirrors: %s: %w", r, err)
	}
	switch e.Type {
	case mirror.TypeApplied:
		var a mirror.Applied
		if err := e.Decode(mirror.Schema, &a); err != nil {
			return err
		}
		err = applied(exec, r, e.Version, a)
		if err == nil {
			err = exec(`UPDATE mirror_rooms SET heard_at = ? WHERE room = ?`, e.OccurredAt.UnixNano(), r)
		}
	case mirror.TypeReset:
		// The master's part goes; the posts it has not accepted stay.
		err = exec(`DELETE FROM mirror_occupants WHERE room = ?`, r)
		if err == nil {
			err = exec(`DELETE FROM mirror_messages WHERE room = ? AND seq IS NOT NULL`, r)
		}
		if err == nil {
			err = exec(`UPDATE mirror_rooms SET seq = 0, subject = '' WHERE room = ?`, r)
		}
	case mirror.TypeRefused:
		var d mirror.Refused
		if err := e.Decode(mirror.Schema, &d); err != nil {
			return err
		}
		err = exec(`DELETE FROM mirror_messages WHERE room = ? AND local_id = ? AND seq IS NULL`, r, d.LocalID)
		if err == nil {
			err = exec(`UPDATE mirror_rooms SET pending = pending - 1 WHERE room = ?`, r)
		}
	case mirror.TypeLinked:
		var l mirror.Linked
		if err := e.Decode(mirror.Schema, &l); err != nil {
			return err
		}
		err = exec(`UPDATE mirror_rooms SET link_down = ?, link_at = ? WHERE room = ?`, !l.Up, e.OccurredAt.UnixNano(), r)
	case mirror.TypePosted:
		var p mirror.Posted
		if err := e.Decode(mirror.Schema, &p); err != nil {
			return err
		}
		err = exec(`INSERT INTO mirror_messages (room, version, seq, local_id, account, stanza) VALUES (?, ?, NULL, ?, ?, ?)`,
			r, e.Version, p.LocalID, p.Account, p.Stanza)
		if err == nil {
			err = exec(`UPDATE mirror_rooms SET pending = pending + 1 WHERE room = ?`, r)
		}
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("mirrors: %s %s: %w", e.Type, r, err)
	}
	return exec(`UPDATE mirror_rooms SET version = ? WHERE room = ?`, e.Version, r)
}

func applied(exec func(string, ...any) error, r string, version uint64, a mirror.Applied) error {
	if err := exec(`UPDATE mirror_rooms SET seq = ? WHERE room = ?`, a.Seq, r); err != nil {
		return err
	}
	switch a.Kind {
	case mirror.Message:
		if a.Accepts != "" {
			// The master's copy of a local post: the post's row takes its
			// sequence (the mirror's users saw it already).
			if err := exec(`UPDATE mirror_messages SET seq = ? WHERE room = ? AND local_id = ? AND seq IS NULL`, a.Seq, r, a.Accepts); err != nil {
				return err
			}
			return exec(`UPDATE mirror_rooms SET pending = pending - 1 WHERE room = ?`, r)
		}
		return exec(`INSERT INTO mirror_messages (room, version, seq, local_id, account, stanza) VALUES (?, ?, ?, '', '', ?)`,
			r, version, a.Seq, a.Stanza)
	case mirror.Subject:
		return exec(`UPDATE mirror_rooms SET subject = ? WHERE room = ?`, a.Subject, r)
	case mirror.Presence:
		o := a.Occupant
		if a.Gone {
			return exec(`DELETE FROM mirror_occupants WHERE room = ? AND nick = ?`, r, o.Nick)
		}
		return occupant(exec, r, *o)
	case mirror.Roster:
		if err := exec(`DELETE FROM mirror_occupants WHERE room = ?`, r); err != nil {
			return err
		}
		for _, o := range a.Occupants {
			if err := occupant(exec, r, o); err != nil {
				return err
			}
		}
	}
	return nil
}

func occupant(exec func(string, ...any) error, r string, o mirror.Occupant) error {
	return exec(`INSERT INTO mirror_occupants (room, nick, jid, affiliation, role, show, status) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (room, nick) DO UPDATE SET jid = excluded.jid, affiliation = excluded.affiliation, role = excluded.role,
		show = excluded.show, status = excluded.status`, r, o.Nick, o.JID, o.Affiliation, o.Role, o.Show, o.Status)
}

// Message is a message of a mirrored room as the mirror keeps it.
type Message struct {
	Seq     uint64 // the master's; 0 while pending
	LocalID string // a local post's
	Account string
	Stanza  string
}

// History returns the last max messages of room in the master's order,
// the pending ones after them in posting order.
func History(ctx context.Context, db *sql.DB, room string, max int) ([]Message, error) {
	rows, err := db.QueryContext(ctx, `SELECT seq, local_id, account, stanza FROM (
		SELECT coalesce(seq, 0) AS seq, local_id, account, stanza, seq IS NULL AS pending, coalesce(seq, version) AS ord
		FROM mirror_messages WHERE room = ? ORDER BY pending DESC, ord DESC LIMIT ?) ORDER BY pending, ord`, room, max)
	if err != nil {
		return nil, fmt.Errorf("mirrors: history of %s: %w", room, err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var m Message
		if err := rows.Scan(&m.Seq, &m.LocalID, &m.Account, &m.Stanza); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// RebuildRoom drops the rows of room's mirror and folds its stream's
// events, evs (the whole stream, in order), again, in one transaction:
// `annals mirror rebuild ROOM`. The other rooms' rows and the
// projection's checkpoint stay as they are.
func RebuildRoom(ctx context.Context, db *sql.DB, room string, evs []event.Envelope) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("mirrors: rebuild %s: %w", room, err)
	}
	defer tx.Rollback()
	for _, t := range []string{"mirror_rooms", "mirror_occupants", "mirror_messages"} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE room = ?`, room); err != nil {
			return fmt.Errorf("mirrors: rebuild %s: %w", room, err)
		}
	}
	for _, e := range evs {
		if mirror.RoomOf(e.Stream) != room {
			return fmt.Errorf("mirrors: rebuild %s: an event of %s", room, e.Stream)
		}
		if err := (Projection{}).Apply(ctx, tx, e); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Summary is a mirrored room as `annals mirror list` shows it.
type Summary struct {
	Room               string
	Seq                uint64
	Pending, Occupants int
	Messages           int
	Subject            string
	Version            uint64
	// Down: the link to the master is lost, since LinkAt (zero: it
	// never went down); Heard is when the master last said something.
	Down          bool
	LinkAt, Heard time.Time
}

// List returns every mirrored room, as far as the read model has
// followed the log.
func List(ctx context.Context, db *sql.DB) ([]Summary, error) {
	rows, err := db.QueryContext(ctx, `SELECT r.room, r.seq, r.pending, r.subject, r.version, r.link_down, r.link_at, r.heard_at,
		(SELECT count(*) FROM mirror_occupants o WHERE o.room = r.room),
		(SELECT count(*) FROM mirror_messages m WHERE m.room = r.room)
		FROM mirror_rooms r ORDER BY r.room`)
	if err != nil {
		return nil, fmt.Errorf("mirrors: list: %w", err)
	}
	defer rows.Close()
	var out []Summary
	for rows.Next() {
		var s Summary
		var linkAt, heard int64
		if err := rows.Scan(&s.Room, &s.Seq, &s.Pending, &s.Subject, &s.Version, &s.Down, &linkAt, &heard, &s.Occupants, &s.Messages); err != nil {
			return nil, err
		}
		s.LinkAt, s.Heard = unixNano(linkAt), unixNano(heard)
		out = append(out, s)
	}
	return out, rows.Err()
}

// unixNano is the time n Unix nanoseconds say, or zero for 0.
func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
