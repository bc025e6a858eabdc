package upload

import (
	"errors"
	"fmt"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxFilename bounds a slot's file name in bytes, after sanitizing;
// maxExt is how much of its extension a cut keeps.
const (
	MaxFilename = 128
	maxExt      = 16
)

// MaxContentType bounds a requested content type in bytes (RFC 6838
// §4.2 bounds a type and a subtype to 127 characters each).
const MaxContentType = 255

// SanitizeFilename returns a file name that is safe in a URL path segment
// and a Content-Disposition header, and as a name on disk: the last
// segment of name (no '/' or '\'), with control, formatting (bidi
// overrides that hide a real extension) and shell or Windows
// metacharacters replaced by '_', no leading dots (no hidden files, no
// "..") and at most MaxFilename bytes, keeping the extension the
// receiver's client reads the type from. It never returns "": a name
// with nothing left is "file".
func SanitizeFilename(name string) string {
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case r == utf8.RuneError, unicode.IsControl(r), unicode.Is(unicode.Cf, r), unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
			return '_'
		case strings.ContainsRune(`:*?"<>|`, r):
			return '_'
		case unicode.IsSpace(r):
			return ' '
		}
		return r
	}, name)
	name = trim(name)
	if len(name) > MaxFilename {
		stem, ext := name, ""
		if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= maxExt {
			stem, ext = name[:i], name[i:]
		}
		stem = cut(stem, MaxFilename-len(ext))
		name = trim(stem + ext)
	}
	if name == "" {
		return "file"
	}
	return name
}

// trim drops leading dots and spaces and trailing spaces and dots
// (Windows drops those, and a name ending in one looks like another).
func trim(s string) string {
	return strings.TrimRight(strings.TrimLeft(s, ". "), ". ")
}

// cut returns s cut to at most n bytes at a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ErrContentType says a content type is not a MIME type.
var errContentType = errors.New("not a MIME type type/subtype")

// ContentType checks a content type (RFC 2045 §5.1, RFC 6838) and returns
// it in its canonical form: type and subtype lower case, parameters
// quoted as needed. "" stays "" (none given).
func ContentType(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) > MaxContentType {
		return "", fmt.Errorf("%w: a content type longer than %d bytes", ErrInvalid, MaxContentType)
	}
	mt, params, err := mime.ParseMediaType(s)
	if err != nil {
		return "", fmt.Errorf("%w: content type %q: %v", ErrInvalid, s, err)
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" || strings.Contains(sub, "/") || typ == "*" || sub == "*" {
		return "", fmt.Errorf("%w: content type %q: %v", ErrInvalid, s, errContentType)
	}
	out := mime.FormatMediaType(mt, params)
	if out == "" {
		return "", fmt.Errorf("%w: content type %q: %v", ErrInvalid, s, errContentType)
	}
	return out, nil
}
