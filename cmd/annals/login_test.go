package main

import (
	"errors"
	"io"
	"testing"
	"time"

	"annals.im/annals/adapters/c2s"
)

func TestLoginFlags(t *testing.T) {
	parseLogin := func(args ...string) (loginFlags, error) {
		var l loginFlags
		fs := newFlagSet("serve", io.Discard)
		l.flags(fs)
		if err := parse(fs, args); err != nil {
			return l, err
		}
		return l, l.validate()
	}
	l, err := parseLogin()
	if err != nil {
		t.Fatal(err)
	}
	var cfg c2s.Config
	l.apply(&cfg)
	if cfg.FailuresPerAccount != 5 || cfg.FailuresPerIP != 10 || cfg.FailureDelay != time.Second ||
		cfg.FailureDelayMax != 20*time.Second || cfg.FailureWindow != 15*time.Minute || cfg.ThrottleKeys != 1<<16 || len(cfg.TrustedProxies) != 0 {
		t.Fatalf("defaults: %+v", cfg)
	}
	l, err = parseLogin("--trusted-proxy", "127.0.0.0/8", "--trusted-proxy", "2001:db8::1", "--trusted-proxy", "10.1.2.3/8")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.trusted.String(); got != "127.0.0.0/8,2001:db8::1/128,10.0.0.0/8" {
		t.Fatalf("trusted proxies %s", got)
	}
	for _, bad := range [][]string{
		{"--trusted-proxy", "localhost"},
		{"--login-failures-account", "0"},
		{"--login-delay", "30s"},
		{"--login-delay", "0s"},
		{"--login-failure-window", "0s"},
		{"--login-throttle-keys", "0"},
	} {
		if _, err := parseLogin(bad...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
}
