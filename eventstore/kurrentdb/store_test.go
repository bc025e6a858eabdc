package kurrentdb_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/kurrentdb"
	"annals.im/annals/eventstore/storetest"
)

// envURL names the KurrentDB the conformance suite runs against. No
// KurrentDB runs on the project's machines, so CI skips it; an operator runs
// it against their own (README, "Adding a store").
const envURL = "ANNALS_KURRENTDB_URL"

// TestConformance runs the whole storetest suite, sealing included
// (RunCodec), on the KurrentDB at
// $ANNALS_KURRENTDB_URL. Its crash test re-executes this test binary, which
// inherits the variable and so reaches the same database; the directory the
// suite passes is not used.
func TestConformance(t *testing.T) {
	url := os.Getenv(envURL)
	if url == "" {
		t.Skip("SKIPPED: the KurrentDB conformance suite needs a KurrentDB server; " +
			"set " + envURL + " to run it, e.g. " + envURL + "='kurrentdb://127.0.0.1:2113?tls=false' " +
			"go test -race -count=1 -v -run TestConformance ./eventstore/kurrentdb/ (README, \"Adding a store\")")
	}
	open := func(t testing.TB, _ string, c eventstore.Codec) eventstore.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := kurrentdb.Open(ctx, url, kurrentdb.Options{Codec: c})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	storetest.Run(t, func(t testing.TB, dir string) eventstore.Store { return open(t, dir, nil) })
	storetest.RunCodec(t, open)
}

// Open fails, and says where, when nothing answers at the URL or the URL is
// not a KurrentDB connection string.
func TestOpenFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a loopback port with nothing behind it
	for _, tc := range []struct{ url, want string }{
		{"kurrentdb://" + addr + "?tls=false&maxDiscoverAttempts=1", addr},
		{"postgres://" + addr, "connection string"},
		{"kurrentdb://" + addr + "?tls=maybe", "connection string"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := time.Now()
		s, err := kurrentdb.Open(ctx, tc.url, kurrentdb.Options{})
		cancel()
		if err == nil {
			s.Close()
			t.Fatalf("Open(%s) succeeded", tc.url)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s) = %v, want it to mention %q", tc.url, err, tc.want)
		}
		t.Logf("Open(%s) failed in %v: %v", tc.url, time.Since(start).Round(time.Millisecond), err)
	}
}
