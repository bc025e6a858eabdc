package vcard

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/event"
)

var now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// png1 is a 1x1 PNG; its SHA-1 (sha1sum of the decoded bytes) is pngSHA1.
const (
	png1    = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
	pngSHA1 = "b2bbe763c7e1828c750d53f78550709a6fea19be"
)

func photo(b64 string) string {
	return "<PHOTO><TYPE>image/png</TYPE><BINVAL>" + b64 + "</BINVAL></PHOTO>"
}

func vc(inner string) string { return "<vCard xmlns='vcard-temp'>" + inner + "</vCard>" }

// Parse keeps the vCard and hashes each photo's image data (not its
// base64), white space and missing padding forgiven; it refuses what is
// not one vcard-temp vCard, a BINVAL that is not base64, and a vCard over
// the limit.
func TestParse(t *testing.T) {
	wrapped := png1[:40] + "\n  " + png1[40:]
	tests := []struct {
		name     string
		xml      string
		max      int
		hashes   []string
		unhashed bool
		avatar   string
		ok       bool // Avatar's ok
		err      error
	}{
		{name: "no photo", xml: vc("<FN>Juliet</FN>"), ok: true},
		{name: "empty", xml: "<vCard xmlns='vcard-temp'/>", ok: true},
		{name: "a photo", xml: vc("<FN>Juliet</FN>" + photo(png1)), hashes: []string{pngSHA1}, avatar: pngSHA1, ok: true},
		{name: "base64 with line breaks", xml: vc(photo(wrapped)), hashes: []string{pngSHA1}, avatar: pngSHA1, ok: true},
		{name: "base64 without padding", xml: vc(photo(strings.TrimRight(png1, "="))), hashes: []string{pngSHA1}, avatar: pngSHA1, ok: true},
		{name: "two photos (XEP-0486 §5.1)", xml: vc(photo(png1) + photo("Rw==")), hashes: []string{pngSHA1, "a36a6718f54524d846894fb04b5b885b4e43e63b"}, avatar: pngSHA1, ok: true},
		{name: "a photo elsewhere: its hash is unknown", xml: vc("<PHOTO><EXTVAL>https://example.com/j.png</EXTVAL></PHOTO>"), unhashed: true},
		{name: "an empty BINVAL is no photo data", xml: vc(photo("")), unhashed: true},
		{name: "a BINVAL outside PHOTO is not a photo", xml: vc("<LOGO><BINVAL>" + png1 + "</BINVAL></LOGO>"), ok: true},
		{name: "not base64", xml: vc(photo("not*base64!")), err: ErrInvalid},
		{name: "another namespace", xml: "<vCard xmlns='urn:ietf:params:xml:ns:vcard-4.0'/>", err: ErrInvalid},
		{name: "another element", xml: "<query xmlns='vcard-temp'/>", err: ErrInvalid},
		{name: "two elements", xml: vc("") + vc(""), err: ErrInvalid},
		{name: "not namespace-well-formed", xml: vc("<x:FN>J</x:FN>"), err: ErrInvalid},
		{name: "at the limit", xml: vc(photo(png1)), max: len(vc(photo(png1))), hashes: []string{pngSHA1}, avatar: pngSHA1, ok: true},
		{name: "over the limit", xml: vc(photo(png1)), max: len(vc(photo(png1))) - 1, err: ErrTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.xml, tt.max)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if !slices.Equal(c.PhotoHashes, tt.hashes) || c.Unhashed != tt.unhashed || c.XML == "" {
				t.Errorf("card %+v, want hashes %v unhashed %v", c, tt.hashes, tt.unhashed)
			}
			if a, ok := c.Avatar(); a != tt.avatar || ok != tt.ok {
				t.Errorf("avatar %q %v, want %q %v", a, ok, tt.avatar, tt.ok)
			}
		})
	}
}

// Given an account's vCard events, when it sets one, then a VCardSet or
// nothing or an error.
func TestDecide(t *testing.T) {
	fold := func(t *testing.T, xmls ...string) State {
		t.Helper()
		var s State
		for _, x := range xmls {
			evs, err := Decide(s, Set{XML: x}, event.NewIDs(), now, "test")
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				if s, err = Evolve(s, e); err != nil {
					t.Fatal(err)
				}
			}
		}
		return s
	}
	tests := []struct {
		name   string
		given  []string
		when   Set
		events int
		err    error
		avatar string
	}{
		{name: "first vCard", when: Set{XML: vc(photo(png1))}, events: 1, avatar: pngSHA1},
		{name: "first vCard, empty", when: Set{XML: Empty}, events: 1},
		{name: "the same again: nothing", given: []string{vc(photo(png1))}, when: Set{XML: vc(photo(png1))}, avatar: pngSHA1},
		{name: "the same, spelled otherwise: nothing", given: []string{vc(photo(png1))}, when: Set{XML: "<vCard xmlns=\"vcard-temp\"><PHOTO><TYPE>image/png</TYPE><BINVAL>" + png1 + "</BINVAL></PHOTO></vCard>"}, avatar: pngSHA1},
		{name: "photo removed", given: []string{vc(photo(png1))}, when: Set{XML: vc("<FN>J</FN>")}, events: 1},
		{name: "too big", given: []string{vc(photo(png1))}, when: Set{XML: vc(photo(png1) + "<FN>J</FN>"), MaxBytes: 100}, err: ErrTooBig, avatar: pngSHA1},
		{name: "invalid", when: Set{XML: vc(photo("!!"))}, err: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fold(t, tt.given...)
			evs, err := Decide(s, tt.when, event.NewIDs(), now, "test")
			if !errors.Is(err, tt.err) || len(evs) != tt.events {
				t.Fatalf("%d events, err %v; want %d, %v", len(evs), err, tt.events, tt.err)
			}
			for _, e := range evs {
				if e.Type != TypeSet || e.Cause != "test" {
					t.Fatalf("event %s cause %q", e.Type, e.Cause)
				}
				if s, err = Evolve(s, e); err != nil {
					t.Fatal(err)
				}
			}
			if a, _ := s.Card.Avatar(); a != tt.avatar || (tt.events > 0 && !s.Set) {
				t.Errorf("after: %+v, want avatar %q", s, tt.avatar)
			}
		})
	}
	if _, err := Decide(State{}, "hello", event.NewIDs(), now, "test"); err == nil {
		t.Error("an unknown command was decided")
	}
}

// A vCard whose key is destroyed (adapters/sealing opens it with Erased)
// folds to no vCard at all.
func TestEvolveErased(t *testing.T) {
	set, _ := event.New(event.NewIDs(), now, TypeSet, Schema, "test", Card{XML: vc("<FN>Juliet</FN>")})
	gone, _ := event.New(event.NewIDs(), now, TypeSet, Schema, "test", Card{Erased: true})
	s, err := Evolve(State{}, set)
	if err != nil || !s.Set {
		t.Fatalf("%+v %v", s, err)
	}
	if s, err = Evolve(s, gone); err != nil || s.Set || s.Card.XML != "" {
		t.Fatalf("after an erased vCard: %+v %v", s, err)
	}
}
