package main

import (
	"errors"
	"io"
	"testing"
	"time"

	"annals.im/annals/adapters/s2s"
)

func TestS2SFlags(t *testing.T) {
	t.Setenv("ANNALS_S2S", "") // TestMain's, for the servers other tests start
	parseS2S := func(args ...string) (s2sFlags, error) {
		var f s2sFlags
		fs := newFlagSet("serve", io.Discard)
		f.flags(fs)
		if err := parse(fs, args); err != nil {
			return f, err
		}
		return f, f.validate()
	}
	f, err := parseS2S()
	if err != nil {
		t.Fatal(err)
	}
	if f.addr != ":5269" || f.maxStanza != 512<<10 || f.stanzaRate != s2s.DefaultMaxStanzaRate || f.stanzaBurst != s2s.DefaultStanzaBurst ||
		f.maxConns != 256 || f.maxConnsPerIP != 8 || f.maxPeers != s2s.DefaultMaxPeers || f.queueBytes != 4<<20 || f.queuedBytes != 64<<20 ||
		f.idle != 10*time.Minute || f.inbound != 2048 || f.inboundBytes != 32<<20 {
		t.Fatalf("defaults: %+v", f)
	}
	if f, err := parseS2S("--s2s", "", "--s2s-route", "example.org=127.0.0.1:5269", "--s2s-insecure-domain", "lab.example"); err != nil || f.addr != "" {
		t.Fatalf("federation off with a route: %+v %v", f, err)
	}
	for _, bad := range [][]string{
		{"--s2s", "nowhere"},                      // no port
		{"--s2s-route", "example.org"},            // no address
		{"--s2s-route", "a@example.org=h:5269"},   // not a domain
		{"--s2s-insecure-domain", "not a domain"}, // spaces
		{"--s2s-max-stanza", "100"},               // below 4096
		{"--s2s-max-stanza-rate", "0"},            // nothing gets through
		{"--s2s-stanza-burst", "0"},               // nothing gets through
		{"--s2s-max-connections-per-ip", "0"},     // nobody may connect
		{"--s2s-max-peers", "0"},                  // nobody may be reached
		{"--s2s-queue-bytes", "1000"},             // below a stanza
		{"--s2s-queued-bytes", "1000000"},         // below one queue
		{"--s2s-idle-timeout", "0s"},              // closed at once
	} {
		if _, err := parseS2S(bad...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
}
