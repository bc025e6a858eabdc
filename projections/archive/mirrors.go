package archive

// Rooms this server mirrors (DMUC3, docs/dmuc.md). Such a room has no
// room stream here, only its replica's (domain/mirror): the accounts
// here in it are the occupants the mirror marked as theirs
// (Occupant.Local), and the master's messages land in their archives as
// a room's here do, under the master's archive IDs, in the master's
// order. A post of an account here enters the archives when the master's
// copy accepts it.

import (
	"context"
	"database/sql"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/mirror"
)

// applyMirror folds a mirror's MirrorApplied into either model.
func applyMirror(ctx context.Context, tx *sql.Tx, e event.Envelope, stays bool) error {
	var a mirror.Applied
	if err := e.Decode(mirror.Schema, &a); err != nil {
		return err
	}
	r := mirror.RoomOf(e.Stream)
	begin := func(acct string) error { return enter(ctx, tx, r, acct) }
	end := func(acct string) error { return exit(ctx, tx, r, acct) }
	if stays {
		begin = func(acct string) error { return stayBegins(ctx, tx, e, r, acct) }
		end = func(acct string) error { return stayEnds(ctx, tx, e, r, acct) }
	}
	switch a.Kind {
	case mirror.Presence:
		switch {
		case a.Occupant == nil || a.Occupant.Local == "":
			return nil
		case a.Gone:
			return end(a.Occupant.Local)
		default:
			return begin(a.Occupant.Local)
		}
	case mirror.Roster:
		// The accounts here it names are in the room. It ends no stay: a
		// roster comes when the mirror is attached again, and the
		// accounts here that are not in it yet are joining again after a
		// link loss (their exits, when they leave, are presences).
		for _, o := range a.Occupants {
			if o.Local != "" {
				if err := begin(o.Local); err != nil {
					return err
				}
			}
		}
	case mirror.Message:
		if a.Stanza == "" {
			return nil
		}
		id := a.ID
		if id == "" {
			id = e.ID.String() // a master that gave none: the mirror's own, as unique
		}
		if stays {
			return roomRow(ctx, tx, e, r, id, a.Nick, "", a.Stanza)
		}
		return postGroupchat(ctx, tx, e, r, id, a.Nick, "", a.Stanza)
	}
	return nil
}
