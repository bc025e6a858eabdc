package pep

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"annals.im/annals/adapters/mux/muxtest"
	pepdomain "annals.im/annals/domain/pep"
)

// The publish-options form (XEP-0223) sets the node's access model and
// item count ("max" is the highest); what the server does not configure is
// accepted and ignored; a form XEP-0004 does not allow, or a count that is
// not one, is refused with pepdomain.ErrInvalid (bad-request).
func TestParsePublishOptions(t *testing.T) {
	const head = "<publish-options xmlns='http://jabber.org/protocol/pubsub'><x xmlns='jabber:x:data' type='submit'>" +
		"<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
	const tail = "</x></publish-options>"
	many := strings.Builder{}
	for i := range 10000 {
		many.WriteString("<field var='f" + strconv.Itoa(i) + "'/>")
	}
	for _, tc := range []struct {
		name, in string
		want     pepdomain.Config
		err      string
	}{
		{"bookmarks", head + "<field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#max_items'><value>max</value></field>" +
			"<field var='pubsub#access_model'><value>whitelist</value></field>" + tail, pepdomain.Config{AccessModel: "whitelist", MaxItems: 500}, ""},
		{"a count", head + "<field var='pubsub#max_items' type='text-single'><value> 7 </value></field>" + tail, pepdomain.Config{MaxItems: 7}, ""},
		{"no form", "<publish-options xmlns='http://jabber.org/protocol/pubsub'/>", pepdomain.Config{}, ""},
		{"roster groups", head + "<field var='pubsub#access_model'><value>roster</value></field><field var='pubsub#roster_groups_allowed' type='list-multi'>" +
			"<value>Friends</value><value>Family</value></field>" + tail, pepdomain.Config{AccessModel: "roster", RosterGroups: []string{"Friends", "Family"}}, ""},
		{"not a count", head + "<field var='pubsub#max_items'><value>lots</value></field>" + tail, pepdomain.Config{}, `pubsub#max_items "lots"`},
		{"no count", head + "<field var='pubsub#max_items'/>" + tail, pepdomain.Config{}, `pubsub#max_items ""`},
		{"twice", head + "<field var='pubsub#max_items'><value>1</value></field><field var='pubsub#max_items'><value>max</value></field>" + tail,
			pepdomain.Config{}, `field "pubsub#max_items" appears more than once`},
		{"two FORM_TYPEs", head + "<field var='FORM_TYPE' type='hidden'><value>urn:x</value></field>" + tail, pepdomain.Config{}, `"FORM_TYPE" appears more than once`},
		{"10,000 fields", head + many.String() + tail, pepdomain.Config{}, "more than 64 fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			po, err := muxtest.Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parsePublishOptions(*po, 500)
			switch {
			case tc.err == "" && (err != nil || !reflect.DeepEqual(got, tc.want)):
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			case tc.err != "" && (!errors.Is(err, pepdomain.ErrInvalid) || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("got %v; want pepdomain.ErrInvalid saying %q", err, tc.err)
			}
		})
	}
}
