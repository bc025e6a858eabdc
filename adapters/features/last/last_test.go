package last

import (
	"context"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
)

type lastOf map[string]time.Time

func (l lastOf) LastOffline(_ context.Context, bare string) (time.Time, string, error) {
	return l[bare], "gone to Mantua", nil
}

type online map[string]bool

func (o online) Available(acct string) []mux.Session {
	if o[acct] {
		return []mux.Session{&muxtest.Session{}}
	}
	return nil
}

// The server's uptime; a contact offline since a moment, with its status;
// one online, 0; one never offline since made, item-not-found; a stranger
// forbidden.
func TestLastActivity(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s := &Service{accounts: lastOf{"romeo@localhost": t0.Add(-90 * time.Second)}, host: online{"nurse@localhost": true},
		started: t0.Add(-time.Hour), now: func() time.Time { return t0 }}
	m := mux.New()
	s.Register(m)
	asker := &muxtest.Session{Full: jid.MustParse("juliet@localhost/balcony")}
	for _, c := range []struct {
		dest      mux.Dest
		from, get string
	}{
		{mux.Server, "localhost", "seconds='3600'"},
		{mux.Contact, "romeo@localhost", "seconds='90'>gone to Mantua<"},
		{mux.Contact, "nurse@localhost", "seconds='0'"},
		{mux.Contact, "tybalt@localhost", "item-not-found"},
		{mux.Anyone, "romeo@localhost", "forbidden"},
	} {
		got, handled, err := muxtest.Ask(m, c.dest, asker, c.from, "<iq type='get' id='l'><query xmlns='jabber:iq:last'/></iq>")
		if !handled || err != nil || !strings.Contains(got, c.get) {
			t.Errorf("%v %s: %q (%v %v), want %q", c.dest, c.from, got, handled, err, c.get)
		}
	}
}
