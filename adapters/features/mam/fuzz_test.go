package mam

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/wellformed"
)

// FuzzMAMQuery: any query element parses to a query or a stanza error,
// never a panic, and a parsed query asks for at most MaxPage results.
// Seeds: testdata/stanzas.
func FuzzMAMQuery(f *testing.F) {
	seeds, _ := filepath.Glob("../../../testdata/stanzas/*.xml")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := stanza.Parse(in, wellformed.DefaultMaxDepth)
		if err != nil {
			return
		}
		q, ok := e.Child()
		if !ok {
			q = *e
		}
		query, err := parseMAMQuery(q)
		var qe *queryError
		if err != nil && !errors.As(err, &qe) {
			t.Fatalf("error that is not a stanza error: %v", err)
		}
		if err == nil && (query.Limit() < 1 || query.Limit() > archive.MaxPage) {
			t.Fatalf("limit %d", query.Limit())
		}
	})
}
