package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStore(t *testing.T) {
	for _, tc := range []struct {
		in, servers, stream, prefix string
		kurrent, user, password     string
		replicas                    int
		bad, sqlite                 bool
	}{
		{in: "", sqlite: true},
		{in: "sqlite", sqlite: true},
		{in: "nats://h1,h2,h3", servers: "nats://h1:4222,nats://h2:4222,nats://h3:4222"},
		{in: "nats://h1:1,nats://h2:2", servers: "nats://h1:1,nats://h2:2"},
		{in: "tls://u:p@h1,h2:5?stream=LOG&prefix=x&replicas=5", servers: "tls://h1:4222,tls://h2:5", user: "u", password: "p", stream: "LOG", prefix: "x", replicas: 5},
		{in: "nats://annals:a%20long%40pass@h1", servers: "nats://h1:4222", user: "annals", password: "a long@pass"},
		{in: "nats://annals:50%zz@h1", bad: true},
		{in: "nats://[::1]", servers: "nats://[::1]:4222"},
		{in: "nats://h1,,h2", bad: true},
		{in: "nats://h1?replicas=0", bad: true},
		{in: "nats://h1?replicas=x", bad: true},
		{in: "nats://h1?stream=a&bogus=1", bad: true},
		{in: "postgres://h1", bad: true},
		{in: "kurrentdb://h1:2113?tls=false", kurrent: "kurrentdb://h1:2113?tls=false"},
		{in: "esdb+discover://u:p@h1:2113", kurrent: "esdb+discover://u:p@h1:2113"},
		{in: "/var/lib/annals", bad: true},
	} {
		u, err := parseStore(tc.in)
		switch {
		case tc.bad:
			if err == nil || !errors.Is(err, errUsage) {
				t.Errorf("%q: %v, want a usage error", tc.in, err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.sqlite:
			if u != nil {
				t.Errorf("%q: %+v, want the embedded store", tc.in, u)
			}
		case u.servers != tc.servers || u.stream != tc.stream || u.prefix != tc.prefix || u.replicas != tc.replicas || u.kurrent != tc.kurrent || u.user != tc.user || u.password != tc.password:
			t.Errorf("%q: %+v", tc.in, *u)
		}
	}
	if got := redact("nats://admin:s3cret@h1,h2"); got != "nats://…@h1,h2" {
		t.Errorf("redact: %q", got)
	}
}

// A KurrentDB log needs a NATS bus beside it; the bus is NATS only.
func TestKurrentNeedsBus(t *testing.T) {
	c := Defaults()
	c.Data, c.Store = t.TempDir(), "kurrentdb://127.0.0.1:1?tls=false"
	if _, err := openStore(context.Background(), c, false, c.logger(io.Discard)); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--bus") {
		t.Fatalf("kurrentdb without --bus: %v", err)
	}
	c.Bus = "kurrentdb://elsewhere"
	if err := c.Validate(); !errors.Is(err, errUsage) {
		t.Fatalf("--bus kurrentdb://: %v", err)
	}
}

// The bus's bounds must be positive; serve says so before opening anything.
func TestServeRefusesBadBusBounds(t *testing.T) {
	for _, flag := range []string{"--cluster-heartbeat=0s", "--cluster-missed=0", "--cluster-max-nodes=0", "--cluster-max-sessions=-1"} {
		err := run(context.Background(), []string{"serve", "--data", t.TempDir(), "--store", "nats://127.0.0.1:1", flag}, nil, io.Discard, io.Discard)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--cluster-") {
			t.Errorf("serve %s: %v, want a usage error", flag, err)
		}
	}
}

// One directory is one node's read models or one machine's log, never
// both: a forgotten --store does not start an empty log beside a node's.
func TestDataDirectoryKinds(t *testing.T) {
	ctx := context.Background()
	c := Defaults()
	c.Data = t.TempDir()
	if err := os.WriteFile(filepath.Join(c.Data, "readmodels.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openStore(ctx, c, true, c.logger(io.Discard)); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--store") {
		t.Fatalf("the embedded store in a node's directory: %v", err)
	}
	c.Data = t.TempDir()
	store, err := openStore(ctx, c, true, c.logger(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	c.Store = "nats://127.0.0.1:1"
	if _, err := openStore(ctx, c, true, c.logger(io.Discard)); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "directory of its own") {
		t.Fatalf("a cluster node in a log's directory: %v", err)
	}
}
