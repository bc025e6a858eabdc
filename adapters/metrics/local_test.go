package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// LocalOnly serves a scraper on this host and refuses anyone else, and
// anything relayed by a reverse proxy.
func TestLocalOnly(t *testing.T) {
	h := LocalOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("metrics")) }))
	for _, c := range []struct {
		remote, header string
		want           int
	}{
		{"127.0.0.1:40000", "", 200},
		{"[::1]:40000", "", 200},
		{"192.0.2.7:40000", "", 403},
		{"[2001:db8::1]:40000", "", 403},
		{"127.0.0.1:40000", "X-Forwarded-For", 403},
		{"127.0.0.1:40000", "Forwarded", 403},
		{"garbage", "", 403},
	} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.RemoteAddr = c.remote
		if c.header != "" {
			req.Header.Set(c.header, "for=192.0.2.7")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("from %s (%s): %d, want %d", c.remote, c.header, rec.Code, c.want)
		}
	}
}
