package muc

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux/muxtest"
)

// A join through a mirror counts as one only from a trusted server's
// mirror: the server itself or one of its subdomains, for users of that
// server. Anything else is an ordinary join.
func TestMirrorVia(t *testing.T) {
	s := &Service{cfg: Config{MirrorTrust: []string{"raleigh.example"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	join := func(via string) *element {
		e, err := muxtest.Parse("<presence><x xmlns='http://jabber.org/protocol/muc'/><dmuc xmlns='http://tridsys.com/protocol/dmuc' from='" + via + "'/></presence>")
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	wayne := jid.MustParse("wayne@raleigh.example/annals-rooms")
	for _, tc := range []struct {
		user jid.JID
		via  string
		want string
	}{
		{wayne, "mirror.raleigh.example", "mirror.raleigh.example"},
		{wayne, "raleigh.example", "raleigh.example"},
		{wayne, "mirror.evil.example", ""},                                     // another server's mirror
		{wayne, "evilraleigh.example", ""},                                     // not a subdomain
		{wayne, "wayne@mirror.raleigh.example", ""},                            // not a service
		{jid.MustParse("tybalt@evil.example/x"), "mirror.evil.example", ""},    // not trusted
		{jid.MustParse("tybalt@evil.example/x"), "mirror.raleigh.example", ""}, // a mirror for another server's users
	} {
		if got := s.mirrorVia(tc.user, join(tc.via)); got != tc.want {
			t.Errorf("%s via %s: %q, want %q", tc.user, tc.via, got, tc.want)
		}
	}
	plain, _ := muxtest.Parse("<presence><x xmlns='http://jabber.org/protocol/muc'/></presence>")
	if got := s.mirrorVia(wayne, plain); got != "" {
		t.Errorf("an ordinary join: %q", got)
	}
	if strings.Contains(s.serviceInfo(), nsDMUC) != true {
		t.Error("a service that trusts mirrors does not say it offers DMUC3")
	}
	if strings.Contains((&Service{}).serviceInfo(), nsDMUC) {
		t.Error("a service that trusts no mirror says it offers DMUC3")
	}
}
