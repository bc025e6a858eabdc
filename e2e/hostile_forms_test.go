package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 11, item 5: every data form a client submits (a room's
// configuration, a MAM query, publish-options) is read by one parser with
// bounds. Forms of 10,000 fields (~200 KB, under the stanza limit) and
// forms XEP-0004 does not allow (a duplicate FORM_TYPE, a field without a
// var, a wrong type) are answered bad-request, saying why, at once; the
// room keeps its configuration and every valid form still works.
func TestHostileForms(t *testing.T) {
	data := t.TempDir()
	addUsers(t, data, map[string]string{"mallory@localhost": "m-pw"})
	s, _ := serveOn(t, data)
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	const hall = "forms@conference.localhost"
	m := login(t, addr, "mallory", "m-pw", "desk")
	defer m.close()
	m.send("<presence to='" + hall + "/m'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
	awaitElem(t, m, "presence", "code='201'")

	var many strings.Builder
	for i := range 10000 {
		many.WriteString("<field var='f" + strconv.Itoa(i) + "'/>")
	}
	const (
		roomconfig = "<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
		mam        = "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>"
		options    = "<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
	)
	x := func(fields string) string { return "<x xmlns='jabber:x:data' type='submit'>" + fields + "</x>" }
	config := func(id, fields string) string {
		return "<iq type='set' id='" + id + "' to='" + hall + "'><query xmlns='http://jabber.org/protocol/muc#owner'>" + x(fields) + "</query></iq>"
	}
	query := func(id, fields string) string {
		return "<iq type='set' id='" + id + "'><query xmlns='urn:xmpp:mam:2' queryid='" + id + "'>" + x(fields) + "</query></iq>"
	}
	publish := func(id, fields string) string {
		return "<iq type='set' id='" + id + "'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:example:n'><item id='i'>" +
			"<n xmlns='urn:example:n'/></item></publish><publish-options>" + x(fields) + "</publish-options></pubsub></iq>"
	}
	for _, tc := range []struct{ id, iq, text string }{
		{"cfg-many", config("cfg-many", roomconfig+many.String()), "more than 64 fields"},
		{"cfg-dup", config("cfg-dup", roomconfig+roomconfig), "appears more than once"},
		{"cfg-novar", config("cfg-novar", roomconfig+"<field><value>1</value></field>"), "without a var"},
		{"mam-many", query("mam-many", mam+many.String()), "more than 64 fields"},
		{"mam-dup", query("mam-dup", mam+"<field var='FORM_TYPE'><value>urn:example</value></field>"), "appears more than once"},
		{"mam-type", query("mam-type", mam+"<field var='with' type='jid'><value>a@localhost</value></field>"), "has type"},
		{"pub-many", publish("pub-many", options+many.String()), "more than 64 fields"},
		{"pub-dup", publish("pub-dup", options+options), "appears more than once"},
	} {
		start := time.Now()
		r := askRaw(t, m, tc.iq, tc.id)
		took := time.Since(start)
		if !strings.Contains(startTagOf(r), "'error'") || !strings.Contains(r, "bad-request") || !strings.Contains(r, tc.text) {
			t.Errorf("%s: want bad-request saying %q, got %s", tc.id, tc.text, r)
		}
		t.Logf("%s (%d bytes): answered in %v", tc.id, len(tc.iq), took)
	}

	// The room is still locked, as created: the refused forms changed
	// nothing. A valid configuration, query and publication are served.
	ask(t, m, config("cfg", roomconfig+"<field var='muc#roomconfig_roomname' type='text-single'><value>Forms</value></field>"))
	if info := ask(t, m, "<iq type='get' id='info' to='"+hall+"'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"); !strings.Contains(info, "name='Forms'") {
		t.Errorf("configured room: %s", info)
	}
	m.send(query("q", mam+"<field var='with'><value>nobody@localhost</value></field>"))
	if got := collectUntil(t, m, "q"); !strings.Contains(got, "complete='true'") {
		t.Errorf("valid MAM query: %s", got)
	}
	ask(t, m, publish("pub", options+"<field var='pubsub#max_items'><value>max</value></field>"))
}
