package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/mirror"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
)

// annals mirror list, status and rebuild, on a data directory holding a
// mirrored room's stream; rebuild gives the same status, and bad use
// exits 2.
func TestMirrorCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const room = "hall@conference.capulet.example"
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "annals.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids, st := event.NewIDs(), mirror.State{}
	for _, c := range []any{
		mirror.Apply{Applied: mirror.Applied{Seq: 4, Kind: mirror.Roster, Occupants: []mirror.Occupant{{Nick: "Juliet"}, {Nick: "Wayne"}}}},
		mirror.Post{Posted: mirror.Posted{LocalID: "l1", Account: "wayne@montague.example", Nick: "Wayne", Stanza: "<message type='groupchat'><body>a</body></message>"}},
		mirror.Apply{Applied: mirror.Applied{Seq: 5, Kind: mirror.Subject, Subject: "Verona"}},
		mirror.Apply{Applied: mirror.Applied{Seq: 6, Kind: mirror.Message, Stanza: "<message type='groupchat'><body>b</body></message>"}},
	} {
		evs, err := mirror.Decide(st, c, ids, time.Now(), "test")
		if err != nil {
			t.Fatal(err)
		}
		evs, err = s.Append(ctx, mirror.Stream(room), eventstore.Any, evs...)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			st, _ = mirror.Evolve(st, e)
		}
	}
	s.Close()
	out, errOut, code := annals(t, "mirror", "list", "--data", dir)
	if code != 0 || !strings.Contains(out, room+"\tseq 6\tpending 1\toccupants 2\tmessages 2") {
		t.Fatalf("mirror list: %d %q %s", code, out, errOut)
	}
	status, errOut, code := annals(t, "mirror", "status", room, "--data", dir)
	if code != 0 || !strings.Contains(status, "last master sequence 6") || !strings.Contains(status, `subject "Verona"`) || !strings.Contains(status, "pending posts 1") {
		t.Fatalf("mirror status: %d %q %s", code, status, errOut)
	}
	if out, errOut, code := annals(t, "mirror", "rebuild", "--data", dir, room); code != 0 || !strings.Contains(out, "replayed 4 events") {
		t.Fatalf("mirror rebuild: %d %q %s", code, out, errOut)
	}
	if again, _, _ := annals(t, "mirror", "status", room, "--data", dir); again != status {
		t.Fatalf("status after the rebuild:\n%s\nbefore:\n%s", again, status)
	}
	for _, bad := range [][]string{
		{"mirror"}, {"mirror", "status"}, {"mirror", "list", room}, {"mirror", "rebuild"},
		{"mirror", "status", "crypt@conference.capulet.example"}, {"mirror", "rebuild", "crypt@conference.capulet.example"},
	} {
		if _, _, code := annals(t, append(bad, "--data", dir)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}
