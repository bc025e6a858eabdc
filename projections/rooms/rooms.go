package rooms

import (
	"context"
	"database/sql"
	"fmt"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
)

// Name is stored with the checkpoint; change it and the read model is
// rebuilt from the start of the log.
const Name = "rooms/v1"

// Projection is the rooms read model.
type Projection struct{}

func (Projection) Name() string { return Name }
func (Projection) Tables() []string {
	return []string{"rooms", "room_occupants", "room_affiliations"}
}
func (Projection) Schema() string {
	return `CREATE TABLE IF NOT EXISTS rooms (
		jid          TEXT PRIMARY KEY,
		name         TEXT NOT NULL,
		description  TEXT NOT NULL,
		persistent   INTEGER NOT NULL,
		public       INTEGER NOT NULL,
		members_only INTEGER NOT NULL,
		moderated    INTEGER NOT NULL,
		password     INTEGER NOT NULL, -- protected or not; the hash stays in the log
		locked       INTEGER NOT NULL,
		subject      TEXT NOT NULL,
		messages     INTEGER NOT NULL,
		version      INTEGER NOT NULL  -- of the room's stream
	);
	CREATE TABLE IF NOT EXISTS room_occupants (
		room    TEXT NOT NULL,
		account TEXT NOT NULL,
		nick    TEXT NOT NULL,
		role    TEXT NOT NULL,
		show    TEXT NOT NULL,
		status  TEXT NOT NULL,
		PRIMARY KEY (room, account)
	) WITHOUT ROWID;
	CREATE TABLE IF NOT EXISTS room_affiliations (
		room        TEXT NOT NULL,
		jid         TEXT NOT NULL,
		affiliation TEXT NOT NULL,
		PRIMARY KEY (room, jid)
	) WITHOUT ROWID;`
}

// Apply implements projections.Projection.
func (Projection) Apply(ctx context.Context, tx *sql.Tx, e event.Envelope) error {
	r := room.JIDOf(e.Stream)
	if r == "" {
		return nil
	}
	exec := func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}
	var err error
	switch e.Type {
	case room.TypeCreated:
		var d room.Created
		if err = e.Decode(room.Schema, &d); err != nil {
			return err
		}
		if err = config(exec, r, d.Config, d.Locked, e.Version, true); err == nil {
			err = exec(`INSERT INTO room_affiliations (room, jid, affiliation) VALUES (?, ?, 'owner')`, r, d.Owner)
		}
	case room.TypeConfigured:
		var d room.Configured
		if err = e.Decode(room.Schema, &d); err != nil {
			return err
		}
		err = config(exec, r, d.Config, false, e.Version, false)
	case room.TypeAffiliationSet:
		var d room.AffiliationSet
		if err = e.Decode(room.Schema, &d); err != nil {
			return err
		}
		if d.Affiliation == room.None {
			err = exec(`DELETE FROM room_affiliations WHERE room = ? AND jid = ?`, r, d.JID)
		} else {
			err = exec(`INSERT INTO room_affiliations (room, jid, affiliation) VALUES (?, ?, ?)
				ON CONFLICT (room, jid) DO UPDATE SET affiliation = excluded.affiliation`, r, d.JID, string(d.Affiliation))
		}
	case room.TypeJoined:
		var d room.Joined
		if err = e.Decode(room.Schema, &d); err != nil {
			return err
		}
		err = exec(`INSERT INTO room_occupants (room, account, nick, role, show, status) VALUES (?, ?, ?, ?, ?, ?)`,
			r, d.Account, d.Nick, string(d.Role), d.Show, d.Status)
	case room.TypeLeft:
		var d room.Left
		if err = e.Decode(room.Schema, &d); err != nil {
			return err
		}
		err = exec(`DELETE FROM room_occupants WHERE room = ? AND account = ?`, r, d.Account)
	case room.TypeNickChanged:
		var d room.NickChanged
		if err = e.Decode(room.Schema, &d); err != nil {
			return err
		}
		err = exec(`UPDATE room_occupants SET nick = ? WHERE room = ? AND account = ?`, d.Nick, r, d.Account)
	case room.TypePresenceChanged:
		var d room.PresenceChanged
		if err = e.Decode(room.Schema, &d); err != nil {
			return err
		}
		err = exec(`UPDATE room_occupants SET show = ?, status = ? WHERE room = ? AND account = ?`, d.Show, d.Status, r, d.Account)
	case room.TypeRoleSet:
		var d room.RoleSet
		if err = e.Decode(room.Schema, &d); err != nil {
			return err
		}
		err = exec(`UPDATE room_occupants SET role = ? WHERE room = ? AND account = ?`, string(d.Role), r, d.Account)
	case room.TypeSubjectSet:
		var d room.SubjectSet
		if err = e.Decode(room.Schema, &d); err != nil {
			return err
		}
		err = exec(`UPDATE rooms SET subject = ? WHERE jid = ?`, d.Subject, r)
	case room.TypeMessagePosted:
		err = exec(`UPDATE rooms SET messages = messages + 1 WHERE jid = ?`, r)
	case room.TypeVCardSet, room.TypeMessageRetracted:
		// The vCard is the room's state's, and a retraction the archive's
		// (a tombstone), not this read model's: only the version moves on.
	case room.TypeDestroyed:
		for _, t := range []string{"room_occupants", "room_affiliations"} {
			if err = exec(`DELETE FROM `+t+` WHERE room = ?`, r); err != nil {
				return err
			}
		}
		err = exec(`DELETE FROM rooms WHERE jid = ?`, r)
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("rooms: %s %s: %w", e.Type, r, err)
	}
	return exec(`UPDATE rooms SET version = ? WHERE jid = ?`, e.Version, r)
}

func config(exec func(string, ...any) error, r string, c room.Config, locked bool, version uint64, create bool) error {
	if create {
		return exec(`INSERT INTO rooms (jid, name, description, persistent, public, members_only, moderated, password, locked, subject, messages, version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', 0, ?)`, r, c.Name, c.Description, c.Persistent, c.Public, c.MembersOnly, c.Moderated,
			c.PasswordHash != "", locked, version)
	}
	return exec(`UPDATE rooms SET name = ?, description = ?, persistent = ?, public = ?, members_only = ?, moderated = ?, password = ?, locked = ?
		WHERE jid = ?`, c.Name, c.Description, c.Persistent, c.Public, c.MembersOnly, c.Moderated, c.PasswordHash != "", locked, r)
}

// Listed is a room as the service lists it.
type Listed struct {
	JID, Name string
}

// Public returns the public, unlocked rooms on the service domain.
func Public(ctx context.Context, db *sql.DB, domain string) ([]Listed, error) {
	rows, err := db.QueryContext(ctx, `SELECT jid, name FROM rooms WHERE public = 1 AND locked = 0 AND jid LIKE '%@' || ? ORDER BY jid`, domain)
	if err != nil {
		return nil, fmt.Errorf("rooms: list: %w", err)
	}
	defer rows.Close()
	var out []Listed
	for rows.Next() {
		var l Listed
		if err := rows.Scan(&l.JID, &l.Name); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Of returns the rooms in which account is an occupant or has an
// affiliation, as far as the read model has followed the log.
func Of(ctx context.Context, db *sql.DB, account string) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT room FROM room_occupants WHERE account = ?1
		UNION SELECT room FROM room_affiliations WHERE jid = ?1 ORDER BY 1`, account)
	if err != nil {
		return nil, fmt.Errorf("rooms: of %s: %w", account, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Reads implements projections.Selective: room streams only.
func (Projection) Reads(e event.Envelope) bool { return room.JIDOf(e.Stream) != "" }

// Occupancy is an occupant of a room.
type Occupancy struct{ Room, Account string }

// RemoteOccupants lists the occupants from other servers, as far as the
// read model has followed the log: they occupy rooms as their full JIDs,
// which no account here has.
func RemoteOccupants(ctx context.Context, db *sql.DB) ([]Occupancy, error) {
	rows, err := db.QueryContext(ctx, `SELECT room, account FROM room_occupants WHERE instr(account, '/') > 0 ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("rooms: remote occupants: %w", err)
	}
	defer rows.Close()
	var out []Occupancy
	for rows.Next() {
		var o Occupancy
		if err := rows.Scan(&o.Room, &o.Account); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// LocalOccupants lists the occupants that are accounts here (bare JIDs),
// as far as the read model has followed the log.
func LocalOccupants(ctx context.Context, db *sql.DB) ([]Occupancy, error) {
	rows, err := db.QueryContext(ctx, `SELECT room, account FROM room_occupants WHERE instr(account, '/') = 0 ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("rooms: local occupants: %w", err)
	}
	defer rows.Close()
	var out []Occupancy
	for rows.Next() {
		var o Occupancy
		if err := rows.Scan(&o.Room, &o.Account); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}
