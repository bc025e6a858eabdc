package stanza

import "testing"

// XEP-0106 §5's examples, and what a hostile peer may write.
func TestEscapeLocal(t *testing.T) {
	for _, c := range []struct{ plain, escaped string }{
		{"space cadet", `space\20cadet`},
		{`call me "ishmael"`, `call\20me\20\22ishmael\22`},
		{"at&t guy", `at\26t\20guy`},
		{"d'artagnan", `d\27artagnan`},
		{"/.fanboy", `\2f.fanboy`},
		{"::foo::", `\3a\3afoo\3a\3a`},
		{"<foo>", `\3cfoo\3e`},
		{"user@host", `user\40host`},
		{`c:\net`, `c\3a\net`},
		{`c:\\net`, `c\3a\\net`},
		{`c:\cool stuff`, `c\3a\cool\20stuff`},
		{`c:\5commas`, `c\3a\5c5commas`},
		{"romeo@montague.example/annals-rooms", `romeo\40montague.example\2fannals-rooms`},
	} {
		if got := EscapeLocal(c.plain); got != c.escaped {
			t.Errorf("EscapeLocal(%q) = %q, want %q", c.plain, got, c.escaped)
		}
		if got := UnescapeLocal(c.escaped); got != c.plain {
			t.Errorf("UnescapeLocal(%q) = %q, want %q", c.escaped, got, c.plain)
		}
	}
	for _, s := range []string{`\`, `\4`, `x\`, `\zz`, `\41`, `\2F`} {
		UnescapeLocal(s) // no panic, whatever it makes of it
	}
	if got := UnescapeLocal(`\2F`); got != "/" {
		t.Errorf("upper-case hex: %q", got)
	}
}

// Whatever a string holds, escaping and unescaping give it back.
func FuzzEscapeLocal(f *testing.F) {
	for _, s := range []string{"", `\`, `\40`, `a\5c40b`, "romeo@montague.example/annals-rooms", `c:\5commas`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := UnescapeLocal(EscapeLocal(s)); got != s {
			t.Fatalf("%q -> %q -> %q", s, EscapeLocal(s), got)
		}
		UnescapeLocal(s)
	})
}
