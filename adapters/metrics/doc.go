// Package metrics keeps Annals' Prometheus metrics (issue 15) in a
// registry of its own, passed to whatever it instruments: no package-global
// registry, so that two servers in one process (the tests) count apart.
//
// Counters and histograms on hot paths (stanzas, appends, fsyncs) are
// resolved to their label values once and cost an atomic add each. Values
// the read models already keep (rooms, occupants, archived messages,
// projection and subscription positions) are read at scrape time by
// Gauge and GaugeEach instead, costing nothing between scrapes.
//
// The instrumented packages declare the small interfaces they call
// (c2s.Metrics, sqlite.Metrics); cmd/annals wires *Metrics into them and
// serves Mux on --metrics.
package metrics
