package metrics

import (
	"testing"
	"time"
)

// What the hot paths pay per call: a stanza counted, an append observed.
func BenchmarkStanzaReceived(b *testing.B) {
	m := New(Options{})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.StanzaReceived("message")
		}
	})
}

func BenchmarkAppended(b *testing.B) {
	m := New(Options{})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Appended(time.Millisecond)
		}
	})
}
