package metrics

import (
	"context"
	"io"
	"net/http"
	"time"
)

// DefaultReadyTimeout bounds one readiness check.
const DefaultReadyTimeout = 5 * time.Second

// Healthz answers 200 "ok" to any GET: the process is up and serves HTTP.
// It checks nothing else on purpose: a liveness probe that failed on a
// slow store would have the process restarted when waiting is the cure.
func Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok\n")
	})
}

// Readyz answers 200 "ready" when ready returns nil, and 503 with its
// error's text otherwise. ready gets at most DefaultReadyTimeout.
func Readyz(ready func(ctx context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), DefaultReadyTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready: "+err.Error()+"\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
}

// Mux serves /metrics, /healthz and /readyz, as the --metrics listener
// does; the HTTP listener may mount the same handlers instead.
func (m *Metrics) Mux(ready func(ctx context.Context) error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.Handle("GET /healthz", Healthz())
	mux.Handle("GET /readyz", Readyz(ready))
	return mux
}
