package adhoc

import (
	"context"
	"fmt"
	"strings"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/adapters/stanza/form"
)

// values are the fields submitted so far in a session, by var.
type values map[string][]string

// one returns field name's first value, or "".
func (v values) one(name string) string {
	if len(v[name]) == 0 {
		return ""
	}
	return v[name][0]
}

// field is one field of a stage's form (XEP-0004 §3.2) and what a
// submission of it may hold.
type field struct {
	name, typ, label string
	required         bool
	options          []string // a list-single's values
	maxValues        int      // values a submission may give it
	maxBytes         int      // bytes in all its values together
}

// stage is one form of a command.
type stage struct {
	title, instructions string
	fields              []field
	// describe, when set, gives the instructions from the values so far
	// (the accounts a deletion is about to remove). Not fixed fields:
	// clients send those back without their type, and a field without a
	// type needs a var (XEP-0004 §3.2).
	describe func(v values) string
	// check validates what was submitted at this stage (v holds it with
	// what earlier stages gathered) and may normalize it; its error is
	// the answer, and the session stays at this stage.
	check func(ctx context.Context, r *request, v values) error
	// complete lets the command complete from this stage, which need not
	// be the last (a deletion may skip its confirmation).
	complete bool
}

// render is the stage's form, with the values remembered from earlier
// submissions (XEP-0050 §3.3 allows them; private ones are not shown).
func (st *stage) render(v values) string {
	var b strings.Builder
	b.WriteString("<x xmlns='" + form.NS + "' type='form'><title>" + stanza.Escape(st.title) + "</title>")
	instructions := st.instructions
	if st.describe != nil {
		instructions = st.describe(v)
	}
	if instructions != "" {
		b.WriteString("<instructions>" + stanza.Escape(instructions) + "</instructions>")
	}
	b.WriteString(hiddenFormType)
	for _, f := range st.fields {
		b.WriteString("<field type='" + f.typ + "' var='" + f.name + "'")
		if f.label != "" {
			b.WriteString(" label='" + stanza.Escape(f.label) + "'")
		}
		b.WriteString(">")
		if f.required {
			b.WriteString("<required/>")
		}
		if f.typ != form.TextPrivate {
			for _, val := range v[f.name] {
				b.WriteString("<value>" + stanza.Escape(val) + "</value>")
			}
		}
		for _, o := range f.options {
			b.WriteString("<option label='" + stanza.Escape(o) + "'><value>" + stanza.Escape(o) + "</value></option>")
		}
		b.WriteString("</field>")
	}
	b.WriteString("</x>")
	return b.String()
}

// hiddenFormType names the form's meaning (XEP-0068), as XEP-0133's
// forms all do.
const hiddenFormType = "<field type='hidden' var='FORM_TYPE'><value>" + NSAdmin + "</value></field>"

// read returns the stage's fields as command c submitted them, each
// within its bounds; fields the stage does not ask for are ignored.
func (st *stage) read(c stanza.Element) (values, error) {
	v := values{}
	x, ok := c.Named(form.NS, "x")
	if !ok {
		for _, f := range st.fields {
			if f.required {
				return nil, badPayload("submit the form: %s is required", f.name)
			}
		}
		return v, nil
	}
	fm, err := form.Parse(x)
	if err != nil {
		return nil, badPayload("%v", err)
	}
	switch fm.Type {
	case form.TypeSubmit, form.TypeCancel: // XEP-0050 §3.4.1: a cancel form counts as submitted
	default:
		return nil, badPayload("the form is of type %q: submit it (type submit)", fm.Type)
	}
	if fm.FormType != "" && fm.FormType != NSAdmin {
		return nil, badPayload("the form is a %s form, not %s", fm.FormType, NSAdmin)
	}
	for _, f := range st.fields {
		got, _ := fm.Field(f.name)
		if len(got.Values) > f.maxValues {
			return nil, badPayload("%s: at most %d values", f.name, f.maxValues)
		}
		n, blank := 0, true
		for _, val := range got.Values {
			n += len(val)
			if strings.TrimSpace(val) != "" {
				blank = false
			}
		}
		if n > f.maxBytes {
			return nil, badPayload("%s: at most %d bytes", f.name, f.maxBytes)
		}
		if f.required && blank {
			return nil, badPayload("%s is required", f.name)
		}
		if len(got.Values) > 0 {
			v[f.name] = got.Values
		}
	}
	return v, nil
}

// resultForm is a form of type result (XEP-0004 §3.4) holding fields,
// each already rendered.
func resultForm(fields ...string) string {
	return "<x xmlns='" + form.NS + "' type='result'>" + hiddenFormType + strings.Join(fields, "") + "</x>"
}

// resultField renders one field of a result form.
func resultField(typ, name, label string, vals ...string) string {
	var b strings.Builder
	b.WriteString("<field type='" + typ + "' var='" + name + "' label='" + stanza.Escape(label) + "'>")
	for _, v := range vals {
		b.WriteString("<value>" + stanza.Escape(v) + "</value>")
	}
	b.WriteString("</field>")
	return b.String()
}

// note is a note of the command's status (XEP-0050 §4.5): info, warn or
// error.
func note(typ, text string) string {
	return "<note type='" + typ + "'>" + stanza.Escape(text) + "</note>"
}

// badPayload is XEP-0050's bad-payload: a form without a field it needs,
// or with one that is wrong.
func badPayload(format string, args ...any) error {
	return &cmdError{cond: "bad-request", app: "bad-payload", text: fmt.Sprintf(format, args...)}
}
