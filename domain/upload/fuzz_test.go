package upload

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The sanitizer's promises hold for any input: a name that is one path
// segment, printable, bounded, not hidden, and sanitizing it again
// changes nothing. Seeds: testdata/fuzz/FuzzSanitizeFilename.
func FuzzSanitizeFilename(f *testing.F) {
	for _, s := range []string{"très cool.jpg", "../../etc/passwd", `..\a`, "..", ".", "", "a\x00b", "x\u202egpj.exe", strings.Repeat("é", 100) + ".jpeg"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := SanitizeFilename(in)
		if out == "" || len(out) > MaxFilename || !utf8.ValidString(out) || strings.ContainsAny(out, `/\:*?"<>|`) ||
			out[0] == '.' || out[0] == ' ' || strings.HasSuffix(out, ".") || strings.HasSuffix(out, " ") {
			t.Fatalf("SanitizeFilename(%q) = %q", in, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError || unicode.IsSpace(r) && r != ' ' {
				t.Fatalf("SanitizeFilename(%q) = %q holds %U", in, out, r)
			}
		}
		if again := SanitizeFilename(out); again != out {
			t.Fatalf("SanitizeFilename(%q) = %q, then %q", in, out, again)
		}
	})
}

// A content type that passes is canonical (checking it again gives it
// back) and fits in a header: no line breaks. Seeds:
// testdata/fuzz/FuzzContentType.
func FuzzContentType(f *testing.F) {
	for _, s := range []string{"image/jpeg", "Text/Plain; Charset=UTF-8", "text/plain; name=\"a b\"", "jpeg", "*/*", "a/b\r\nX: y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := ContentType(in)
		if err != nil {
			return
		}
		if strings.ContainsAny(out, "\r\n\x00") || len(in) > 0 && !strings.Contains(out, "/") {
			t.Fatalf("ContentType(%q) = %q", in, out)
		}
		if again, err := ContentType(out); err != nil || again != out {
			t.Fatalf("ContentType(%q) = %q, then %q, %v", in, out, again, err)
		}
	})
}
