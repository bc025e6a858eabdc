package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

const auditUsage = `Usage:
  annals audit query  [--stream S] [--type T] [--since TIME] [--until TIME] [--limit N] [--json]
  annals audit verify [--head FILE --pub PUBFILE]
  annals audit head   [--at POSITION] [--sign KEYFILE]
  annals audit export [--since POSITION] [--out FILE]
  annals audit keygen KEYFILE
`

func audit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("%w: audit needs query, verify, head, export or keygen", errUsage)
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "query":
		return auditQuery(ctx, rest, stdout, stderr)
	case "verify":
		return auditVerify(ctx, rest, stdout, stderr)
	case "head":
		return auditHead(ctx, rest, stdout, stderr)
	case "export":
		return auditExport(ctx, rest, stdout, stderr)
	case "keygen":
		return auditKeygen(rest, stdout, stderr)
	default:
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("%w: unknown audit command %q", errUsage, sub)
	}
}

// parseTime reads RFC 3339 (with or without fraction) or a plain date (UTC).
func parseTime(flagName, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: --%s %q: use RFC 3339 (2026-11-27T10:00:00Z) or a date (2026-11-27)", errUsage, flagName, s)
}

// query is the filter of `audit query`.
type query struct {
	stream, typ  string
	since, until time.Time
}

func (q query) match(e event.Envelope) bool {
	return (q.stream == "" || e.Stream == q.stream) &&
		(q.typ == "" || string(e.Type) == q.typ) &&
		(q.since.IsZero() || !e.OccurredAt.Before(q.since)) &&
		(q.until.IsZero() || e.OccurredAt.Before(q.until))
}

func auditQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c              Config
		q              query
		sinceS, untilS string
		limit          int
		asJSON         bool
	)
	fs := newFlagSet("audit query", stderr)
	c.flags(fs, false)
	fs.StringVar(&q.stream, "stream", "", "only this stream, e.g. account-juliet@example.com")
	fs.StringVar(&q.typ, "type", "", "only this event type, e.g. AccountCreated")
	fs.StringVar(&sinceS, "since", "", "only events that occurred at or after TIME")
	fs.StringVar(&untilS, "until", "", "only events that occurred before TIME")
	fs.IntVar(&limit, "limit", 0, "stop after N events (0: no limit)")
	fs.BoolVar(&asJSON, "json", false, "one JSON object per line")
	if err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if q.since, err = parseTime("since", sinceS); err != nil {
		return err
	}
	if q.until, err = parseTime("until", untilS); err != nil {
		return err
	}
	if limit < 0 {
		return fmt.Errorf("%w: --limit %d: must be 0 or more", errUsage, limit)
	}
	c.raw = true // the log as kept: sealed content stays sealed
	store, err := openStore(ctx, c, false, c.logger(stderr))
	if err != nil {
		return err
	}
	defer store.Close()

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	n := 0
	emit := func(e event.Envelope) error {
		if asJSON {
			return enc.Encode(e)
		}
		_, err := fmt.Fprintf(w, "%s\t%s\t%s\tv%d\t%s\t%s\t%s\n", e.Position, e.OccurredAt.Format(time.RFC3339Nano),
			e.Stream, e.Version, e.Type, e.Cause, e.Data)
		return err
	}
	// One stream is read by version; anything else scans the log in order.
	next := func(last event.Envelope) ([]event.Envelope, error) {
		return store.ReadAll(ctx, last.Position, eventstore.PageSize)
	}
	if q.stream != "" {
		next = func(last event.Envelope) ([]event.Envelope, error) {
			return store.ReadStream(ctx, q.stream, last.Version+1, eventstore.PageSize)
		}
	}
	var last event.Envelope
	for {
		page, err := next(last)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for _, e := range page {
			if !q.match(e) {
				continue
			}
			if err := emit(e); err != nil {
				return err
			}
			if n++; limit > 0 && n >= limit {
				return nil
			}
		}
		last = page[len(page)-1]
	}
}

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c                Config
		headPath, pubKey string
	)
	fs := newFlagSet("audit verify", stderr)
	c.flags(fs, false)
	fs.StringVar(&headPath, "head", "", "also check the log against this signed head (from `audit head --sign`); needs --pub")
	fs.StringVar(&pubKey, "pub", "", "the PEM public key that signed --head, as the auditor holds it (never one from the line)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (headPath == "") != (pubKey == "") {
		return fmt.Errorf("%w: --head and --pub go together: a signed head is checked with a key the auditor holds", errUsage)
	}
	c.raw = true // the log as kept: sealed content stays sealed
	store, err := openStore(ctx, c, false, c.logger(stderr))
	if err != nil {
		return err
	}
	defer store.Close()
	// The signed head first: it says whether the log still is what was
	// signed; the chains below say where it stops verifying.
	var headErr error
	if headPath != "" {
		h, err := checkHead(ctx, store.Store, headPath, pubKey)
		switch {
		case errors.Is(err, errUsage):
			return err
		case err != nil:
			// The chains below still run: they name the stream and
			// version where the log stops verifying, if it does.
			fmt.Fprintf(stdout, "BROKEN: %v\n", err)
			headErr = err
		default:
			fmt.Fprintf(stdout, "ok: signed head of %s matches the log at position %s (%d events, %s)\n",
				h.Signed.Format(time.RFC3339), h.Digest.At, h.Digest.Events, h.Digest.Sum)
		}
	}
	rep, err := eventstore.Verify(ctx, store.Store)
	if err != nil {
		var broken *eventstore.BrokenError
		if errors.As(err, &broken) {
			fmt.Fprintf(stdout, "BROKEN: %v\n", broken)
			if headErr != nil {
				return headErr
			}
			return fmt.Errorf("audit verify: the log was altered: %w", err)
		}
		return err
	}
	if headErr != nil {
		return headErr
	}
	checked := []string{"hash chains", "dense versions"}
	if _, ok := store.Store.(eventstore.HeadRecorder); ok {
		checked = append(checked, "stream heads")
	}
	if _, ok := store.Store.(eventstore.LogVerifier); ok {
		checked = append(checked, "the whole-log chain")
	}
	fmt.Fprintf(stdout, "ok: %d events in %d streams verify (%s); last position %s\n",
		rep.Events, rep.Streams, strings.Join(checked, ", "), rep.Last)
	return nil
}

func auditHead(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c          Config
		atS, keyAt string
	)
	fs := newFlagSet("audit head", stderr)
	c.flags(fs, false)
	fs.StringVar(&atS, "at", "", "compute the digest as of this position (from an earlier `audit head`)")
	fs.StringVar(&keyAt, "sign", "", "print a signed line (docs/audit.md) with this PEM PKCS#8 Ed25519 key, from `audit keygen`")
	if err := parse(fs, args); err != nil {
		return err
	}
	var at event.Position
	if atS != "" {
		var err error
		if at, err = event.ParsePosition(atS); err != nil || at.IsZero() {
			return fmt.Errorf("%w: --at %q: give a position printed by an earlier `annals audit head`", errUsage, atS)
		}
	}
	c.raw = true // the log as kept: sealed content stays sealed
	store, err := openStore(ctx, c, false, c.logger(stderr))
	if err != nil {
		return err
	}
	defer store.Close()
	d, err := eventstore.HeadDigest(ctx, store.Store, at)
	if err != nil {
		return err
	}
	if keyAt != "" {
		id, err := logIdentity(ctx, store.Store)
		if err != nil {
			return err
		}
		return signHead(stdout, keyAt, id, d, time.Now())
	}
	fmt.Fprintf(stdout, "position %s streams %d events %d digest %s\n", d.At, d.Streams, d.Events, d.Sum)
	return nil
}
