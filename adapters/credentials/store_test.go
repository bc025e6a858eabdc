package credentials

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

func TestStore(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, db, nil); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if _, err := s.Get(ctx, "juliet@example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Put: %v, want ErrNotFound", err)
	}
	first, _ := Derive("balcony")
	second, _ := Derive("poison")
	for _, c := range []Credentials{first, second} {
		if err := s.Put(ctx, "juliet@example.com", c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Get(ctx, "juliet@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Verify("poison") || got.Verify("balcony") {
		t.Fatal("Put did not replace the credentials")
	}
	if string(got.SHA1.ServerKey) != string(second.SHA1.ServerKey) || got.SHA1.Iterations != second.SHA1.Iterations {
		t.Fatal("SHA-1 keys did not round-trip")
	}
	if err := s.Delete(ctx, "juliet@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "juliet@example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "juliet@example.com"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

// Every spelling of a name is one key: writing, reading and deleting under
// any of them reach the same row.
func TestStoreNormalisesNames(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := Derive("first")
	second, _ := Derive("second")
	if err := s.Put(ctx, "ｙａｎ@localhost", first); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "YAN@localhost", second); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"yan@localhost", "ｙａｎ@localhost", "Yan@LOCALHOST"} {
		got, err := s.Get(ctx, name)
		if err != nil || !got.Verify("second") || got.Verify("first") {
			t.Fatalf("Get(%q) = %v: not the one row of yan@localhost", name, err)
		}
	}
	if err := s.Delete(ctx, "ｙａｎ@localhost"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "yan@localhost"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after deleting another spelling: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "not a jid@@"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of no JID: %v, want ErrNotFound", err)
	}
	if err := s.Put(ctx, "not a jid@@", first); err == nil {
		t.Fatal("Put under no JID succeeded")
	}
}

// Rows written by older versions under a name that is not normalised move
// to the normalised name; where several spellings of one name collide, none
// is trusted.
func TestStoreMigratesAliases(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Open(ctx, db, nil); err != nil {
		t.Fatal(err)
	}
	pw := map[string]string{
		"ｙａｎ@localhost": "alone", // moves to yan@localhost
		"ｂｏｂ@localhost": "alias", // collides with bob@localhost: both go
		"bob@localhost": "own",
		"ｅｖｅ@localhost": "one", // two aliases: both go
		"ｅve@localhost": "other",
		"amy@localhost": "kept", // already normalised: untouched
		"@@":            "junk", // no JID: dropped
	}
	for k, p := range pw {
		c, _ := Derive(p)
		if _, err := db.Exec(`INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, k,
			c.SHA1.Salt, c.SHA1.Iterations, c.SHA1.StoredKey, c.SHA1.ServerKey,
			c.SHA256.Salt, c.SHA256.Iterations, c.SHA256.StoredKey, c.SHA256.ServerKey); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Get(ctx, "yan@localhost"); err != nil || !c.Verify("alone") {
		t.Fatalf("yan@localhost: %v: the lone alias did not move", err)
	}
	if c, err := s.Get(ctx, "amy@localhost"); err != nil || !c.Verify("kept") {
		t.Fatalf("amy@localhost: %v", err)
	}
	for _, j := range []string{"bob@localhost", "eve@localhost"} {
		if _, err := s.Get(ctx, j); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: %v, want ErrNotFound: colliding spellings must all go", j, err)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM credentials`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows left (%v), want 2 (yan, amy)", n, err)
	}
}
