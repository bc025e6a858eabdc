package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/projections"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c Config
	fs := newFlagSet("serve", stderr)
	c.flags(fs, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	log := c.logger(stderr)
	store, err := openStore(ctx, c, true, log)
	if err != nil {
		return err
	}
	defer store.Close()
	lock, err := lockData(c)
	if err != nil {
		return err
	}
	defer lock.Close()
	runner, err := openRunner(ctx, store, log)
	if err != nil {
		return err
	}
	stats, err := runner.CatchUp(ctx, store)
	if err != nil {
		return err
	}
	for _, s := range stats {
		log.Info("projection caught up", "projection", s.Projection, "events", s.Events, "took", s.Took)
	}
	log.Info("serving", "data", c.Data, "durability", c.Durability, "projections", joinNames(runner.Names()))
	fmt.Fprintf(stdout, "Annals is serving the event store %s (durability %s). Stop with Ctrl-C.\n", c.DBPath(), c.Durability)
	err = runner.Run(ctx, subscribe(store))
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("stopped")
	return nil
}

func openRunner(ctx context.Context, store *sqlite.Store, log *slog.Logger) (*projections.Runner, error) {
	db, err := sqlite.OpenDB(store.Path())
	if err != nil {
		return nil, err
	}
	// The read-model pool lives as long as the process: commands exit when done.
	return projections.NewRunner(ctx, db, log, allProjections()...)
}

// subscribe adapts the store to the runner's small interface.
func subscribe(store *sqlite.Store) projections.Subscribe {
	return func(ctx context.Context, after event.Position) (projections.Tail, error) {
		return store.Subscribe(ctx, after)
	}
}
