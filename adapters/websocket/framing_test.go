package websocket

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// The client's framing becomes a TCP stream's; its stanzas pass as sent.
func TestFromClient(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.com" version="1.0"/>`,
			`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>`},
		{`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='a&amp;b' xml:lang='en' version='1.0'/>`,
			`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a&amp;b' xml:lang='en' version='1.0'>`},
		{`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`, `</stream:stream>`},
		{`<message xmlns='jabber:client' to='a@b'><body>hi</body></message>`, `<message xmlns='jabber:client' to='a@b'><body>hi</body></message>`},
		// An <open/> in another namespace is not framing: passed, for the
		// stream's parser to judge.
		{`<open xmlns='urn:other'/>`, `<open xmlns='urn:other'/>`},
		{`<open`, `<open`},
	} {
		got, err := fromClient([]byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("%s\n got %s (%v)\nwant %s", c.in, got, err, c.want)
		}
	}
}

// What the server writes, in chunks cut anywhere, becomes one message per
// element, the stream's framing translated and namespaces declared.
func TestSplitter(t *testing.T) {
	stream := `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0' xml:lang='en'>` +
		`<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>` +
		`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>` +
		"\n " +
		`<message from='a@b/c' to="d@e"><body>a &lt;b&gt; c > d</body><x a='1>2' b="'"/><![CDATA[ <not> ]]></message>` +
		`<iq type='result' id='x'/>` +
		`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`
	want := []string{
		`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s1' version='1.0' xml:lang='en'/>`,
		`<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`,
		`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`,
		`<message xmlns='jabber:client' from='a@b/c' to="d@e"><body>a &lt;b&gt; c > d</body><x a='1>2' b="'"/><![CDATA[ <not> ]]></message>`,
		`<iq xmlns='jabber:client' type='result' id='x'/>`,
		`<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`,
		`<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`,
	}
	for _, size := range []int{1, 2, 3, 7, 64, len(stream)} {
		var s splitter
		var got []string
		for i := 0; i < len(stream); i += size {
			for _, m := range s.feed([]byte(stream[i:min(i+size, len(stream))])) {
				got = append(got, string(m))
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") || len(s.pending) != 0 {
			t.Errorf("in chunks of %d:\n%s\nwant\n%s\n(left %q)", size, strings.Join(got, "\n"), strings.Join(want, "\n"), s.pending)
		}
	}
}

// Where the server's output is cut does not change the messages: an
// element written three times, in chunks of any size, makes three
// messages, each the one it makes whole; and no input makes the
// splitter panic or hold more than it was given.
func FuzzSplitter(f *testing.F) {
	f.Add([]byte(`<message><body>x</body></message>`), 3)
	f.Add([]byte(`<a b='>'><![CDATA[</a>]]><!-- > --></a>`), 1)
	f.Add([]byte(`<iq type='result' id='x'/>`), 5)
	f.Fuzz(func(t *testing.T, el []byte, size int) {
		if size <= 0 {
			size = 1
		}
		var whole splitter
		once := whole.feed(el)
		var s splitter
		in := bytes.Repeat(el, 3)
		var got [][]byte
		for i := 0; i < len(in); i += size {
			got = append(got, s.feed(in[i:min(i+size, len(in))])...)
		}
		if len(s.pending) > len(in) {
			t.Fatalf("holds %d bytes of %d", len(s.pending), len(in))
		}
		if !oneElement(el) || bytes.HasPrefix(el, []byte("<stream:")) {
			return
		}
		if len(once) != 1 || len(got) != 3 {
			t.Fatalf("%q: %d messages whole, %d from three in chunks of %d", el, len(once), len(got), size)
		}
		for _, m := range got {
			if !bytes.Equal(m, once[0]) {
				t.Fatalf("%q in chunks of %d: %q, whole %q", el, size, m, once[0])
			}
		}
	})
}

// oneElement reports whether b is exactly one well-formed element (no
// declaration, comment or space around it).
func oneElement(b []byte) bool {
	if len(b) == 0 || b[0] != '<' || b[len(b)-1] != '>' || bytes.HasPrefix(b, []byte("<?")) || bytes.HasPrefix(b, []byte("<!")) {
		return false
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	depth, elements := 0, 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return depth == 0 && elements == 1
		}
		if err != nil {
			return false
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				elements++
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.ProcInst, xml.Directive:
			return false
		case xml.CharData:
			if depth == 0 {
				return false
			}
		}
	}
}

// Whatever a client sends, fromClient neither panics nor grows it past
// the stream header's size.
func FuzzFromClient(f *testing.F) {
	f.Add([]byte(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.com" version="1.0"/>`))
	f.Add([]byte(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`))
	f.Add([]byte(`<message xmlns='jabber:client'/>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := fromClient(in)
		if err == nil && len(out) > 2*len(in)+128 {
			t.Fatalf("%d bytes became %d", len(in), len(out))
		}
	})
}
