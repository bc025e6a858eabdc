package sealing

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// Seal and Open replace one member of an event's data. Decoding the data
// into a map and encoding it again cost them 80% of their time
// (BenchmarkSealedLog: a follower opened sealed events at 4x the cost of
// plain ones); AES-GCM itself, under 5%. So they splice the member's new
// value into the bytes as they are, when the data is in the form the
// store keeps (event.Envelope.Normalize: compact JSON, as json.Marshal
// writes it), and take the long way, through encoding/json, otherwise.
// Splicing keeps that form: the other members keep their bytes and their
// order, and the new value is json.Marshal's (a string) or the sealed
// form below, which has nothing json.Marshal would escape.

// member finds the top-level member name of data, a compact JSON object,
// and returns where its value starts and ends. all, when not nil, gets
// every top-level member's value (sub-slices of data). ok is false when
// name is not there once, or data is not a compact object whose keys have
// no escapes; then the caller decodes data with encoding/json. It does not
// validate what it skips: data was valid JSON when appended.
func member(data []byte, name string, all map[string]json.RawMessage) (start, end int, ok bool) {
	if len(data) < 2 || data[0] != '{' {
		return 0, 0, false
	}
	if len(data) == 2 && data[1] == '}' {
		return 0, 0, false
	}
	found := false
	for i := 1; ; {
		if data[i] != '"' {
			return 0, 0, false
		}
		k := bytes.IndexByte(data[i+1:], '"')
		if k < 0 {
			return 0, 0, false
		}
		key := data[i+1 : i+1+k]
		if bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key) {
			// encoding/json unescapes keys and replaces bytes that are
			// not UTF-8: let it decide (found by FuzzMember).
			return 0, 0, false
		}
		i += k + 2
		if i >= len(data) || data[i] != ':' {
			return 0, 0, false
		}
		i++
		j := skipValue(data, i)
		if j < 0 || j >= len(data) {
			return 0, 0, false
		}
		if string(key) == name {
			if found {
				// Twice: encoding/json would keep the last, splicing
				// would leave the first as it is.
				return 0, 0, false
			}
			start, end, found = i, j, true
		}
		if all != nil {
			all[string(key)] = data[i:j:j]
		}
		switch data[j] {
		case ',':
			i = j + 1
			if i >= len(data) {
				return 0, 0, false
			}
		case '}':
			return start, end, found && j == len(data)-1
		default:
			return 0, 0, false
		}
	}
}

// skipValue returns where the JSON value at data[i] ends, or -1.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				if j = skipString(data, j); j < 0 {
					return -1
				}
				j-- // the loop's j++ moves past the string
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default: // a number, true, false or null: letters, digits, '.', '+', '-'
		j := i
		for j < len(data) && (data[j] >= 'a' && data[j] <= 'z' || data[j] >= '0' && data[j] <= '9' ||
			data[j] == '.' || data[j] == '+' || data[j] == '-' || data[j] == 'E') {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// skipString returns where the JSON string starting at data[i] ends, or -1.
func skipString(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// splice returns data with data[start:end] replaced by v, in a new slice.
func splice(data []byte, start, end int, v []byte) []byte {
	out := make([]byte, 0, len(data)-(end-start)+len(v))
	out = append(out, data[:start]...)
	out = append(out, v...)
	return append(out, data[end:]...)
}

// appendSealed appends a sealed field as json.Marshal writes the sealed
// struct: {"sealed":"<key id>","box":"<base64>"}. ok is false for a key
// ID json.Marshal would escape (SQLKeys' are hex).
func appendSealed(b []byte, id string, box []byte) (_ []byte, ok bool) {
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return b, false
		}
	}
	b = slices.Grow(b, len(sealedMark)+len(id)+len(`","box":"`)+base64.StdEncoding.EncodedLen(len(box))+len(`"}`))
	b = append(b, sealedMark...)
	b = append(b, id...)
	b = append(b, `","box":"`...)
	b = base64.StdEncoding.AppendEncode(b, box)
	return append(b, `"}`...), true
}

// parseSealed reads a sealed field in the form appendSealed writes; ok is
// false for any other, which the caller then decodes with encoding/json.
func parseSealed(raw []byte) (s sealed, ok bool) {
	rest, ok := bytes.CutPrefix(raw, sealedMark)
	if !ok {
		return sealed{}, false
	}
	id, rest, ok := bytes.Cut(rest, []byte(`","box":"`))
	if !ok || bytes.ContainsAny(id, `"\`) {
		return sealed{}, false
	}
	box, ok := bytes.CutSuffix(rest, []byte(`"}`))
	if !ok || bytes.ContainsAny(box, `"\`) {
		return sealed{}, false
	}
	return sealed{Key: string(id), Box: string(box)}, true
}
