package form_test

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/adapters/stanza/form"
	"annals.im/annals/domain/wellformed"
)

// parse reads a form given as XML the way a stream's reader would.
func parse(t testing.TB, x string) (*form.Form, error) {
	t.Helper()
	e, err := stanza.Parse([]byte(x), wellformed.DefaultMaxDepth)
	if err != nil {
		t.Fatalf("not a stanza: %v\n%s", err, x)
	}
	return form.Parse(*e)
}

// fields returns n fields f0…f(n-1), each with one value.
func fields(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("<field var='f" + strconv.Itoa(i) + "'><value>v</value></field>")
	}
	return b.String()
}

func values(n int) string { return strings.Repeat("<value>v</value>", n) }

const x = "<x xmlns='jabber:x:data' type='submit'>"

// Valid forms read as sent: FORM_TYPE apart, fields in order with their
// values untrimmed, what a submission does not use skipped.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     form.Form
	}{
		{"mam query", x + "<field var='FORM_TYPE' type='hidden'><value> urn:xmpp:mam:2 </value></field>" +
			"<field var='with'><value>juliet@capulet.lit</value></field><field var='ids'><value>a</value><value> b </value></field></x>",
			form.Form{Type: "submit", FormType: "urn:xmpp:mam:2", Fields: []form.Field{
				{Var: "with", Values: []string{"juliet@capulet.lit"}}, {Var: "ids", Values: []string{"a", " b "}}}}},
		{"no type, no FORM_TYPE, empty field", "<x xmlns='jabber:x:data'><field var='a' type='text-single'/></x>",
			form.Form{Fields: []form.Field{{Var: "a", Type: "text-single"}}}},
		{"prefixed, escaped, extensions skipped", "<d:x xmlns:d='jabber:x:data' type='submit'><d:title>t</d:title><d:instructions>i</d:instructions>" +
			"<d:field var='a&amp;b' type='list-single' label='L'><d:desc>d</d:desc><d:required/><d:value>1 &lt; 2</d:value>" +
			"<d:option label='o'><d:value>x</d:value></d:option><validate xmlns='http://jabber.org/protocol/xdata-validate'><open/></validate></d:field>" +
			"<field xmlns='urn:example' var='foreign'/><media xmlns='urn:xmpp:media-element'/><d:reported><d:field var='r'/></d:reported></d:x>",
			form.Form{Type: "submit", Fields: []form.Field{{Var: "a&b", Type: "list-single", Values: []string{"1 < 2"}}}}},
		{"fixed fields gather nothing", x + "<field type='fixed'><value>Section</value></field><field type='fixed' var='note'><value>n</value></field>" +
			"<field var='b' type='boolean'><value>1</value></field></x>",
			form.Form{Type: "submit", Fields: []form.Field{{Var: "b", Type: "boolean", Values: []string{"1"}}}}},
		{"multi-valued types", x + "<field var='h' type='hidden'><value>1</value><value>2</value></field>" +
			"<field var='j' type='jid-multi'><value>a@b</value><value>c@d</value></field><field var='t' type='text-multi'><value/><value/></field></x>",
			form.Form{Type: "submit", Fields: []form.Field{{Var: "h", Type: "hidden", Values: []string{"1", "2"}},
				{Var: "j", Type: "jid-multi", Values: []string{"a@b", "c@d"}}, {Var: "t", Type: "text-multi", Values: []string{"", ""}}}}},
		{"cancel", "<x xmlns='jabber:x:data' type='cancel'/>", form.Form{Type: "cancel"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse(t, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

// Forms XEP-0004 or XEP-0068 do not allow, or past the bounds, are
// refused with a text that says what is wrong.
func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"duplicate FORM_TYPE", x + "<field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='FORM_TYPE'><value>urn:x</value></field></x>",
			`field "FORM_TYPE" appears more than once`},
		{"duplicate var", x + "<field var='with'><value>a@b</value></field><field var='with'><value>c@d</value></field></x>",
			`field "with" appears more than once`},
		{"field without var", x + "<field><value>1</value></field></x>", "a text-single field without a var"},
		{"field with an empty var", x + "<field var='' type='boolean'/></x>", "a boolean field without a var"},
		{"unknown field type", x + "<field var='with' type='jid'><value>a@b</value></field></x>", `field "with" has type "jid"`},
		{"unknown form type", "<x xmlns='jabber:x:data' type='sumbit'/>", `form type "sumbit"`},
		{"FORM_TYPE without a value", x + "<field var='FORM_TYPE' type='hidden'/></x>", "FORM_TYPE needs one value"},
		{"FORM_TYPE empty", x + "<field var='FORM_TYPE' type='hidden'><value> </value></field></x>", "FORM_TYPE needs one value"},
		{"FORM_TYPE twice over", x + "<field var='FORM_TYPE' type='hidden'><value>a</value><value>b</value></field></x>", "FORM_TYPE needs one value"},
		{"two values in a single-valued field", x + "<field var='b' type='boolean'><value>1</value><value>0</value></field></x>",
			`field "b" of type boolean has more than one value`},
		{"an element in a value", x + "<field var='with'><value>a@b<b>c</b></value></field></x>", `a value of "with" holds an element`},
		{"not a form", "<x xmlns='jabber:x:dota' type='submit'/>", "{jabber:x:dota}x is not a form"},
		{"one field too many", x + fields(form.MaxFields+1) + "</x>", "more than 64 fields"},
		{"fixed fields count", x + strings.Repeat("<field type='fixed'/>", form.MaxFields+1) + "</x>", "more than 64 fields"},
		{"100,000 fields", x + fields(100000) + "</x>", "more than 64 fields"},
		{"one value too many", x + "<field var='ids'>" + values(form.MaxValues+1) + "</field></x>", "more than 256 values"},
		{"values over fields", x + "<field var='a'>" + values(200) + "</field><field var='b'>" + values(57) + "</field></x>", "more than 256 values"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parse(t, tc.in)
			var fe *form.Error
			if !errors.As(err, &fe) || !strings.Contains(fe.Error(), tc.want) {
				t.Fatalf("got %+v, %v; want an error saying %q", f, err, tc.want)
			}
		})
	}
}

// The bounds themselves are allowed.
func TestParseAtTheBounds(t *testing.T) {
	f, err := parse(t, x+fields(form.MaxFields)+"</x>")
	if err != nil || len(f.Fields) != form.MaxFields {
		t.Fatalf("%d fields: %v", form.MaxFields, err)
	}
	f, err = parse(t, x+"<field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='ids'>"+values(form.MaxValues-1)+"</field></x>")
	if err != nil || len(f.Fields[0].Values) != form.MaxValues-1 {
		t.Fatalf("%d values: %v", form.MaxValues, err)
	}
}

// A form of 100,000 fields costs what one of 65 does: the parse stops at
// the first field past the bound instead of reading them all.
func TestParseStopsAtTheBound(t *testing.T) {
	small, _ := stanza.Parse([]byte(x+fields(form.MaxFields+1)+"</x>"), wellformed.DefaultMaxDepth)
	huge, _ := stanza.Parse([]byte(x+fields(100000)+"</x>"), wellformed.DefaultMaxDepth)
	cost := func(e *stanza.Element) float64 {
		return testing.AllocsPerRun(3, func() {
			if _, err := form.Parse(*e); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	s, h := cost(small), cost(huge)
	if h > s+10 {
		t.Fatalf("%.0f allocations for 100,000 fields, %.0f for %d", h, s, form.MaxFields+1)
	}
	start := time.Now()
	form.Parse(*huge)
	t.Logf("100,000 fields (%d bytes) refused in %v, %.0f allocations", len(huge.Inner), time.Since(start), h)
}

func TestFieldBool(t *testing.T) {
	for v, want := range map[string]bool{"1": true, "true": true, " true ": true, "0": false, "false": false, "": false} {
		got, err := form.Field{Var: "b", Values: []string{v}}.Bool()
		if err != nil || got != want {
			t.Errorf("%q: %v, %v", v, got, err)
		}
	}
	if got, err := (form.Field{Var: "b"}).Bool(); got || err != nil {
		t.Errorf("no value: %v, %v", got, err)
	}
	for _, v := range []string{"yes", "TRUE", "2"} {
		if _, err := (form.Field{Var: "b", Values: []string{v}}).Bool(); err == nil || !strings.Contains(err.Error(), "is not a boolean") {
			t.Errorf("%q: %v", v, err)
		}
	}
}

func TestFormField(t *testing.T) {
	f, err := parse(t, x+"<field var='a'><value> 1 </value><value>2</value></field><field var='b'/></x>")
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := f.Field("a"); !ok || a.Value() != "1" {
		t.Errorf("a: %+v %v", a, ok)
	}
	if b, ok := f.Field("b"); !ok || b.Value() != "" {
		t.Errorf("b: %+v %v", b, ok)
	}
	if _, ok := f.Field("c"); ok {
		t.Error("c found")
	}
}
