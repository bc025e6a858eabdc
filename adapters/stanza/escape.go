package stanza

import "strings"

// XEP-0106 (JID Escaping): the characters a localpart cannot hold, and
// their escapes. Written here rather than taken from mellium.im/xmpp/jid,
// whose Unescape panics on some input (an index out of range on
// `romeo\40montague.example\2fannals-rooms`, v0.22.0), and these read
// what other servers send.
const escapable = ` "&'/:<>@\`

// EscapeLocal escapes s for a localpart (XEP-0106 §4.2): each of the
// characters above becomes \ and its two lowercase hex digits. A
// backslash is escaped only where it would start an escape sequence, as
// the XEP has it.
func EscapeLocal(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && !escapeAt(s, i):
			b.WriteByte(c)
		case strings.IndexByte(escapable, c) >= 0:
			b.WriteString(`\` + hex2(c))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// UnescapeLocal undoes EscapeLocal (XEP-0106 §4.3): only the ten escape
// sequences are read; any other backslash stays as it is.
func UnescapeLocal(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if escapeAt(s, i) {
			b.WriteByte(unhex2(s[i+1], s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// escapeAt reports whether s holds an escape sequence at i.
func escapeAt(s string, i int) bool {
	if s[i] != '\\' || i+2 >= len(s) {
		return false
	}
	c := unhex2(s[i+1], s[i+2])
	return strings.IndexByte(escapable, c) >= 0 && hex2(c) == strings.ToLower(s[i+1:i+3])
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

// unhex2 is the byte two hex digits name (0 for anything else).
func unhex2(a, b byte) byte {
	v := func(c byte) byte {
		switch {
		case '0' <= c && c <= '9':
			return c - '0'
		case 'a' <= c && c <= 'f':
			return c - 'a' + 10
		case 'A' <= c && c <= 'F':
			return c - 'A' + 10
		}
		return 0xff
	}
	x, y := v(a), v(b)
	if x == 0xff || y == 0xff {
		return 0
	}
	return x<<4 | y
}
