package version_test

import (
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/features/version"
	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
)

// The server tells its name and version, escaped, and nothing else.
func TestVersion(t *testing.T) {
	m := mux.New()
	version.Register(m, "Annals", "1.0 <dev>")
	s := &muxtest.Session{Full: jid.MustParse("romeo@localhost/orchard")}
	got, handled, err := muxtest.Ask(m, mux.Server, s, "", "<iq type='get' id='v'><query xmlns='jabber:iq:version'/></iq>")
	want := "<query xmlns='jabber:iq:version'><name>Annals</name><version>1.0 &lt;dev&gt;</version></query>"
	if !handled || err != nil || !strings.Contains(got, want) || strings.Contains(got, "<os>") {
		t.Errorf("version: %q (handled %v, %v)", got, handled, err)
	}
	if _, handled, _ := muxtest.Ask(m, mux.Account, s, "", "<iq type='get' id='v'><query xmlns='jabber:iq:version'/></iq>"); handled {
		t.Error("the account answered a version request: its clients do")
	}
}
