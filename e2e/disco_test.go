package e2e

import (
	"regexp"
	"slices"
	"strconv"
	"testing"
)

// Disco#info on the server and on an account lists exactly what is
// served (issue 14): each feature below is answered by a test of its own
// elsewhere in this package; a feature added or dropped must change this
// list, and so be looked at.
func TestDiscoListsWhatIsServed(t *testing.T) {
	t.Parallel()
	// With an admin (--admin) the server also serves ad-hoc commands
	// (XEP-0050); without one it lists no such feature.
	data := t.TempDir()
	addUsers(t, data, map[string]string{"juliet@localhost": "pw"})
	s, _ := serveOn(t, data, "--admin", "juliet@localhost")
	c := login(t, "127.0.0.1:"+strconv.Itoa(s.port), "juliet", "pw", "desk")
	defer c.close()
	feature := regexp.MustCompile(`<feature var='([^']*)'`)
	features := func(to string) []string {
		t.Helper()
		r := ask(t, c, "<iq type='get' id='d' to='"+to+"'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
		var out []string
		for _, m := range feature.FindAllStringSubmatch(r, -1) {
			out = append(out, m[1])
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		to   string
		want []string
	}{
		{"localhost", []string{
			"http://jabber.org/protocol/commands",
			"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
			"jabber:iq:last", "jabber:iq:private", "jabber:iq:version", "urn:xmpp:blocking", "urn:xmpp:carbons:2", "urn:xmpp:ping",
			"vcard-temp",
		}},
		{"juliet@localhost", []string{
			"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
			"http://jabber.org/protocol/pubsub#persistent-items", "http://jabber.org/protocol/pubsub#publish",
			"http://jabber.org/protocol/pubsub#publish-options", "http://jabber.org/protocol/pubsub#retract-items",
			"http://jabber.org/protocol/pubsub#retrieve-items",
			"https://annals.im/protocol/archive-id", "urn:xmpp:blocking", "urn:xmpp:bookmarks:1#compat",
			"urn:xmpp:mam:2", "urn:xmpp:mam:2#extended", "urn:xmpp:mam:2#groupchat-available", "urn:xmpp:mam:2#groupchat-field",
			"urn:xmpp:message-retract:1#tombstone", "urn:xmpp:push:0", "urn:xmpp:sid:0", "vcard-temp",
		}},
	} {
		got := features(c.to)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("disco#info on %s lists\n%q\nwant\n%q", c.to, got, want)
		}
	}
}
