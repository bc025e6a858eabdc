package main

import (
	"errors"
	"testing"
)

func TestParseStore(t *testing.T) {
	for _, tc := range []struct {
		in, servers, stream, prefix string
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
		case u.servers != tc.servers || u.stream != tc.stream || u.prefix != tc.prefix || u.replicas != tc.replicas:
			t.Errorf("%q: %+v", tc.in, *u)
		}
	}
	if got := redact("nats://admin:s3cret@h1,h2"); got != "nats://…@h1,h2" {
		t.Errorf("redact: %q", got)
	}
}
