package c2s

import (
	"strconv"
	"unicode/utf8"
)

// clip shortens a client-controlled string for a log line: at most n bytes
// of it, cut at a rune boundary, then how long it was. Without it one
// client line of 256 KiB becomes 256 KiB of log, as often as it is sent.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
