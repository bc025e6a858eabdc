package eventstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	"annals.im/annals/domain/event"
)

// ErrBroken is matched by every *BrokenError.
var ErrBroken = errors.New("eventstore: log does not verify")

// BrokenError names the first place where the log stops verifying.
type BrokenError struct {
	Stream  string
	Version uint64
	Reason  string
}

func (e *BrokenError) Error() string {
	return fmt.Sprintf("stream %s version %d: %s", e.Stream, e.Version, e.Reason)
}

func (e *BrokenError) Unwrap() error { return ErrBroken }

// Report is what a successful Verify counted.
type Report struct {
	Events  int
	Streams int
	Last    event.Position
}

// PageSize is how many events the package's scans read at a time.
const PageSize = 4096

// Verify reads the whole log in position order and checks, per stream, that
// versions run 1, 2, 3 … in log order and that each hash is the chain of
// the one before. If the store records heads apart from the events, it also
// checks that each recorded head is the last event of its stream, which
// catches a deleted last event; if it chains the whole log, that chain too.
// The first failure is a *BrokenError.
func Verify(ctx context.Context, s Store) (Report, error) {
	tips := make(map[string]tip)
	var rep Report
	// Recorded heads are read first and checked as the scan meets them.
	var hc *headCheck
	if hr, ok := s.(HeadRecorder); ok {
		heads, complete, err := hr.RecordedHeads(ctx)
		if err != nil {
			return rep, err
		}
		hc = newHeadCheck(heads, complete)
	}
	for {
		page, err := s.ReadAll(ctx, rep.Last, PageSize)
		if err != nil {
			return rep, err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			t := tips[e.Stream]
			switch {
			case e.Version == t.version+1:
			case e.Version <= t.version:
				return rep, &BrokenError{e.Stream, e.Version, fmt.Sprintf("out of order: follows version %d", t.version)}
			default:
				return rep, &BrokenError{e.Stream, t.version + 1, fmt.Sprintf("missing or out of order: the next event of the stream in the log is version %d", e.Version)}
			}
			if !event.Verify(t.hash, e) {
				return rep, &BrokenError{e.Stream, e.Version, "hash does not match the event and the chain before it"}
			}
			if hc != nil {
				if err := hc.see(e); err != nil {
					return rep, err
				}
			}
			tips[e.Stream] = tip{e.Version, e.Hash}
			rep.Events++
			rep.Last = e.Position
		}
	}
	rep.Streams = len(tips)
	if hc != nil {
		if err := hc.finish(); err != nil {
			return rep, err
		}
	}
	// The log chain comes last: a deleted row breaks it too, but the
	// checks above name the stream and version it belonged to.
	if lv, ok := s.(LogVerifier); ok {
		if err := lv.VerifyLog(ctx); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

type tip struct {
	version uint64
	hash    []byte
}

// headCheck checks recorded heads against the log: each must name an
// event that is in the log as recorded, and every stream with an event at
// or before the position where the heads are complete must have a head at
// least that recent. A deleted last event shows as a head naming an event
// the log lacks.
type headCheck struct {
	complete event.Position
	heads    map[string]Head
	found    map[string]bool
	owed     map[string]uint64 // stream -> last version at or before complete
}

func newHeadCheck(heads []Head, complete event.Position) *headCheck {
	hc := &headCheck{complete: complete, heads: make(map[string]Head, len(heads)),
		found: make(map[string]bool), owed: make(map[string]uint64)}
	for _, h := range heads {
		hc.heads[h.Stream] = h
	}
	return hc
}

func (hc *headCheck) see(e event.Envelope) error {
	if !hc.complete.Less(e.Position) {
		hc.owed[e.Stream] = e.Version
	}
	h, ok := hc.heads[e.Stream]
	if !ok || h.Version != e.Version {
		return nil
	}
	if !bytes.Equal(h.Hash, e.Hash) || h.Position != e.Position {
		return &BrokenError{e.Stream, e.Version, "differs from the recorded stream head"}
	}
	hc.found[e.Stream] = true
	return nil
}

func (hc *headCheck) finish() error {
	names := make([]string, 0, len(hc.heads)+len(hc.owed))
	for name := range hc.heads {
		names = append(names, name)
	}
	for name := range hc.owed {
		if _, ok := hc.heads[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		h, ok := hc.heads[name]
		switch {
		case ok && !hc.found[name]:
			return &BrokenError{name, h.Version, fmt.Sprintf("missing: the stream head records version %d", h.Version)}
		case !ok:
			return &BrokenError{name, 1, "stream has events but no recorded head"}
		case h.Version < hc.owed[name]:
			return &BrokenError{name, h.Version + 1, fmt.Sprintf("not in the stream head, which records version %d", h.Version)}
		}
	}
	return nil
}

// Digest is one value over the heads of all streams as of a position. An
// auditor records it with its position; recomputing it later at the same
// position gives the same value unless an event at or before that position
// was changed, removed or moved.
type Digest struct {
	At      event.Position // last event included
	Streams int
	Events  int
	Sum     string // "sha256:<hex>"
}

// HeadDigest computes the Digest as of position at (inclusive); the zero
// Position means the whole log as it is now. It does not verify chains: run
// Verify for that.
func HeadDigest(ctx context.Context, s Store, at event.Position) (Digest, error) {
	heads := make(map[string]event.Envelope)
	var d Digest
	var last event.Position
	for {
		page, err := s.ReadAll(ctx, last, PageSize)
		if err != nil {
			return d, err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if !at.IsZero() && at.Less(e.Position) {
				goto done
			}
			heads[e.Stream] = e
			d.Events++
			d.At = e.Position
		}
		last = page[len(page)-1].Position
	}
done:
	if !at.IsZero() && d.At != at {
		return d, fmt.Errorf("eventstore: no event at position %s (last one at or before it is %s)", at, d.At)
	}
	d.Streams = len(heads)
	d.Sum = SumHeads(heads)
	return d, nil
}

// SumHeads is the Sum of a Digest over the last event of each stream
// (keyed by stream): SHA-256 over "stream\nversion\nhash-hex\n" per
// stream in byte order of the names (docs/audit.md).
func SumHeads(heads map[string]event.Envelope) string {
	names := make([]string, 0, len(heads))
	for name := range heads {
		names = append(names, name)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		e := heads[name]
		// Stream names hold no control characters, so the line layout is unambiguous.
		fmt.Fprintf(h, "%s\n%d\n%x\n", name, e.Version, e.Hash)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
