package upload

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"annals.im/annals/domain/event"
)

// TypeSlotGranted is the one event type, written by hand: renaming a Go
// type must not orphan stored events.
const TypeSlotGranted event.Type = "UploadSlotGranted"

// Schema is the newest schema of each event type that this build reads
// and writes.
const Schema = 1

// Errors of the upload rules.
var (
	ErrInvalid  = errors.New("upload: invalid")              // bad-request
	ErrTooLarge = errors.New("upload: file too large")       // not-acceptable, with file-too-large
	ErrQuota    = errors.New("upload: quota reached")        // resource-constraint
	ErrOpen     = errors.New("upload: too many open slots")  // resource-constraint
	errCommand  = errors.New("upload: the limits are unset") // a programming error
)

// Defaults of the limits, each with a flag in cmd/annals.
const (
	// DefaultMaxSize: a phone's video of some minutes.
	DefaultMaxSize = 100 << 20
	// DefaultQuota bounds an account's live files: ten of the largest.
	DefaultQuota = 1 << 30
	// DefaultExpiry: long enough for every device of every recipient to
	// fetch a file (it is a message attachment, XEP-0363 §purpose).
	DefaultExpiry = 30 * 24 * time.Hour
	// DefaultPutWindow: a client uploads right after asking (XEP-0363
	// §impl recommends about 300 s).
	DefaultPutWindow = 5 * time.Minute
	// DefaultMaxOpen bounds the slots an account holds that were not yet
	// uploaded to: a client asks for one per file it sends.
	DefaultMaxOpen = 16
)

// SlotIDLen is the length of a slot's id: 32 hex digits.
const SlotIDLen = 32

// Granted is the data of TypeSlotGranted: a slot for one file.
type Granted struct {
	// Slot names the slot: a hash of the URL's secret token, never the
	// token itself, so that whoever reads the log cannot fetch the file.
	Slot     string `json:"slot"`
	Filename string `json:"filename"` // sanitized
	Size     int64  `json:"size"`     // bytes, exactly
	// ContentType is the requested type, canonical; "" when the client
	// gave none (served as application/octet-stream).
	ContentType string `json:"content_type,omitempty"`
	// PutBefore ends the slot's upload window; Expires is when the
	// file is deleted (zero: never).
	PutBefore time.Time `json:"put_before"`
	Expires   time.Time `json:"expires,omitzero"`
}

// Slot is a live slot in the state: what the quota counts.
type Slot struct {
	ID                 string
	Size               int64
	PutBefore, Expires time.Time
}

// live reports whether the slot still counts at now.
func (s Slot) live(now time.Time) bool { return s.Expires.IsZero() || now.Before(s.Expires) }

// State is an account's live slots, in the order granted.
type State struct {
	Slots []Slot
}

// Used returns the bytes of the slots live at now.
func (s State) Used(now time.Time) int64 {
	var n int64
	for _, sl := range s.Slots {
		if sl.live(now) {
			n += sl.Size
		}
	}
	return n
}

// Limits bound what an account is granted; every field is required
// (Defaults gives them), Expiry 0 meaning files are kept for ever.
type Limits struct {
	MaxSize   int64 // bytes of one file
	Quota     int64 // bytes of an account's live files
	MaxOpen   int   // slots in their upload window not yet uploaded to
	PutWindow time.Duration
	Expiry    time.Duration
}

// Defaults are the limits when the server is not told otherwise.
func Defaults() Limits {
	return Limits{MaxSize: DefaultMaxSize, Quota: DefaultQuota, MaxOpen: DefaultMaxOpen, PutWindow: DefaultPutWindow, Expiry: DefaultExpiry}
}

// Request asks for a slot (XEP-0363 §4).
type Request struct {
	Slot        string // the new slot's id, made by the caller from its token
	Filename    string
	Size        int64
	ContentType string
	Limits      Limits
	// Stored reports whether the file of a slot was uploaded: files are
	// not events, the caller looks. nil: none was.
	Stored func(slot string) bool
}

// Decide returns the grant of r, or the rule it breaks.
func Decide(s State, r Request, ids *event.IDs, now time.Time, cause string) ([]event.Envelope, error) {
	l := r.Limits
	if l.MaxSize <= 0 || l.Quota <= 0 || l.MaxOpen <= 0 || l.PutWindow <= 0 || l.Expiry < 0 {
		return nil, fmt.Errorf("%w: %+v", errCommand, l)
	}
	if len(r.Slot) != SlotIDLen || !isHex(r.Slot) || slices.ContainsFunc(s.Slots, func(sl Slot) bool { return sl.ID == r.Slot }) {
		return nil, fmt.Errorf("%w: slot id %q", ErrInvalid, r.Slot)
	}
	if r.Filename == "" {
		return nil, fmt.Errorf("%w: a file name is required", ErrInvalid)
	}
	if r.Size <= 0 {
		return nil, fmt.Errorf("%w: the size must be 1 byte or more", ErrInvalid)
	}
	ct, err := ContentType(r.ContentType)
	if err != nil {
		return nil, err
	}
	if r.Size > l.MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, r.Size, l.MaxSize)
	}
	// Slots count from their grant, uploaded to or not: the log does not
	// know which were (files are not events), and the quota must be the
	// same after a restart.
	if used := s.Used(now); used+r.Size > l.Quota {
		return nil, fmt.Errorf("%w: %d bytes of live files, at most %d", ErrQuota, used, l.Quota)
	}
	open := 0
	for _, sl := range s.Slots {
		if now.Before(sl.PutBefore) && (r.Stored == nil || !r.Stored(sl.ID)) {
			open++
		}
	}
	if open >= l.MaxOpen {
		return nil, fmt.Errorf("%w: %d slots not uploaded to yet, at most %d", ErrOpen, open, l.MaxOpen)
	}
	g := Granted{Slot: r.Slot, Filename: SanitizeFilename(r.Filename), Size: r.Size, ContentType: ct, PutBefore: now.Add(l.PutWindow).UTC()}
	if l.Expiry > 0 {
		g.Expires = now.Add(l.Expiry).UTC()
	}
	return event.One(ids, now, TypeSlotGranted, Schema, cause, g)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Evolve folds one event of the account stream; other types are skipped.
// Slots expired when the event happened are dropped: the state holds the
// live ones only, however long the account has uploaded.
func Evolve(s State, e event.Envelope) (State, error) {
	if e.Type != TypeSlotGranted {
		return s, nil
	}
	var g Granted
	if err := e.Decode(Schema, &g); err != nil {
		return s, err
	}
	slots := slices.DeleteFunc(slices.Clone(s.Slots), func(sl Slot) bool { return !sl.live(e.OccurredAt) })
	return State{Slots: append(slots, Slot{ID: g.Slot, Size: g.Size, PutBefore: g.PutBefore, Expires: g.Expires})}, nil
}
