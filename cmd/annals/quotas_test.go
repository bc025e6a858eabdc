package main

import (
	"errors"
	"io"
	"testing"
	"time"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/domain/pep"
)

func TestQuotaFlags(t *testing.T) {
	var q quotaFlags // the flags parseQuotas read last
	parseQuotas := func(args ...string) (c2s.Config, error) {
		q = quotaFlags{}
		fs := newFlagSet("serve", io.Discard)
		q.flags(fs)
		if err := parse(fs, args); err != nil {
			return c2s.Config{}, err
		}
		if err := q.validate(256 << 10); err != nil {
			return c2s.Config{}, err
		}
		var cfg c2s.Config
		q.apply(&cfg)
		return cfg, nil
	}
	cfg, err := parseQuotas()
	if err != nil {
		t.Fatal(err)
	}
	want := pep.Limits{MaxPayload: 64 << 10, MaxItems: 1000, MaxNodes: 100, MaxBytes: 1 << 20}
	if cfg.RegistrationsPerAddress != 3 || cfg.RegistrationWindow != 10*time.Minute || cfg.MaxResources != 100 ||
		cfg.MaxRosterItems != 1000 || cfg.MaxBlockedJIDs != 1000 || q.pepLimits() != want || q.vcardBytes != 128<<10 {
		t.Fatalf("defaults: %+v", cfg)
	}
	// 0 lifts the registration limit (benchmarks): c2s reads a negative as none.
	if cfg, err = parseQuotas("--registrations-per-address", "0"); err != nil || cfg.RegistrationsPerAddress >= 0 {
		t.Fatalf("--registrations-per-address 0: %d %v", cfg.RegistrationsPerAddress, err)
	}
	cfg, err = parseQuotas("--max-resources", "5", "--max-roster-items", "7", "--max-blocked-jids", "8", "--pep-max-payload", "2048", "--pep-max-items", "9",
		"--pep-max-nodes", "3", "--pep-max-bytes", "4096", "--registrations-per-address", "2", "--registration-window", "1h", "--vcard-max-bytes", "2048")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxResources != 5 || cfg.MaxRosterItems != 7 || cfg.MaxBlockedJIDs != 8 || cfg.RegistrationsPerAddress != 2 || cfg.RegistrationWindow != time.Hour ||
		q.pepLimits() != (pep.Limits{MaxPayload: 2048, MaxItems: 9, MaxNodes: 3, MaxBytes: 4096}) || q.vcardBytes != 2048 {
		t.Fatalf("set: %+v", cfg)
	}
	for _, bad := range [][]string{
		{"--registrations-per-address", "-1"},
		{"--registration-window", "0s"},
		{"--max-resources", "0"},
		{"--max-roster-items", "0"},
		{"--max-blocked-jids", "0"},
		{"--pep-max-payload", "100"},
		{"--pep-max-items", "0"},
		{"--pep-max-nodes", "0"},
		{"--pep-max-bytes", "1000"},
		{"--vcard-max-bytes", "1000"},
		{"--vcard-max-bytes", "300000"}, // no IQ that large fits in --max-stanza 256 KiB
	} {
		if _, err := parseQuotas(bad...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
}

// The vCard bound left at its default shrinks to fit a smaller
// --max-stanza (TestHostileXMLLimits serves with 8192); one given stays.
func TestVCardMaxFitsTheStanza(t *testing.T) {
	q := quotaFlags{vcardBytes: defaultVCardBytes}
	if got := q.vcardMax(8192); got != 8192-1024 {
		t.Errorf("default with --max-stanza 8192: %d", got)
	}
	if got := q.vcardMax(256 << 10); got != defaultVCardBytes {
		t.Errorf("default with --max-stanza 256 KiB: %d", got)
	}
	q.vcardBytes = 2048
	if got := q.vcardMax(8192); got != 2048 {
		t.Errorf("given 2048: %d", got)
	}
}
