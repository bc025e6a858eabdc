package mux_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
	"annals.im/annals/adapters/stanza"
)

// The mux runs the handler of the payload's namespace at the destination
// and turns what it returns into the answer: a result, the stanza error
// it returned, internal-server-error for any other error or for no
// answer; and it leaves alone what nobody registered.
func TestServe(t *testing.T) {
	m := mux.New()
	m.Handle(mux.Server, "urn:ok", func(_ context.Context, iq *mux.IQ) error {
		iq.Result("<ok xmlns='urn:ok'/>")
		return nil
	})
	m.Handle(mux.Server, "urn:refuse", func(context.Context, *mux.IQ) error {
		return stanza.Errorf("not-allowed", "no <way>")
	})
	m.Handle(mux.Server, "urn:broken", func(context.Context, *mux.IQ) error { return errors.New("disk on fire") })
	m.Handle(mux.Server, "urn:silent", func(context.Context, *mux.IQ) error { return nil })
	m.Handle(mux.Account, "urn:ok", func(_ context.Context, iq *mux.IQ) error {
		iq.Result("")
		return nil
	})
	s := &muxtest.Session{Full: jid.MustParse("romeo@localhost/orchard")}
	for _, tc := range []struct {
		name, ns    string
		dest        mux.Dest
		want        []string // in the answer
		unhandled   bool
		handlerFail bool // an error for the caller's log
	}{
		{name: "result", ns: "urn:ok", want: []string{"type='result'", "id='i1'", "to='romeo@localhost/orchard'", "from='localhost'", "<ok xmlns='urn:ok'/>"}},
		{name: "account", ns: "urn:ok", dest: mux.Account, want: []string{"type='result'"}},
		{name: "stanza error", ns: "urn:refuse", want: []string{"type='error'", "<error type='cancel'><not-allowed ", "no &lt;way&gt;"}},
		{name: "other error", ns: "urn:broken", want: []string{"<internal-server-error "}, handlerFail: true},
		{name: "no answer", ns: "urn:silent", want: []string{"<internal-server-error "}, handlerFail: true},
		{name: "nobody", ns: "urn:nobody", unhandled: true},
		{name: "other destination", ns: "urn:refuse", dest: mux.Account, unhandled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, handled, err := muxtest.Ask(m, tc.dest, s, "localhost", "<iq type='get' id='i1'><q xmlns='"+tc.ns+"'/></iq>")
			if handled == tc.unhandled {
				t.Fatalf("handled %v", handled)
			}
			if (err != nil) != tc.handlerFail {
				t.Errorf("error for the log: %v", err)
			}
			if tc.unhandled && got != "" {
				t.Errorf("an unhandled IQ was answered: %q", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("answer %q lacks %q", got, w)
				}
			}
			if strings.Contains(got, "disk on fire") {
				t.Errorf("an internal error reached the client: %q", got)
			}
		})
	}
}

// Features are advertised once each, sorted; a namespace registered twice
// on one destination is a wiring mistake.
func TestRegistrations(t *testing.T) {
	m := mux.New()
	nop := func(context.Context, *mux.IQ) error { return nil }
	m.Handle(mux.Server, "urn:b", nop, "urn:b", "urn:a")
	m.Feature(mux.Server, "urn:a", "urn:c")
	if got, want := m.Features(mux.Server), []string{"urn:a", "urn:b", "urn:c"}; !slices.Equal(got, want) {
		t.Errorf("features %v, want %v", got, want)
	}
	if got := m.Features(mux.Account); len(got) != 0 {
		t.Errorf("account features %v", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("a second handler for urn:b was accepted")
		}
	}()
	m.Handle(mux.Server, "urn:b", nop)
}
