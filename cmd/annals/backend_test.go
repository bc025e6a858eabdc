package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestParseStore(t *testing.T) {
	for _, tc := range []struct {
		in, servers, stream, prefix string
		kurrent                     string
		replicas                    int
		bad, sqlite                 bool
	}{
		{in: "", sqlite: true},
		{in: "sqlite", sqlite: true},
		{in: "nats://h1,h2,h3", servers: "nats://h1:4222,nats://h2:4222,nats://h3:4222"},
		{in: "nats://h1:1,nats://h2:2", servers: "nats://h1:1,nats://h2:2"},
		{in: "tls://u:p@h1,h2:5?stream=LOG&prefix=x&replicas=5", servers: "tls://u:p@h1:4222,tls://u:p@h2:5", stream: "LOG", prefix: "x", replicas: 5},
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
		case u.servers != tc.servers || u.stream != tc.stream || u.prefix != tc.prefix || u.replicas != tc.replicas || u.kurrent != tc.kurrent:
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
