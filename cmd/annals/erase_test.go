package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/pep"
	"annals.im/annals/eventstore"
)

// sealedChat appends a 1:1 message through the CLI's own store (sealed),
// as if a server had recorded it at at.
func sealedChat(t *testing.T, s *logStore, ids *event.IDs, at time.Time, from, to, text string) {
	t.Helper()
	d := archive.MessageSent{From: from, To: to, Kind: "chat", WellFormed: true,
		Stanza:   "<message xmlns='jabber:client' type='chat' id='" + text + "'><body>" + text + "</body></message>",
		SenderID: ids.New(at).String(), RecipientID: ids.New(at).String()}
	e, err := event.New(ids, at, archive.TypeMessageSent, archive.Schema, "test", d)
	if err != nil {
		t.Fatal(err)
	}
	bareFrom, _, _ := strings.Cut(from, "/")
	if _, err := s.Append(context.Background(), archive.Stream(bareFrom, to), eventstore.Any, e); err != nil {
		t.Fatal(err)
	}
}

// grepData reports the files of dir holding needle.
func grepData(t *testing.T, dir, needle string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(needle)) {
			found = append(found, filepath.Base(p))
		}
		return nil
	})
	return found
}

// TestEraseAndExpire: content sealed in the log; `annals user erase`
// leaves no byte of the erased account's words in any file of the data
// directory, keeps the other party's, and audit verify still passes;
// expiry removes exactly the rows older than its time; and after each,
// rebuild gives the same tables.
func TestEraseAndExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	seed(t, dir, "alice@example.com", "bob@example.com")
	c := Defaults()
	c.Data = dir
	s, err := openStore(ctx, c, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ids := event.NewIDs()
	now := time.Now().UTC()
	sealedChat(t, s, ids, now.Add(-100*time.Hour), "alice@example.com/a", "bob@example.com", "ALICE-OLD-1")
	sealedChat(t, s, ids, now.Add(-100*time.Hour), "bob@example.com/b", "alice@example.com", "BOB-OLD-1")
	// Either side of the expiry's cut-off below (now - 72h), by a second;
	// in time order, as a server appends them (the archive's clock never
	// steps back: a later append of an older message would take the
	// clock's time).
	sealedChat(t, s, ids, now.Add(-72*time.Hour-time.Second), "bob@example.com/b", "alice@example.com", "BOB-JUST-OLDER")
	sealedChat(t, s, ids, now.Add(-72*time.Hour+time.Second), "bob@example.com/b", "alice@example.com", "BOB-JUST-NEWER")
	sealedChat(t, s, ids, now.Add(-time.Hour), "alice@example.com/a", "bob@example.com", "ALICE-NEW-1")
	sealedChat(t, s, ids, now.Add(-time.Hour), "bob@example.com/b", "alice@example.com", "BOB-NEW-1")
	item, _ := event.New(ids, now, pep.TypeItemPublished, pep.Schema, "test", pep.ItemPublished{
		Node: "urn:xmpp:bookmarks:1", Config: pep.Config{AccessModel: pep.Whitelist, MaxItems: 100},
		Item: pep.Item{ID: "hall@conference.example.com", Payload: "<conference xmlns='urn:xmpp:bookmarks:1' name='ALICE-BOOKMARK'/>"}})
	if _, err := s.Append(ctx, account.StreamOf("alice@example.com"), eventstore.Any, item); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if out, errOut, code := annals(t, "rebuild", "--data", dir); code != 0 {
		t.Fatalf("rebuild: %d\n%s%s", code, out, errOut)
	}
	db := filepath.Join(dir, "annals.db")
	if live := dumpReadModels(t, db); !strings.Contains(live, "ALICE-OLD-1") || !strings.Contains(live, "BOB-NEW-1") {
		t.Fatalf("the archive lacks the messages:\n%s", live)
	}

	out, errOut, code := annals(t, "user", "erase", "alice@example.com", "--data", dir, "--reason", "request 42")
	if code != 0 || !strings.Contains(out, "alice@example.com: erased (3 content keys destroyed)") {
		t.Fatalf("user erase: %d\n%s%s", code, out, errOut)
	}
	for _, needle := range []string{"ALICE-OLD-1", "ALICE-NEW-1", "ALICE-BOOKMARK"} {
		if f := grepData(t, dir, needle); len(f) > 0 {
			t.Errorf("%s is still in %v after the erasure", needle, f)
		}
	}
	if f := grepData(t, dir, "BOB-NEW-1"); len(f) == 0 {
		t.Errorf("bob's words went with alice's erasure")
	}
	if out, errOut, code := annals(t, "audit", "verify", "--data", dir); code != 0 {
		t.Fatalf("audit verify after the erasure: %d\n%s%s", code, out, errOut)
	}
	// A backup taken afterwards holds neither the text nor its keys.
	backup := filepath.Join(t.TempDir(), "backup")
	if out, errOut, code := annals(t, "backup", backup, "--data", dir); code != 0 {
		t.Fatalf("backup: %d\n%s%s", code, out, errOut)
	}
	for _, needle := range []string{"ALICE-OLD-1", "ALICE-NEW-1"} {
		if f := grepData(t, backup, needle); len(f) > 0 {
			t.Errorf("%s is in the backup taken after the erasure: %v", needle, f)
		}
	}
	if f := grepData(t, backup, "BOB-NEW-1"); len(f) == 0 {
		t.Errorf("the backup lacks bob's words")
	}
	live := dumpReadModels(t, db)
	if strings.Contains(live, "ALICE-") || !strings.Contains(live, "BOB-OLD-1") {
		t.Fatalf("read models after the erasure:\n%s", live)
	}
	if out, errOut, code := annals(t, "rebuild", "--data", dir); code != 0 {
		t.Fatalf("rebuild: %d\n%s%s", code, out, errOut)
	}
	if rebuilt := dumpReadModels(t, db); rebuilt != live {
		t.Fatalf("rebuilt read models differ from the live ones after the erasure:\nlive:\n%s\nrebuilt:\n%s", live, rebuilt)
	}

	// Expiry: bob's 100-hour-old message goes, the hour-old one stays.
	s, err = openStore(ctx, c, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m := newExpiryMetrics(nil)
	if err := expireOnce(ctx, s, ids, now, 72*time.Hour, m, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if served, err := scrubIdle(ctx, c, os.Stderr); err != nil || served {
		t.Fatalf("scrub: %v %v", served, err)
	}
	live = dumpReadModels(t, db)
	if strings.Contains(live, "BOB-OLD-1") || strings.Contains(live, "BOB-JUST-OLDER") ||
		!strings.Contains(live, "BOB-NEW-1") || !strings.Contains(live, "BOB-JUST-NEWER") {
		t.Fatalf("read models after the expiry:\n%s", live)
	}
	if f := grepData(t, dir, "BOB-OLD-1"); len(f) > 0 {
		t.Errorf("the expired message is still in %v", f)
	}
	if out, errOut, code := annals(t, "audit", "verify", "--data", dir); code != 0 {
		t.Fatalf("audit verify after the expiry: %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := annals(t, "rebuild", "--data", dir); code != 0 {
		t.Fatalf("rebuild: %d\n%s%s", code, out, errOut)
	}
	if rebuilt := dumpReadModels(t, db); rebuilt != live {
		t.Fatalf("rebuilt read models differ from the live ones after the expiry:\nlive:\n%s\nrebuilt:\n%s", live, rebuilt)
	}
}
