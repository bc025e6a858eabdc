package vcard

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/wellformed"
)

// NS is the vcard-temp namespace (XEP-0054).
const NS = "vcard-temp"

// TypeSet is the event of an account setting its vCard, written by hand:
// renaming a Go type must not orphan stored events.
const TypeSet event.Type = "VCardSet"

// Schema is the newest schema of each event type that this build reads and writes.
const Schema = 1

// Errors, each the condition it is answered with.
var (
	ErrInvalid = errors.New("vcard: invalid") // bad-request
	ErrTooBig  = errors.New("vcard: too big") // not-acceptable
)

// Card is a vCard as stored: its XML, one <vCard xmlns='vcard-temp'/>
// element, and the lower-case hex SHA-1 of the image data of each PHOTO
// that carries it (BINVAL), in document order. Unhashed says that a PHOTO
// has no image data here (it points elsewhere, EXTVAL): its hash is not
// known.
//
// Card is also the data of TypeSet.
type Card struct {
	XML         string   `json:"vcard"`
	PhotoHashes []string `json:"photo_hashes,omitempty"`
	Unhashed    bool     `json:"unhashed,omitempty"`
	// Erased: the vCard's key is destroyed (adapters/sealing); set when
	// the event is read, never written. Evolve takes it as no vCard.
	Erased bool `json:"erased,omitempty"`
}

// Empty is the vCard of an entity that has none, as XEP-0054 §3.1 allows
// answering for it.
const Empty = "<vCard xmlns='" + NS + "'/>"

// Avatar returns the hash of the first photo, or "" with ok true when the
// vCard has no photo; ok is false when it has one whose hash is unknown
// (an XEP-0153 presence must then say nothing rather than "no photo").
func (c Card) Avatar() (hash string, ok bool) {
	if len(c.PhotoHashes) > 0 {
		return c.PhotoHashes[0], true
	}
	return "", !c.Unhashed
}

// Parse reads x, which must be one vCard element in the vcard-temp
// namespace, and hashes its photos. A photo whose BINVAL is not base64
// (white space ignored, XEP-0153 §4.5) is refused with ErrInvalid. max
// bounds x in bytes (0: no bound), checked before anything is read.
func Parse(x string, max int) (Card, error) {
	x = strings.TrimSpace(x)
	if max > 0 && len(x) > max {
		return Card{}, fmt.Errorf("%w: the vCard is %d bytes; the limit is %d", ErrTooBig, len(x), max)
	}
	// What is kept is re-serialized, so that it is namespace-well-formed
	// whatever wrote it.
	canon, err := wellformed.Canonical(x)
	if err != nil {
		return Card{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	d := wellformed.NewDecoder(strings.NewReader(canon), 0)
	c := Card{XML: canon}
	var (
		inPhoto, hasData bool
		binval           *bytes.Buffer // while inside a PHOTO's BINVAL
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return Card{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch depth := d.Depth(); {
			case depth == 1 && t.Name != xml.Name{Space: NS, Local: "vCard"}:
				return Card{}, fmt.Errorf("%w: <%s xmlns='%s'/> is not a vcard-temp vCard", ErrInvalid, t.Name.Local, t.Name.Space)
			case depth == 2 && t.Name == xml.Name{Space: NS, Local: "PHOTO"}:
				inPhoto, hasData = true, false
			case depth == 3 && inPhoto && t.Name == xml.Name{Space: NS, Local: "BINVAL"}:
				binval = &bytes.Buffer{}
			}
		case xml.CharData:
			if binval != nil && d.Depth() == 3 {
				binval.Write(t)
			}
		case xml.EndElement:
			switch {
			case binval != nil && d.Depth() == 2: // the BINVAL ends
				h, err := hashOf(binval.String())
				if err != nil {
					return Card{}, err
				}
				if h != "" {
					c.PhotoHashes = append(c.PhotoHashes, h)
					hasData = true
				}
				binval = nil
			case inPhoto && d.Depth() == 1: // the PHOTO ends
				if !hasData {
					c.Unhashed = true
				}
				inPhoto = false
			}
		}
	}
}

// hashOf is the hex SHA-1 of the image data that b64 encodes, "" for
// none.
func hashOf(b64 string) (string, error) {
	s := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, b64)
	if s == "" {
		return "", nil
	}
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// Some clients leave the padding out.
		if data, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "=")); err != nil {
			return "", fmt.Errorf("%w: a photo's BINVAL is not base64", ErrInvalid)
		}
	}
	sum := sha1.Sum(data)
	return hex.EncodeToString(sum[:]), nil
}

// State is an account's vCard. Set is false until the account sets one
// (an empty one included).
type State struct {
	Card Card
	Set  bool
}

// Set is the command to replace the account's vCard with XML, a vCard of
// at most MaxBytes bytes (0: no bound).
type Set struct {
	XML      string
	MaxBytes int
}

// Decide applies a command. Setting the vCard the account already has
// records nothing: clients upload theirs again at login (XEP-0153 §4.2
// lets them).
func Decide(s State, c any, ids *event.IDs, now time.Time, cause string) ([]event.Envelope, error) {
	switch c := c.(type) {
	case Set:
		card, err := Parse(c.XML, c.MaxBytes)
		if err != nil {
			return nil, err
		}
		if s.Set && s.Card.XML == card.XML {
			return nil, nil
		}
		e, err := event.New(ids, now, TypeSet, Schema, cause, card)
		return []event.Envelope{e}, err
	}
	return nil, fmt.Errorf("vcard: unknown command %T", c)
}

// Evolve folds an account stream's events into its vCard.
func Evolve(s State, e event.Envelope) (State, error) {
	if e.Type != TypeSet {
		return s, nil
	}
	var d Card
	if err := e.Decode(Schema, &d); err != nil {
		return s, err
	}
	if d.Erased {
		return State{}, nil
	}
	return State{Card: d, Set: true}, nil
}
