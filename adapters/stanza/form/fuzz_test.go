package form_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/adapters/stanza/form"
	"annals.im/annals/domain/wellformed"
)

// FuzzParse: whatever element a client sends as a form, Parse returns a
// form or a *form.Error, never panics; a form it returns keeps the rules
// (bounds, each var once and not empty, no FORM_TYPE or fixed field among
// the fields, known types) and reads back the same once written out
// again: decode -> encode -> decode is stable. Seeds: testdata/*.xml.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.xml")
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata")
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := stanza.Parse(in, wellformed.DefaultMaxDepth)
		if err != nil {
			return
		}
		got, err := form.Parse(*e)
		if err != nil {
			var fe *form.Error
			if !errors.As(err, &fe) {
				t.Fatalf("an error that is not a form.Error: %v", err)
			}
			return
		}
		checkRules(t, got)
		out := encode(got)
		back, err := stanza.Parse([]byte(out), wellformed.DefaultMaxDepth)
		if err != nil {
			t.Fatalf("written out, the form does not parse: %v\n%s", err, out)
		}
		again, err := form.Parse(*back)
		if err != nil {
			t.Fatalf("written out, the form is refused: %v\nin:  %s\nout: %s", err, in, out)
		}
		if !reflect.DeepEqual(got, again) {
			t.Fatalf("not stable:\n%+v\n%+v\nin:  %s\nout: %s", got, again, in, out)
		}
	})
}

func checkRules(t *testing.T, f *form.Form) {
	t.Helper()
	if len(f.Fields) > form.MaxFields {
		t.Fatalf("%d fields", len(f.Fields))
	}
	seen, values := map[string]bool{}, 0
	for _, fl := range f.Fields {
		values += len(fl.Values)
		switch {
		case fl.Var == "" || fl.Var == form.FormType || seen[fl.Var]:
			t.Fatalf("field %q among %+v", fl.Var, f.Fields)
		case fl.Type == form.Fixed:
			t.Fatalf("a fixed field: %+v", fl)
		}
		seen[fl.Var] = true
		if _, err := parseOne(fl); err != nil {
			t.Fatalf("field %+v alone is refused: %v", fl, err)
		}
	}
	if values > form.MaxValues {
		t.Fatalf("%d values", values)
	}
}

// parseOne parses a form holding fl alone.
func parseOne(fl form.Field) (*form.Form, error) {
	e, err := stanza.Parse([]byte(encode(&form.Form{Fields: []form.Field{fl}})), wellformed.DefaultMaxDepth)
	if err != nil {
		return nil, err
	}
	return form.Parse(*e)
}

// encode writes f out as a data form.
func encode(f *form.Form) string {
	var b strings.Builder
	b.WriteString("<x xmlns='" + form.NS + "'")
	if f.Type != "" {
		b.WriteString(" type='" + stanza.Escape(f.Type) + "'")
	}
	b.WriteString(">")
	if f.FormType != "" {
		b.WriteString("<field var='FORM_TYPE' type='hidden'><value>" + stanza.Escape(f.FormType) + "</value></field>")
	}
	for _, fl := range f.Fields {
		b.WriteString("<field var='" + stanza.Escape(fl.Var) + "'")
		if fl.Type != "" {
			b.WriteString(" type='" + stanza.Escape(fl.Type) + "'")
		}
		b.WriteString(">")
		for _, v := range fl.Values {
			b.WriteString("<value>" + stanza.Escape(v) + "</value>")
		}
		b.WriteString("</field>")
	}
	b.WriteString("</x>")
	return b.String()
}
