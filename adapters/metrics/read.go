package metrics

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// readCollector reports values read at scrape time: counts the read
// models keep anyway (rooms, occupants, archived messages) and positions
// (projections, subscriptions) cost nothing on the paths that change them,
// only a query per scrape.
type readCollector struct {
	desc    *prometheus.Desc
	read    ReadEach
	labeled bool
	timeout time.Duration
}

func (c *readCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *readCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	vals, err := c.read(ctx)
	if err == nil {
		err = ctx.Err() // a read that ignored its deadline is still late
	}
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("read %s: %w", c.desc, err))
		return
	}
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		if c.labeled {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, vals[k], k)
		} else {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, vals[k])
		}
	}
}

// Positions holds where each live consumer of the log is (a subscription's
// last position handed out), for annals_subscription_lag_events: a
// consumer sets its position after each batch and drops it when it stops.
type Positions struct {
	mu sync.Mutex
	at map[string]uint64
}

// NewPositions returns an empty set.
func NewPositions() *Positions { return &Positions{at: make(map[string]uint64)} }

// Set records that consumer has been handed the log up to pos.
func (p *Positions) Set(consumer string, pos uint64) {
	p.mu.Lock()
	p.at[consumer] = pos
	p.mu.Unlock()
}

// Drop forgets consumer, which no longer follows the log.
func (p *Positions) Drop(consumer string) {
	p.mu.Lock()
	delete(p.at, consumer)
	p.mu.Unlock()
}

// Lags returns how many positions each consumer is behind head; one ahead
// of the head read (it read after) is 0 behind.
func (p *Positions) Lags(head uint64) map[string]float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]float64, len(p.at))
	for c, at := range p.at {
		out[c] = float64(head - min(at, head))
	}
	return out
}
