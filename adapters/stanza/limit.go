package stanza

import (
	"errors"
	"io"
)

// ErrTooBig: a stanza went past the reader's maximum size.
var ErrTooBig = errors.New("stanza: too big")

// LimitReader counts the bytes read since the last Reset and fails with
// ErrTooBig once they pass Max: a stream's reader resets it before each
// stanza, so a stanza that never ends costs at most Max bytes and the
// decoder's read-ahead (a few KiB), not memory without bound.
type LimitReader struct {
	R   io.Reader
	Max int
	Err error // what R returned last, e.g. io.EOF when the peer hung up
	n   int
}

func (l *LimitReader) Read(p []byte) (int, error) {
	if l.n > l.Max {
		return 0, ErrTooBig
	}
	n, err := l.R.Read(p)
	l.n += n
	if err != nil {
		l.Err = err
	}
	return n, err
}

// Reset starts counting the next stanza.
func (l *LimitReader) Reset() { l.n = 0 }
