package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// maxExpiredKeys bounds the keys one round destroys; the next round takes
// the rest (a server that kept years of keys and just turned expiry on).
const maxExpiredKeys = 10_000

// expiryMetrics tell operators that expiry runs and what it destroys.
type expiryMetrics struct {
	runs      prometheus.Counter
	destroyed prometheus.Counter
	before    prometheus.Gauge
}

func newExpiryMetrics(reg prometheus.Registerer) *expiryMetrics {
	m := &expiryMetrics{
		runs: prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_archive_expiry_runs_total",
			Help: "Rounds of --archive-expiry that recorded an expiry in the log."}),
		destroyed: prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_archive_expiry_keys_destroyed_total",
			Help: "Message keys destroyed because their day is older than --archive-expiry."}),
		before: prometheus.NewGauge(prometheus.GaugeOpts{Name: "annals_archive_expiry_before_seconds",
			Help: "Unix time before which the last expiry round removed content."}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.destroyed, m.before)
	}
	return m
}

// expireEvery runs an expiry round at start and every f.expiryEvery
// until ctx ends. Every node of a cluster runs it: the rounds are
// idempotent.
func expireEvery(ctx context.Context, store *logStore, f contentFlags, reg prometheus.Registerer, log *slog.Logger) {
	m := newExpiryMetrics(reg)
	ids := event.NewIDs()
	t := time.NewTicker(f.expiryEvery)
	defer t.Stop()
	for {
		if err := expireOnce(ctx, store, ids, time.Now(), f.expiry, m, log); err != nil && ctx.Err() == nil {
			log.Error("archive expiry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// expireOnce records that content older than now-after expires, then
// destroys the message keys of the days that ended before it: the
// event first, so that every reader treats those keys as gone before
// they are (the read models delete the rows when they see it).
func expireOnce(ctx context.Context, store *logStore, ids *event.IDs, now time.Time, after time.Duration, m *expiryMetrics, log *slog.Logger) error {
	if store.keys == nil {
		return fmt.Errorf("the log has no content keys here: expiry needs sealed content")
	}
	before := now.Add(-after).UTC()
	evs, err := archive.Expire(before, ids, now, "expiry")
	if err != nil {
		return err
	}
	if _, err := store.Append(ctx, archive.ExpiryStream, eventstore.Any, evs...); err != nil {
		return fmt.Errorf("record the expiry: %w", err)
	}
	ended, err := store.keys.Ended(ctx, before, maxExpiredKeys)
	if err != nil {
		return err
	}
	if err := store.keys.Destroy(ctx, ended); err != nil {
		return err
	}
	m.runs.Inc()
	m.destroyed.Add(float64(len(ended)))
	m.before.Set(float64(before.Unix()))
	log.Info("archive expiry", "before", before.Format(time.RFC3339), "keys_destroyed", len(ended))
	return nil
}
