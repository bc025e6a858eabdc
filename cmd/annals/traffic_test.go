package main

import (
	"errors"
	"io"
	"testing"
	"time"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/adapters/features/muc"
)

func TestTrafficFlags(t *testing.T) {
	parseTraffic := func(args ...string) (trafficFlags, error) {
		var f trafficFlags
		fs := newFlagSet("serve", io.Discard)
		f.flags(fs)
		if err := parse(fs, args); err != nil {
			return f, err
		}
		return f, f.validate(256 << 10)
	}
	f, err := parseTraffic()
	if err != nil {
		t.Fatal(err)
	}
	var cfg c2s.Config
	var rooms muc.Config
	f.apply(&cfg)
	f.applyMUC(&rooms)
	if cfg.MaxUnacked != 5000 || cfg.MaxUnackedBytes != 8<<20 || cfg.OutQueueBytes != 8<<20 || cfg.MAMPageBytes != 2<<20 ||
		rooms.HistoryBytes != 2<<20 || rooms.RoomCreations != 10 || rooms.RoomCreationWindow != 10*time.Minute {
		t.Fatalf("defaults: %+v %+v", cfg, rooms)
	}
	if l := f.archiveLimits(); l.OfflineMax != 5000 || l.QuotaBytes != 1<<30 {
		t.Fatalf("archive defaults: %+v", l)
	}
	f, err = parseTraffic("--room-creations", "0", "--offline-max", "0", "--archive-quota-bytes", "0")
	if err != nil {
		t.Fatal(err)
	}
	f.applyMUC(&rooms)
	if rooms.RoomCreations >= 0 {
		t.Fatalf("--room-creations 0 is no limit, got %d", rooms.RoomCreations)
	}
	for _, bad := range [][]string{
		{"--sm-max-unacked", "0"},
		{"--sm-max-unacked-bytes", "1000"}, // below --max-stanza
		{"--out-queue-bytes", "1000"},      // below --max-stanza
		{"--mam-page-bytes", "0"},          // nothing fits
		{"--mam-page-bytes", "16777216"},   // larger than the queues
		{"--offline-max", "-1"},            // negative
		{"--archive-quota-bytes", "-1"},    // negative
		{"--room-creation-window", "0s"},   // no window
		{"--room-creations", "-3"},         // negative
	} {
		if _, err := parseTraffic(bad...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
}
