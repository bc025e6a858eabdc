package metrics

import (
	"net"
	"net/http"
)

// LocalOnly serves h to requests that come straight from a loopback
// address, and answers 403 to the rest: for /metrics on a listener open to
// the world (--http), where it is for a scraper on the same host. A
// request relayed by a reverse proxy (which says whom for in Forwarded or
// X-Forwarded-For) is not local, whatever address the proxy connects from.
// A scraper elsewhere reads --metrics instead.
func LocalOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() || r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" {
			http.Error(w, "metrics are served to this host only here; scrape the --metrics listener", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
