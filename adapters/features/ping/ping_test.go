package ping_test

import (
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/features/ping"
	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
)

// A ping to the server or to one's own account is answered with an empty
// result; a ping of type set is a bad request.
func TestPing(t *testing.T) {
	m := mux.New()
	ping.Register(m)
	s := &muxtest.Session{Full: jid.MustParse("romeo@localhost/orchard")}
	for _, tc := range []struct {
		dest mux.Dest
		typ  string
		want string
	}{
		{mux.Server, "get", "<iq type='result' id='p' to='romeo@localhost/orchard' from='localhost'></iq>"},
		{mux.Account, "get", "<iq type='result' id='p' to='romeo@localhost/orchard' from='localhost'></iq>"},
		{mux.Server, "set", "bad-request"},
	} {
		got, handled, err := muxtest.Ask(m, tc.dest, s, "localhost", "<iq type='"+tc.typ+"' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
		if !handled || err != nil || !strings.Contains(got, tc.want) {
			t.Errorf("%v %s: %q (handled %v, %v), want %q", tc.dest, tc.typ, got, handled, err, tc.want)
		}
	}
	if f := m.Features(mux.Server); len(f) != 1 || f[0] != ping.NS {
		t.Errorf("server features %v", f)
	}
}
