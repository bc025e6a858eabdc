package websocket

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strings"
)

// Namespaces of the two framings.
const (
	nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	nsStream  = "http://etherx.jabber.org/streams"
	nsClient  = "jabber:client"
)

var errFraming = errors.New("websocket: not an XMPP framing element")

// fromClient translates one message from the client into the bytes of a
// TCP stream: <open/> into a stream header, <close/> into the stream's
// end; anything else passes as it is (RFC 7395 §3.3.3: each stanza is
// complete and carries its namespace, which the header's default agrees
// with).
func fromClient(msg []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(msg)
	if !bytes.HasPrefix(trimmed, []byte("<open")) && !bytes.HasPrefix(trimmed, []byte("<close")) {
		return msg, nil
	}
	var el struct {
		XMLName xml.Name
		Attrs   []xml.Attr `xml:",any,attr"`
	}
	if err := xml.Unmarshal(trimmed, &el); err != nil || el.XMLName.Space != nsFraming {
		return msg, nil // not framing after all: the stream's parser judges it
	}
	switch el.XMLName.Local {
	case "open":
		var b strings.Builder
		b.WriteString("<stream:stream xmlns='" + nsClient + "' xmlns:stream='" + nsStream + "'")
		for _, a := range el.Attrs {
			name := a.Name.Local
			switch {
			case a.Name.Space == "xmlns" || name == "xmlns" && a.Name.Space == "":
				continue
			case a.Name.Space == "http://www.w3.org/XML/1998/namespace" || a.Name.Space == "xml":
				name = "xml:" + name
			case a.Name.Space != "":
				continue
			}
			b.WriteString(" " + name + "='" + escape(a.Value) + "'")
		}
		b.WriteString(">")
		return []byte(b.String()), nil
	case "close":
		return []byte("</stream:stream>"), nil
	}
	return nil, errFraming
}

func escape(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// splitter cuts what the server writes, a well-formed stream it wrote
// itself, into top-level elements, and translates each for the framing.
type splitter struct {
	pending []byte
}

// feed takes more of the server's output and returns the messages it
// completes; what is left waits for the rest.
func (s *splitter) feed(p []byte) [][]byte {
	s.pending = append(s.pending, p...)
	var out [][]byte
	for {
		start, end, kind := nextUnit(s.pending)
		if end < 0 {
			break
		}
		unit := s.pending[start:end]
		if m := toClient(unit, kind); m != nil {
			out = append(out, m)
		}
		s.pending = s.pending[end:]
	}
	if len(s.pending) == 0 {
		s.pending = nil // let a large buffer go
	}
	return out
}

// The kinds of top-level unit in the server's output.
const (
	unitElement = iota
	unitStreamOpen
	unitStreamClose
	unitSkip // an XML declaration, a comment, white space
)

// nextUnit finds the first complete top-level unit in b: its bounds and
// kind, or end -1 when b does not hold a whole one yet.
func nextUnit(b []byte) (start, end, kind int) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i == len(b) {
		return 0, -1, 0
	}
	if b[i] != '<' {
		// Text at the top level: never written by the server; skipped up
		// to the next tag.
		j := bytes.IndexByte(b[i:], '<')
		if j < 0 {
			return 0, -1, 0
		}
		return i, i + j, unitSkip
	}
	start = i
	depth := 0
	for i < len(b) {
		if b[i] != '<' {
			i++
			continue
		}
		rest := b[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<?")):
			j := bytes.Index(rest, []byte("?>"))
			if j < 0 {
				return 0, -1, 0
			}
			i += j + 2
			if depth == 0 {
				return start, i, unitSkip
			}
		case bytes.HasPrefix(rest, []byte("<!--")):
			j := bytes.Index(rest, []byte("-->"))
			if j < 0 {
				return 0, -1, 0
			}
			i += j + 3
			if depth == 0 {
				return start, i, unitSkip
			}
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			j := bytes.Index(rest, []byte("]]>"))
			if j < 0 {
				return 0, -1, 0
			}
			i += j + 3
		case bytes.HasPrefix(rest, []byte("</")):
			j := bytes.IndexByte(rest, '>')
			if j < 0 {
				return 0, -1, 0
			}
			if depth == 0 {
				// Only the stream's end closes what was not opened here.
				return start, i + j + 1, unitStreamClose
			}
			i += j + 1
			depth--
			if depth == 0 {
				return start, i, unitElement
			}
		default:
			j, selfClosing := tagEnd(rest)
			if j < 0 {
				return 0, -1, 0
			}
			if depth == 0 && bytes.HasPrefix(rest, []byte("<stream:stream")) && !selfClosing {
				return start, i + j, unitStreamOpen
			}
			i += j
			if selfClosing {
				if depth == 0 {
					return start, i, unitElement
				}
				continue
			}
			depth++
		}
	}
	return 0, -1, 0
}

// tagEnd returns the length of the start tag at the beginning of b (up
// to and with its '>', quotes respected) and whether it closes itself,
// or -1 when b does not hold all of it.
func tagEnd(b []byte) (int, bool) {
	var quote byte
	for i := 1; i < len(b); i++ {
		c := b[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '>':
			return i + 1, b[i-1] == '/'
		}
	}
	return -1, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// toClient translates one top-level unit for the framing, or returns nil
// for one the framing has no message for.
func toClient(unit []byte, kind int) []byte {
	switch kind {
	case unitSkip:
		return nil
	case unitStreamClose:
		return []byte("<close xmlns='" + nsFraming + "'/>")
	case unitStreamOpen:
		var b strings.Builder
		b.WriteString("<open xmlns='" + nsFraming + "'")
		for _, name := range []string{"from", "id", "version", "xml:lang"} {
			if v, ok := attr(unit, name); ok {
				b.WriteString(" " + name + "='" + v + "'")
			}
		}
		b.WriteString("/>")
		return []byte(b.String())
	}
	// An element: its namespace declared on it (RFC 7395 §3.3.3).
	nameEnd := bytes.IndexAny(unit, " \t\r\n/>")
	if nameEnd < 0 {
		return unit
	}
	name := string(unit[1:nameEnd])
	head, _ := tagEnd(unit)
	tag := unit[:head]
	var decl string
	switch {
	case strings.HasPrefix(name, "stream:"):
		if !bytes.Contains(tag, []byte("xmlns:stream=")) {
			decl = " xmlns:stream='" + nsStream + "'"
		}
	case !bytes.Contains(tag, []byte(" xmlns=")):
		decl = " xmlns='" + nsClient + "'"
	}
	if decl == "" {
		return unit
	}
	out := make([]byte, 0, len(unit)+len(decl))
	out = append(out, unit[:nameEnd]...)
	out = append(out, decl...)
	return append(out, unit[nameEnd:]...)
}

// attr reads attribute name of the start tag at the beginning of tag, as
// written (escaped).
func attr(tag []byte, name string) (string, bool) {
	for _, q := range []string{"'", `"`} {
		k := []byte(" " + name + "=" + q)
		i := bytes.Index(tag, k)
		if i < 0 {
			continue
		}
		rest := tag[i+len(k):]
		j := bytes.IndexByte(rest, q[0])
		if j < 0 {
			return "", false
		}
		return string(rest[:j]), true
	}
	return "", false
}
