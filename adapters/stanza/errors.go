package stanza

import (
	"errors"
	"strings"
)

// Error is a stanza error (RFC 6120 §8.3): a handler returns one to have
// the stanza it handles answered with it.
type Error struct {
	Cond string // a defined condition, e.g. "item-not-found"
	Text string // for people; may be ""
	// Type overrides the condition's usual type (Types); rarely needed.
	Type string
}

func (e *Error) Error() string {
	if e.Text == "" {
		return "stanza error: " + e.Cond
	}
	return "stanza error: " + e.Cond + ": " + e.Text
}

// Types is the one table from each defined condition to the error type
// it is sent with (RFC 6120 §8.3.3 gives the usual one for each).
var Types = map[string]string{
	"bad-request":             "modify",
	"conflict":                "cancel",
	"feature-not-implemented": "cancel",
	"forbidden":               "auth",
	"gone":                    "cancel",
	"internal-server-error":   "cancel",
	"item-not-found":          "cancel",
	"jid-malformed":           "modify",
	"not-acceptable":          "modify",
	"not-allowed":             "cancel",
	"not-authorized":          "auth",
	"policy-violation":        "modify",
	"recipient-unavailable":   "wait",
	"redirect":                "modify",
	"registration-required":   "auth",
	"remote-server-not-found": "cancel",
	"remote-server-timeout":   "wait",
	"resource-constraint":     "wait",
	"service-unavailable":     "cancel",
	"subscription-required":   "auth",
	"undefined-condition":     "cancel",
	"unexpected-request":      "wait",
}

// Errorf returns the stanza error with condition cond and text.
func Errorf(cond, text string) *Error { return &Error{Cond: cond, Text: text} }

// ErrorOf returns err as a stanza error: itself if it is one, else
// internal-server-error with no text (the details are for the log, not
// for the client).
func ErrorOf(err error) *Error {
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	return &Error{Cond: "internal-server-error"}
}

// XML is the error element.
func (e *Error) XML() string {
	typ := e.Type
	if typ == "" {
		typ = Types[e.Cond]
	}
	if typ == "" {
		typ = "cancel"
	}
	var b strings.Builder
	b.WriteString("<error type='" + typ + "'><" + e.Cond + " xmlns='" + NSStanzas + "'/>")
	if e.Text != "" {
		b.WriteString("<text xmlns='" + NSStanzas + "'>" + Escape(e.Text) + "</text>")
	}
	b.WriteString("</error>")
	return b.String()
}

// StreamError is what a feature returns to have the session's stream end
// with a stream error (RFC 6120 §4.9) rather than a stanza answered: when
// it can no longer serve the session as the protocol promises.
type StreamError struct {
	Cond string // a defined condition, e.g. "resource-constraint"
	Text string
}

func (e *StreamError) Error() string { return "stream error: " + e.Cond + ": " + e.Text }

// ErrorCondition is error stanza e's defined condition (RFC 6120 §8.3.3),
// or "" when it has none.
func ErrorCondition(e *Element) string {
	x, ok := e.Named(NSClient, "error")
	if !ok {
		return ""
	}
	for _, ch := range x.Children() {
		if ch.XMLName.Space == NSStanzas && ch.XMLName.Local != "text" {
			return ch.XMLName.Local
		}
	}
	return ""
}

// ParseError reads error stanza e's error: its type and its defined
// condition ("undefined-condition" when it names none).
func ParseError(e *Element) *Error {
	se := &Error{Cond: ErrorCondition(e)}
	if se.Cond == "" {
		se.Cond = "undefined-condition"
	}
	if x, ok := e.Named(NSClient, "error"); ok {
		se.Type = x.Attr("type")
	}
	return se
}
