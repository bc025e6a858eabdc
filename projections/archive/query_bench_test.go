package archive_test

import (
	"context"
	"fmt"
	"testing"

	domain "annals.im/annals/domain/archive"
	"annals.im/annals/eventstore/sqlite"
)

// BenchmarkQueryPage is the common MAM query: a page of 50 small messages
// from an archive of 2,000 (compare with BenchmarkChat's MAM figures).
func BenchmarkQueryPage(b *testing.B) {
	t := &testing.T{}
	f := open(t)
	f.inline(t)
	for i := range 2000 {
		f.send(t, "romeo@x/desk", "juliet@x", fmt.Sprint("m", i), false)
	}
	ctx := context.Background()
	q := domain.Query{Max: 50, Last: true, MaxBytes: 2 << 20}
	b.ResetTimer()
	for range b.N {
		p, err := f.reader.Query(ctx, "juliet@x", q)
		if err != nil || len(p.Entries) != 50 {
			b.Fatal(len(p.Entries), err)
		}
	}
}

// BenchmarkSend is the write side of a 1:1 message: the event appended
// with the archive kept inline (two rows and, since archive/v5, the
// sender's usage counter).
func BenchmarkSend(b *testing.B) {
	t := &testing.T{}
	f := openWith(t, sqlite.DurabilityNormal)
	f.inline(t)
	b.ResetTimer()
	for i := range b.N {
		f.send(t, "romeo@x/desk", "juliet@x", fmt.Sprint("m", i), false)
	}
}
