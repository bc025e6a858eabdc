package archive_test

import (
	"context"
	"fmt"
	"testing"

	"annals.im/annals/projections/archive"
)

// Given three 1:1 messages between two accounts and one to oneself, the
// archives hold a copy in each party's archive: Size says 7.
func TestSize(t *testing.T) {
	f := open(t)
	f.inline(t)
	ctx := context.Background()
	if n, err := archive.Size(ctx, f.db); err != nil || n != 0 {
		t.Fatalf("empty archive: size %d, %v", n, err)
	}
	for i := range 3 {
		f.send(t, "romeo@x/desk", "juliet@x", fmt.Sprintf("m%d", i), false)
	}
	f.send(t, "romeo@x/desk", "romeo@x", "self", false)
	n, err := archive.Size(ctx, f.db)
	if err != nil {
		t.Fatal(err)
	}
	if n != 7 {
		t.Fatalf("archive size %d, want 7", n)
	}
}
