package secrets

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

func TestStore(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, db); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	const bm = "urn:xmpp:bookmarks:1"
	node := func(acct string) map[string][]string {
		t.Helper()
		got, err := s.Node(ctx, acct, bm)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, p := range []struct {
		acct, item string
		pws        []string
	}{
		{"juliet@example.com", "hall@conf", []string{"first"}},
		{"juliet@example.com", "hall@conf", []string{"", "second"}}, // replaces
		{"juliet@example.com", "crypt@conf", []string{"tomb"}},
		{"juliet@example.com", "garden@conf", []string{""}}, // nothing to keep
		{"romeo@example.com", "hall@conf", []string{"his"}},
	} {
		if err := s.Put(ctx, p.acct, bm, p.item, p.pws); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{"hall@conf": {"", "second"}, "crypt@conf": {"tomb"}}
	if got := node("juliet@example.com"); !reflect.DeepEqual(got, want) {
		t.Fatalf("juliet's: %v, want %v", got, want)
	}
	if err := s.Put(ctx, "juliet@example.com", bm, "crypt@conf", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "juliet@example.com", bm, "nothing@conf"); err != nil {
		t.Fatal(err)
	}
	if got := node("juliet@example.com"); len(got) != 1 {
		t.Fatalf("a publication without a password left %v", got)
	}
	if err := s.DeleteAccount(ctx, "juliet@example.com"); err != nil {
		t.Fatal(err)
	}
	if got := node("juliet@example.com"); len(got) != 0 {
		t.Fatalf("after the account's deletion: %v", got)
	}
	if got := node("romeo@example.com"); !reflect.DeepEqual(got, map[string][]string{"hall@conf": {"his"}}) {
		t.Fatalf("another account's passwords went too: %v", got)
	}
}
