package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"annals.im/annals/app/accounts"
	"annals.im/annals/eventstore/sqlite"
)

// eraseContent erases what bare wrote (annals user erase, user del
// --erase), then makes the read models and the data directory's files
// forget it: a server holding the directory does that itself when it
// sees the erasure in the log (scrubber); otherwise this command does.
func eraseContent(ctx context.Context, c Config, a *accounts.Service, store *logStore, bare, reason string, stdout, stderr io.Writer) error {
	if store.keys == nil {
		return fmt.Errorf("the log %s has no content keys here: nothing was sealed, so nothing can be erased by this command", store.describe(c))
	}
	n, err := a.EraseContent(ctx, bare, reason, store.keys)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: erased (%d content keys destroyed)\n", bare, n)
	if store.cluster() {
		fmt.Fprintln(stdout, "Each node's read models drop what the keys sealed as they follow the log.")
		return nil
	}
	served, err := scrubIdle(ctx, c, stderr)
	if err != nil {
		return err
	}
	if served {
		fmt.Fprintln(stdout, "The running server drops what the keys sealed from its read models and empties its write-ahead log.")
	}
	return nil
}

// scrubIdle, when no server holds the data directory, brings the read
// models up to date (the erasure's rows go) and empties the WAL; served
// says a server holds it (and does that itself).
func scrubIdle(ctx context.Context, c Config, stderr io.Writer) (served bool, err error) {
	o, err := openOwner(ctx, c, false, c.logger(stderr))
	if errors.Is(err, errInUse) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer o.Close()
	if _, err := o.runner.CatchUp(ctx, o.store); err != nil {
		return false, err
	}
	return false, scrub(ctx, o.store.lite)
}

// scrubAttempts bounds how often a scrub waits for readers to move on: a
// WAL checkpoint that truncates needs a moment with no reader in it.
const scrubAttempts = 8

// scrub empties the WAL, asking again while readers or the writer keep
// the checkpoint from finishing.
func scrub(ctx context.Context, lite *sqlite.Store) error {
	var err error
	for i := range scrubAttempts {
		if err = lite.Scrub(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(50<<i) * time.Millisecond):
		}
	}
	return err
}

// scrubber makes a serving process forget what an erasure or an expiry
// took, wherever it was appended: the inline read models catch up at once
// (rather than in the next batch this process writes) and the WAL, which
// still holds the deleted rows' pages, is emptied. Kicks while it works
// fold into one more round.
type scrubber struct {
	lite *sqlite.Store
	log  *slog.Logger
	kick chan struct{}
}

func newScrubber(lite *sqlite.Store, log *slog.Logger) *scrubber {
	return &scrubber{lite: lite, log: log, kick: make(chan struct{}, 1)}
}

// Kick asks for a round; it never blocks.
func (s *scrubber) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *scrubber) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		start := time.Now()
		err := s.lite.CatchUpInline(ctx)
		if err == nil {
			err = scrub(ctx, s.lite)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("after an erasure or expiry: the read models or the write-ahead log still hold what it took", "err", err)
			}
			continue
		}
		s.log.Info("erased content dropped from the read models; write-ahead log emptied", "took", time.Since(start))
	}
}
