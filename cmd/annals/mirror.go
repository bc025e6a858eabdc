package main

// annals mirror: the operators' view of the DMUC3 mirrors this server
// keeps (issue 13, docs/dmuc.md), from their read model.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	appmirrors "annals.im/annals/app/mirrors"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/mirror"
	"annals.im/annals/domain/wellformed"
	mirrorsproj "annals.im/annals/projections/mirrors"
)

const mirrorUsage = `Usage:
  annals mirror list   [--data DIR]        the rooms mirrored here: last master sequence, pending posts, occupants, messages,
                                           the link to the master (up or down, since when) and when it last said something
  annals mirror status [--data DIR] ROOM   one mirrored room in detail
  annals mirror history [--data DIR] [--max N] ROOM
                                           its last N messages (100): the master's sequence, the nick and the body, in the master's order; posts it has not accepted last
  annals mirror rebuild [--data DIR] ROOM  drop ROOM's mirror tables and replay its events (serve must be stopped)
  annals mirror rebuild --from-master [--data DIR] ROOM
                                           ask the running server to take ROOM from its master again, from the first sequence`

func mirrorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, mirrorUsage)
		return fmt.Errorf("%w: mirror needs list, status or rebuild", errUsage)
	}
	var c Config
	fs := newFlagSet("mirror "+args[0], stderr)
	c.flags(fs, false)
	maxMessages := fs.Int("max", 100, "messages history shows, at most")
	fromMaster := fs.Bool("from-master", false, "rebuild: ask the running server to take the room from its master again")
	room, err := parseAround(fs, args[1:])
	if err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	switch sub := args[0]; {
	case sub == "list" && room == "":
		return withReadModels(ctx, c, stderr, func(db *sql.DB) error { return mirrorList(ctx, db, stdout) })
	case sub == "status" && room != "":
		return withReadModels(ctx, c, stderr, func(db *sql.DB) error { return mirrorStatus(ctx, db, room, stdout) })
	case sub == "history" && room != "" && *maxMessages > 0:
		return withReadModels(ctx, c, stderr, func(db *sql.DB) error { return mirrorHistory(ctx, db, room, *maxMessages, stdout) })
	case sub == "rebuild" && room != "" && *fromMaster:
		return mirrorRefetch(ctx, c, room, stdout, stderr)
	case sub == "rebuild" && room != "":
		return mirrorRebuild(ctx, c, room, stdout, stderr)
	}
	fmt.Fprintln(stderr, mirrorUsage)
	return fmt.Errorf("%w: mirror %v", errUsage, args)
}

func mirrorList(ctx context.Context, db *sql.DB, stdout io.Writer) error {
	list, err := mirrorsproj.List(ctx, db)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no room is mirrored here")
	}
	for _, s := range list {
		fmt.Fprintf(stdout, "%s\tseq %d\tpending %d\toccupants %d\tmessages %d\tlink %s\theard %s\n", s.Room, s.Seq, s.Pending, s.Occupants, s.Messages,
			linkState(s), ago(s.Heard))
	}
	return nil
}

func mirrorStatus(ctx context.Context, db *sql.DB, room string, stdout io.Writer) error {
	list, err := mirrorsproj.List(ctx, db)
	if err != nil {
		return err
	}
	for _, s := range list {
		if s.Room != room {
			continue
		}
		fmt.Fprintf(stdout, "room %s\nmaster %s\nlink %s\nlast heard from the master %s\nlast master sequence %d (stream version %d)\nsubject %q\npending posts %d\noccupants %d\nmessages %d\n",
			s.Room, masterOf(s.Room), linkState(s), ago(s.Heard), s.Seq, s.Version, s.Subject, s.Pending, s.Occupants, s.Messages)
		return nil
	}
	return fmt.Errorf("%w: %s is not mirrored here", errUsage, room)
}

// linkState is what the log says of the link to the room's master: up
// or down, and since when (as the server last recorded it; a server
// that stopped recorded nothing since).
func linkState(s mirrorsproj.Summary) string {
	state := "up"
	if s.Down {
		state = "down"
	}
	if !s.LinkAt.IsZero() {
		state += " since " + s.LinkAt.Format(time.RFC3339)
	}
	return state
}

// ago is t and how long ago it was: the mirror's lag behind a master
// that says something often.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.RFC3339) + " (" + time.Since(t).Round(time.Second).String() + " ago)"
}

// masterOf is the MUC service of room.
func masterOf(room string) string {
	_, service, _ := strings.Cut(room, "@")
	return service
}

// mirrorHistory prints the last max messages of room as the mirror keeps
// them, one a line: the master's sequence ("pending" for a post it has
// not accepted), the nick, the body.
func mirrorHistory(ctx context.Context, db *sql.DB, room string, max int, stdout io.Writer) error {
	msgs, err := mirrorsproj.History(ctx, db, room, max)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		seq := "pending"
		if m.Seq != 0 {
			seq = strconv.FormatUint(m.Seq, 10)
		}
		e, err := stanza.Parse([]byte(m.Stanza), wellformed.DefaultMaxDepth)
		if err != nil {
			return fmt.Errorf("a message of %s's mirror: %w", room, err)
		}
		nick := ""
		if from, err := jid.Parse(e.Attr("from")); err == nil {
			nick = from.Resourcepart()
		}
		if m.Account != "" {
			nick = m.Account // a post's stanza is from its account's occupant JID
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", seq, nick, e.ChildText("body"))
	}
	return nil
}

// mirrorRefetch appends MirrorReset to room's mirror stream: the running
// server sees it in the log and takes the room from its master again.
// Without a running server nobody would fetch: it refuses.
func mirrorRefetch(ctx context.Context, c Config, room string, stdout, stderr io.Writer) error {
	log := c.logger(stderr)
	if o, err := openOwner(ctx, c, false, log); err == nil {
		o.Close()
		return fmt.Errorf("%w: --from-master asks the running server to fetch %s from its master: start annals serve first", errUsage, room)
	} else if !errors.Is(err, errInUse) {
		return err
	}
	store, err := openStore(ctx, c, false, log)
	if err != nil {
		return err
	}
	defer store.Close()
	if evs, err := store.ReadStream(ctx, mirror.Stream(room), 1, 1); err != nil {
		return err
	} else if len(evs) == 0 {
		return fmt.Errorf("%w: %s is not mirrored here (no %s stream)", errUsage, room, mirror.Stream(room))
	}
	ctx = event.WithCause(ctx, "cli:mirror rebuild --from-master")
	if _, _, err := appmirrors.New(store, event.NewIDs(), nil).Do(ctx, room, mirror.Refetch{Reset: mirror.Reset{Why: "annals mirror rebuild --from-master"}}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: the server takes it from its master again; annals mirror status %s shows how far it is\n", room, room)
	return nil
}

// mirrorRebuild replays the mirror stream of room into its read model.
func mirrorRebuild(ctx context.Context, c Config, room string, stdout, stderr io.Writer) error {
	o, err := openOwner(ctx, c, false, c.logger(stderr))
	if err != nil {
		return err
	}
	defer o.Close()
	// The rest of the read model first, so that the room's rows are the
	// only ones replayed here.
	if _, err := o.runner.CatchUp(ctx, o.store); err != nil {
		return err
	}
	var evs []event.Envelope
	for from := uint64(1); ; {
		page, err := o.store.ReadStream(ctx, mirror.Stream(room), from, 1024)
		if err != nil {
			return err
		}
		evs = append(evs, page...)
		if len(page) < 1024 {
			break
		}
		from = page[len(page)-1].Version + 1
	}
	if len(evs) == 0 {
		return fmt.Errorf("%w: %s is not mirrored here (no %s stream)", errUsage, room, mirror.Stream(room))
	}
	if err := mirrorsproj.RebuildRoom(ctx, o.db, room, evs); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: replayed %d events\n", room, len(evs))
	return nil
}
