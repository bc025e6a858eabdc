package event_test

import (
	"testing"

	"annals.im/annals/domain/event"
)

func TestPositionRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want event.Position
	}{
		{"0", event.Position{}},
		{"12", event.Position{Commit: 12, Prepare: 12}},
		{"12/15", event.Position{Commit: 12, Prepare: 15}},
		{"15/12", event.Position{Commit: 15, Prepare: 12}},
		{"18446744073709551615", event.Position{Commit: 1<<64 - 1, Prepare: 1<<64 - 1}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			// when
			got, err := event.ParsePosition(tc.in)
			// then
			if err != nil {
				t.Fatalf("ParsePosition(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParsePosition(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if s := got.String(); s != tc.in {
				t.Errorf("String() = %q, want %q", s, tc.in)
			}
		})
	}
}

func TestParsePositionRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "x", "1/", "/1", "-1", "+1", "1/-2", "1/2/3", " 1", "18446744073709551616"} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			// when
			p, err := event.ParsePosition(in)
			// then
			if err == nil {
				t.Errorf("ParsePosition(%q) = %+v, want an error", in, p)
			}
		})
	}
}

func TestPositionLess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p, q string
		want bool
	}{
		{"0", "0", false},
		{"0", "1", true},
		{"1", "0", false},
		{"5", "5", false},
		{"5/3", "5/4", true},  // same commit: prepare decides
		{"5/4", "5/3", false}, //
		{"4/9", "5/0", true},  // commit decides before prepare
		{"5/0", "4/9", false}, //
		{"9", "10", true},     // numeric, not lexical
	}
	for _, tc := range tests {
		t.Run(tc.p+"<"+tc.q, func(t *testing.T) {
			t.Parallel()
			// given
			p, q := mustPosition(t, tc.p), mustPosition(t, tc.q)
			// when, then
			if got := p.Less(q); got != tc.want {
				t.Errorf("%v.Less(%v) = %v, want %v", p, q, got, tc.want)
			}
		})
	}
}

func TestPositionIsZero(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    event.Position
		want bool
	}{
		{event.Position{}, true},
		{event.Position{Commit: 1}, false},
		{event.Position{Prepare: 1}, false},
		{event.Position{Commit: 1, Prepare: 1}, false},
	}
	for _, tc := range tests {
		if got := tc.p.IsZero(); got != tc.want {
			t.Errorf("%+v.IsZero() = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func mustPosition(t *testing.T, s string) event.Position {
	t.Helper()
	p, err := event.ParsePosition(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// proposed is what a Decide returns: no stream, version, position or hash yet.
