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
	s, err := Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, db); err != nil {
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
