package e2e

import (
	"fmt"
	"strconv"
	"testing"
)

// Last Activity (XEP-0012) with slixmpp's own plugin: a contact online is
// 0 seconds idle; gone, the seconds since its last session ended and the
// status it left (from its stream's AccountWentOffline); the server its
// uptime; a stranger is forbidden.
func TestLastActivity(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"alice@localhost": "pw", "bob@localhost": "pw", "carol@localhost": "pw"})
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_last.py", "127.0.0.1:"+strconv.Itoa(s.port), "pw", "alice@localhost", "bob@localhost", "carol@localhost")
	got := map[string]result{}
	for _, r := range rs {
		got[fmt.Sprint(r["what"])] = r
	}
	if r := got["bob-online"]; r["error"] != nil || r["seconds"] != float64(0) {
		t.Errorf("bob online: %v; want 0 seconds", r)
	}
	if r := got["bob-gone"]; r["error"] != nil || r["seconds"].(float64) < 1 || r["seconds"].(float64) > 30 || r["status"] != "gone to Mantua" {
		t.Errorf("bob gone: %v; want a couple of seconds and his status", r)
	}
	if r := got["uptime"]; r["error"] != nil || r["seconds"].(float64) < 1 {
		t.Errorf("the server's uptime: %v", r)
	}
	if e, _ := got["bob-to-a-stranger"]["error"].(map[string]any); e == nil || e["condition"] != "forbidden" {
		t.Errorf("carol asking: %v; want forbidden", got["bob-to-a-stranger"])
	}
}
