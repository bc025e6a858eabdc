package jetstream_test

import (
	"context"
	"testing"

	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/jetstream"
	"annals.im/annals/eventstore/storetest"
)

func open(urls string, opts jetstream.Options) storetest.Open {
	return func(t testing.TB, _ string) eventstore.Store {
		s, err := jetstream.Connect(context.Background(), urls, opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// TestConformance runs the whole storetest suite against three embedded
// servers with the log replicated three times. The crash test's child is
// this binary again, appending over its own connection to the same
// cluster until the parent kills it.
func TestConformance(t *testing.T) {
	storetest.Run(t, open(clusterURLs(t), jetstream.Options{Replicas: 3}))
}
