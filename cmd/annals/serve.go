package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

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
	o, err := openOwner(ctx, c, true, log)
	if err != nil {
		return err
	}
	defer o.Close()
	store, runner := o.store, o.runner
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

// owner is what the one process that writes read models holds: the data
// directory's lock, the store and the projection runner.
type owner struct {
	lock   *os.File
	store  *sqlite.Store
	db     *sql.DB // read models
	runner *projections.Runner
}

// openOwner takes the data directory's lock first, so that a second serve
// or rebuild fails before it touches anything.
func openOwner(ctx context.Context, c Config, create bool, log *slog.Logger) (_ *owner, err error) {
	o := &owner{}
	defer func() {
		if err != nil {
			o.Close()
		}
	}()
	if o.store, err = openStore(ctx, c, create, log); err != nil {
		return nil, err
	}
	if o.lock, err = lockData(c); err != nil {
		return nil, err
	}
	if o.db, err = sqlite.OpenDB(o.store.Path()); err != nil {
		return nil, err
	}
	if o.runner, err = projections.NewRunner(ctx, o.db, log, allProjections()...); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *owner) Close() error {
	var errs []error
	if o.db != nil {
		errs = append(errs, o.db.Close())
	}
	if o.store != nil {
		errs = append(errs, o.store.Close())
	}
	if o.lock != nil {
		errs = append(errs, o.lock.Close())
	}
	return errors.Join(errs...)
}

// subscribe adapts the store to the runner's small interface.
func subscribe(store *sqlite.Store) projections.Subscribe {
	return func(ctx context.Context, after event.Position) (projections.Tail, error) {
		return store.Subscribe(ctx, after)
	}
}
