package main

// metrics.go: Prometheus metrics, /healthz and /readyz (issue 15), on a
// listener of their own (--metrics) and on the HTTP listeners (mountWeb).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/adapters/metrics"
	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/projections"
	archiveproj "annals.im/annals/projections/archive"
	roomsproj "annals.im/annals/projections/rooms"
)

// defaultReadyMaxLag is how far (in events) a projection may be behind the
// log's head and the server still ready: one page of the runner, what a
// projection applies in one transaction, so that a server under load,
// whose projections always trail the writer by a batch or two, does not
// flap between ready and not.
const defaultReadyMaxLag = projections.Page

type metricsFlags struct {
	addr   string // "" no listener
	maxLag int
}

func (f *metricsFlags) flags(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "metrics", envOr("ANNALS_METRICS", ""),
		"serve Prometheus metrics at /metrics, and /healthz and /readyz, over plain HTTP on this address, e.g. 127.0.0.1:9464 (\"\": none; $ANNALS_METRICS)")
	fs.IntVar(&f.maxLag, "ready-max-lag", defaultReadyMaxLag, "/readyz answers 503 while a projection is more than this many events behind the log")
}

func (f *metricsFlags) validate() error {
	if f.maxLag < 0 {
		return fmt.Errorf("--ready-max-lag %d: give 0 or more events", f.maxLag)
	}
	return nil
}

// observed is what the metrics and the health checks read: the server's
// parts, set once serve has them.
type observed struct {
	m         *metrics.Metrics
	positions *metrics.Positions // live subscriptions' positions
	// linear maps positions onto what lags count (logStore.linear), set
	// by watch before any subscription is tracked.
	linear func(event.Position) uint64
	maxLag uint64
	// ready is set once the projections caught up and clients are served;
	// the check before it answers "starting".
	ready atomic.Pointer[func(ctx context.Context) error]
	url   string // of /metrics on the --metrics listener; "" none
}

func newObserved(f metricsFlags) *observed {
	o := &observed{m: metrics.New(metrics.Options{}), positions: metrics.NewPositions(), maxLag: uint64(f.maxLag)}
	o.m.Transport(c2s.TransportTCP)
	o.m.Transport(c2s.TransportWebSocket)
	return o
}

// readyz is /readyz's check.
func (o *observed) readyz(ctx context.Context) error {
	check := o.ready.Load()
	if check == nil {
		return errors.New("starting: the projections are catching up with the log")
	}
	return (*check)(ctx)
}

// mountWeb serves /healthz and /readyz on the HTTP listeners' mux (--http,
// --http-plaintext), for load balancers and probes, and /metrics to
// scrapers on this host only: those listeners face the world (or a
// reverse proxy that relays it), and --metrics is where others scrape.
func (o *observed) mountWeb(mux *http.ServeMux) {
	mux.Handle("GET /metrics", metrics.LocalOnly(o.m.Handler()))
	mux.Handle("GET /healthz", metrics.Healthz())
	mux.Handle("GET /readyz", metrics.Readyz(o.readyz))
}

// watch registers the gauges read at scrape time and makes the server
// ready: the store is open, the projections caught up, clients served.
func (o *observed) watch(store *logStore, runner *projections.Runner, own *owner, srv *c2s.Server) {
	o.linear = store.linear
	head := func(ctx context.Context) (uint64, error) {
		p, err := store.Head(ctx)
		return store.linear(p), err
	}
	lags := func(ctx context.Context) (map[string]uint64, error) {
		h, err := head(ctx)
		if err != nil {
			return nil, err
		}
		out := make(map[string]uint64)
		for _, name := range runner.Names() {
			p, err := runner.Position(ctx, name)
			if err != nil {
				return nil, err
			}
			out[name] = h - min(store.linear(p), h)
		}
		return out, nil
	}
	o.m.GaugeEach("annals_c2s_sessions", "Client sessions bound now, detached ones awaiting resumption included, by the transport they were bound on.", "transport",
		func(context.Context) (map[string]float64, error) {
			out := map[string]float64{c2s.TransportTCP: 0, c2s.TransportWebSocket: 0}
			for t, n := range srv.SessionCounts() {
				out[t] = float64(n)
			}
			return out, nil
		})
	o.m.Gauge("annals_eventstore_head_position", "Position of the last event in the log.", func(ctx context.Context) (float64, error) {
		h, err := head(ctx)
		return float64(h), err
	})
	o.m.GaugeEach("annals_projection_lag_events", "Events in the log that a projection has not applied yet.", "projection",
		func(ctx context.Context) (map[string]float64, error) {
			l, err := lags(ctx)
			out := make(map[string]float64, len(l))
			for k, v := range l {
				out[k] = float64(v)
			}
			return out, err
		})
	o.m.GaugeEach("annals_subscription_lag_events", "Events in the log that a live subscription has not handed to its consumer yet.", "consumer",
		func(ctx context.Context) (map[string]float64, error) {
			h, err := head(ctx)
			return o.positions.Lags(h), err
		})
	o.m.Gauge("annals_rooms", "Group chat rooms.", func(ctx context.Context) (float64, error) {
		r, _, err := roomsproj.Count(ctx, own.db)
		return float64(r), err
	})
	o.m.Gauge("annals_room_occupants", "Occupants of the group chat rooms, in all.", func(ctx context.Context) (float64, error) {
		_, n, err := roomsproj.Count(ctx, own.db)
		return float64(n), err
	})
	o.m.Gauge("annals_archive_messages", "Messages in the archives (XEP-0313): a copy in each party's archive for a 1:1 message, one in the room's for a room's.",
		func(ctx context.Context) (float64, error) {
			n, err := archiveproj.Size(ctx, own.db)
			return float64(n), err
		})
	check := func(ctx context.Context) error {
		if store.lite != nil {
			if err := store.lite.Err(); err != nil {
				return fmt.Errorf("event store: %w", err)
			}
		}
		l, err := lags(ctx)
		if err != nil {
			return err
		}
		for name, lag := range l {
			if lag > o.maxLag {
				return fmt.Errorf("projection %s is %d events behind the log (ready at %d or fewer)", name, lag, o.maxLag)
			}
		}
		return nil
	}
	o.ready.Store(&check)
}

// announce tells the operator where the metrics are, beside the other URLs.
func (o *observed) announce(stdout io.Writer) {
	if o.url != "" {
		fmt.Fprintf(stdout, "Metrics: %s (health: /healthz, /readyz).\n", o.url)
	}
}

// subscribe is the runner's subscribe, with each projection's
// subscription tracked for annals_subscription_lag_events.
func (o *observed) subscribe(store eventstore.Store) projections.Subscribe {
	return func(ctx context.Context, after event.Position) (projections.Tail, error) {
		sub, err := store.Subscribe(ctx, after)
		if err != nil {
			return nil, err
		}
		return o.track("projection:"+projections.Following(ctx), after, sub), nil
	}
}

// trackedStore is a store whose subscriptions are tracked as consumer's.
type trackedStore struct {
	eventstore.Store
	o        *observed
	consumer string
}

func (t trackedStore) Subscribe(ctx context.Context, after event.Position) (eventstore.Subscription, error) {
	sub, err := t.Store.Subscribe(ctx, after)
	if err != nil {
		return nil, err
	}
	return t.o.track(t.consumer, after, sub), nil
}

// track records sub's position under consumer as it hands out batches.
func (o *observed) track(consumer string, after event.Position, sub eventstore.Subscription) eventstore.Subscription {
	o.positions.Set(consumer, o.at(after))
	return &trackedSub{Subscription: sub, o: o, consumer: consumer}
}

// at is p as lags count it.
func (o *observed) at(p event.Position) uint64 {
	if o.linear == nil {
		return p.Commit
	}
	return o.linear(p)
}

type trackedSub struct {
	eventstore.Subscription
	o        *observed
	consumer string
}

func (t *trackedSub) Next(ctx context.Context) ([]event.Envelope, error) {
	batch, err := t.Subscription.Next(ctx)
	if len(batch) > 0 {
		t.o.positions.Set(t.consumer, t.o.at(batch[len(batch)-1].Position))
	}
	return batch, err
}

func (t *trackedSub) Close() error {
	t.o.positions.Drop(t.consumer)
	return t.Subscription.Close()
}

// listenMetrics opens the --metrics listener, before anything else, so
// that a taken port fails the start at once. It is plain HTTP: Prometheus
// scrapes from another host as often as not, and what it reads names no
// user; an address beyond loopback is logged, to be firewalled or proxied.
func listenMetrics(f metricsFlags, log *slog.Logger) (net.Listener, error) {
	if f.addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		log.Warn("metrics are served over plain HTTP beyond loopback: keep the port to the scraper's network", "metrics", ln.Addr().String())
	}
	return ln, nil
}

// serveMetrics serves /metrics, /healthz and /readyz on ln until stop is
// called, which waits for the scrapes under way.
func (o *observed) serveMetrics(ln net.Listener, log *slog.Logger) (stop func()) {
	hs := &http.Server{Handler: o.m.Mux(o.readyz), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("the metrics listener stopped", "err", err)
		}
	}()
	host := ln.Addr().String()
	if a, ok := ln.Addr().(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		host = net.JoinHostPort("localhost", fmt.Sprint(a.Port))
	}
	log.Info("metrics", "metrics", ln.Addr().String())
	o.url = "http://" + host + "/metrics"
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		<-done
	}
}
