package archive

import (
	"math"
	"testing"
	"time"
)

func TestUnixNanoClamped(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		t    time.Time
		want int64
	}{
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), math.MaxInt64},
		{"year 1", time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), math.MinInt64},
		{"just past the last", MaxTime.Add(time.Nanosecond), math.MaxInt64},
		{"the last", MaxTime, math.MaxInt64},
		{"the first", MinTime, math.MinInt64},
		{"2026", time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()},
	} {
		if got := UnixNano(c.t); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}
