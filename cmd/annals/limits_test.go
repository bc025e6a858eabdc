package main

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		in    string
		avail int64
		want  int64
	}{
		{"auto", 8 << 30, 4 << 30},
		{"auto", 0, math.MaxInt64},
		{"off", 8 << 30, math.MaxInt64},
		{"512MiB", 0, 512 << 20},
		{"2GiB", 0, 2 << 30},
		{"1TiB", 0, 1 << 40},
		{"64KiB", 0, 64 << 10},
		{"1000000B", 0, 1000000},
		{"1000000", 0, 1000000},
	} {
		got, err := parseMemoryLimit(c.in, c.avail)
		if err != nil || got != c.want {
			t.Errorf("parseMemoryLimit(%q, %d) = %d, %v; want %d", c.in, c.avail, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "0", "-1GiB", "2GB", "lots", "9999999999TiB"} {
		if _, err := parseMemoryLimit(bad, 1<<30); !errors.Is(err, errUsage) {
			t.Errorf("parseMemoryLimit(%q) = %v, want a usage error", bad, err)
		}
	}
}

func TestMaxConnections(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		asked  int
		nofile uint64
		want   int
	}{
		{0, 1024, 1024 - fdReserve},
		{0, 65536, 65536 - fdReserve},
		{100, 65536, 100},
		{5000, 1024, 1024 - fdReserve}, // more than the descriptors allow: lowered
		{0, 1 << 40, math.MaxInt32 - fdReserve},
	} {
		got, err := maxConnections(c.asked, c.nofile, log)
		if err != nil || got != c.want {
			t.Errorf("maxConnections(%d, %d) = %d, %v; want %d", c.asked, c.nofile, got, err, c.want)
		}
	}
	if _, err := maxConnections(0, fdReserve+minConnections-1, log); !errors.Is(err, errUsage) {
		t.Errorf("a limit that leaves no room for clients: %v, want a usage error", err)
	}
}
