package muc

import (
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

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

// What the master knows of its mirrors' links: one silent since before a
// moment is lost, one heard since is not; a resend is answered at most
// once per resendGap to each mirror; a mirror service is one of a
// trusted server, nothing else.
func TestMirrorLinks(t *testing.T) {
	var l mirrorLinks
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	l.heardFrom("mirror.a.example", t0)
	l.heardFrom("mirror.b.example", t0.Add(time.Minute))
	if got := l.silent([]string{"mirror.a.example", "mirror.b.example", "mirror.c.example"}, t0.Add(30*time.Second)); !slices.Equal(got, []string{"mirror.a.example", "mirror.c.example"}) {
		t.Errorf("silent: %v", got)
	}
	l.forget("mirror.b.example")
	if got := l.silent([]string{"mirror.b.example"}, t0); len(got) != 1 {
		t.Errorf("a forgotten mirror is not silent: %v", got)
	}
	if !l.allowResend("mirror.a.example", t0) || l.allowResend("mirror.a.example", t0.Add(resendGap/2)) || !l.allowResend("mirror.b.example", t0) ||
		!l.allowResend("mirror.a.example", t0.Add(2*resendGap)) {
		t.Error("resends are not one per resendGap per mirror")
	}
	s := &Service{cfg: Config{MirrorTrust: []string{"raleigh.example"}}}
	for j, want := range map[string]bool{"mirror.raleigh.example": true, "raleigh.example": true, "evilraleigh.example": false,
		"wayne@mirror.raleigh.example": false, "mirror.raleigh.example/x": false, "mirror.evil.example": false} {
		if got := s.isMirror(jid.MustParse(j)); got != want {
			t.Errorf("isMirror(%s) = %v", j, got)
		}
	}
}
