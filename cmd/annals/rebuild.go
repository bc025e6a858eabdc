package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"annals.im/annals/projections"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

var _ flag.Value = (*stringList)(nil)

func rebuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c     Config
		names stringList
	)
	fs := newFlagSet("rebuild", stderr)
	c.flags(fs, true)
	fs.Var(&names, "projection", "rebuild only this projection (repeatable; default all)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	o, err := openOwner(ctx, c, false, c.logger(stderr))
	if err != nil {
		return err
	}
	defer o.Close()
	stats, err := o.runner.Rebuild(ctx, o.store, names...)
	for _, s := range stats {
		rate := float64(s.Events) / max(s.Took.Seconds(), 1e-9)
		fmt.Fprintf(stdout, "%s: replayed %d events in %s (%.0f events/s)\n", s.Projection, s.Events, s.Took.Round(1e6), rate)
	}
	if err != nil {
		if errors.Is(err, projections.ErrUnknown) {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		return err
	}
	return nil
}
