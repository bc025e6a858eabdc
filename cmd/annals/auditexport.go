package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"time"
	"unicode/utf8"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// exportFormat names the layout of `audit export` (docs/audit.md).
const exportFormat = "annals-export/1"

// exportHeader is the first line of an export.
type exportHeader struct {
	Kind   string `json:"kind"` // "header"
	Format string `json:"format"`
	Log    string `json:"log"`             // ID of the log's first event
	Since  string `json:"since,omitempty"` // events after this position follow
	// SinceDigest is the head digest at Since, which the tips give: an
	// auditor compares it with a head they hold for that position.
	SinceDigest string `json:"since_digest,omitempty"`
}

// exportTip is a stream's last event at or before Since: where its chain
// continues in the export.
type exportTip struct {
	Kind     string `json:"kind"` // "tip"
	Stream   string `json:"stream"`
	Version  uint64 `json:"version"`
	Position string `json:"position"`
	Hash     string `json:"hash"`
}

// exportEnd is the last line: what Annals computes at the last event, for
// a verifier to compare with what it computes.
type exportEnd struct {
	Kind     string `json:"kind"` // "end"
	Position string `json:"position,omitempty"`
	Streams  int    `json:"streams"`
	Events   int    `json:"events"` // in the whole log up to Position
	Exported int    `json:"exported"`
	Digest   string `json:"digest,omitempty"`
}

// exportLine writes one event with every field the chain covers in a form
// that gives back its exact bytes: a JSON string when the bytes are valid
// UTF-8, else the field with a "_base64" suffix.
func exportLine(e event.Envelope) map[string]any {
	m := map[string]any{
		"kind":           "event",
		"id":             e.ID.String(),
		"version":        e.Version,
		"position":       e.Position.String(),
		"schema":         e.Schema,
		"occurred_at":    e.OccurredAt.UTC().Format(time.RFC3339Nano),
		"occurred_at_ns": e.OccurredAt.UnixNano(),
		"hash":           hex.EncodeToString(e.Hash),
	}
	for _, f := range []struct{ name, v string }{
		{"stream", e.Stream}, {"type", string(e.Type)}, {"cause", e.Cause}, {"data", string(e.Data)},
	} {
		if utf8.ValidString(f.v) {
			m[f.name] = f.v
		} else {
			m[f.name+"_base64"] = base64.StdEncoding.EncodeToString([]byte(f.v))
		}
	}
	return m
}

func auditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c             Config
		sinceS, outTo string
	)
	fs := newFlagSet("audit export", stderr)
	c.flags(fs, false)
	fs.StringVar(&sinceS, "since", "", "only events after this position; the streams' tips at it come first")
	fs.StringVar(&outTo, "out", "", "write to FILE (mode 0600: it holds the events' content) instead of stdout")
	if err := parse(fs, args); err != nil {
		return err
	}
	var since event.Position
	if sinceS != "" {
		var err error
		if since, err = event.ParsePosition(sinceS); err != nil || since.IsZero() {
			return fmt.Errorf("%w: --since %q: give a position printed by `annals audit head`", errUsage, sinceS)
		}
	}
	c.raw = true // the log as kept: sealed content stays sealed
	store, err := openStore(ctx, c, false, c.logger(stderr))
	if err != nil {
		return err
	}
	defer store.Close()
	id, err := logIdentity(ctx, store.Store)
	if err != nil {
		return err
	}
	out := stdout
	if outTo != "" {
		f, err := os.OpenFile(outTo, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	hdr := exportHeader{Kind: "header", Format: exportFormat, Log: id}
	tips := make(map[string]event.Envelope)
	var last event.Position
	if !since.IsZero() {
		d, err := eventstore.HeadDigest(ctx, store.Store, since)
		if err != nil {
			return fmt.Errorf("%w: --since: %v", errUsage, err)
		}
		hdr.Since, hdr.SinceDigest = since.String(), d.Sum
	}
	if err := enc.Encode(hdr); err != nil {
		return err
	}
	end := exportEnd{Kind: "end"}
	tipsDone := since.IsZero()
	writeTips := func() error {
		names := make([]string, 0, len(tips))
		for n := range tips {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			t := tips[n]
			if err := enc.Encode(exportTip{"tip", n, t.Version, t.Position.String(), hex.EncodeToString(t.Hash)}); err != nil {
				return err
			}
		}
		tipsDone = true
		return nil
	}
	for {
		page, err := store.ReadAll(ctx, last, eventstore.PageSize)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if !tipsDone && since.Less(e.Position) {
				if err := writeTips(); err != nil {
					return err
				}
			}
			if tipsDone {
				if err := enc.Encode(exportLine(e)); err != nil {
					return err
				}
				end.Exported++
			}
			// Only the last event of each stream is kept: the tips, then
			// the heads the end line's digest is over.
			e.Data = nil
			tips[e.Stream] = e
			end.Events++
			end.Position = e.Position.String()
		}
		last = page[len(page)-1].Position
	}
	if !tipsDone {
		if err := writeTips(); err != nil {
			return err
		}
	}
	end.Streams = len(tips)
	if end.Events > 0 {
		end.Digest = eventstore.SumHeads(tips)
	}
	if err := enc.Encode(end); err != nil {
		return err
	}
	return w.Flush()
}
