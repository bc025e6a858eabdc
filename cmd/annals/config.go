package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/projections"
	"annals.im/annals/projections/accounts"
	archiveproj "annals.im/annals/projections/archive"
	"annals.im/annals/projections/mirrors"
	"annals.im/annals/projections/rooms"
)

// Config is every setting a command may use. Precedence: flags, then
// ANNALS_* environment, then Defaults.
type Config struct {
	Data       string // directory holding annals.db, or a cluster node's read models
	Store      string // "" (the embedded store in Data) or nats://… (a cluster's log)
	Bus        string // nats://…: a KurrentDB cluster's bus and secrets
	Durability string // full | normal
	LogLevel   string // debug | info | warn | error

	server  bool           // set by serve: the one long-running writer of the data directory
	metrics sqlite.Metrics // set by serve: what the store reports to
	// unsealed: serve --seal-content=false (new content goes into the log
	// as it is, and cannot be erased by destroying keys).
	unsealed bool
	// raw: the command reads the log as it is kept, sealed content and
	// all (audits check those bytes).
	raw bool
}

// Defaults returns the settings used when neither flag nor environment says.
func Defaults() Config {
	return Config{Data: "./var", Durability: string(sqlite.DurabilityFull), LogLevel: "info"}
}

// fromEnv overlays ANNALS_* variables on c.
func (c Config) fromEnv() Config {
	for _, v := range []struct {
		name string
		dst  *string
	}{
		{"ANNALS_DATA", &c.Data},
		{"ANNALS_STORE", &c.Store},
		{"ANNALS_BUS", &c.Bus},
		{"ANNALS_DURABILITY", &c.Durability},
		{"ANNALS_LOG_LEVEL", &c.LogLevel},
	} {
		if s, ok := os.LookupEnv(v.name); ok && s != "" {
			*v.dst = s
		}
	}
	return c
}

// Validate says what is wrong and how to fix it.
func (c Config) Validate() error {
	if c.Data == "" {
		return fmt.Errorf("%w: --data is empty: give a directory, e.g. --data ./var", errUsage)
	}
	if _, err := sqlite.ParseDurability(c.Durability); err != nil {
		return fmt.Errorf("%w: --durability %q: use full (fsync every commit) or normal", errUsage, c.Durability)
	}
	if _, err := c.level(); err != nil {
		return err
	}
	if _, err := parseStore(c.Store); err != nil {
		return err
	}
	if b, err := parseStore(c.Bus); err != nil || (b != nil && b.servers == "") {
		return fmt.Errorf("%w: --bus %q: give nats://HOST[:PORT],HOST…", errUsage, redact(c.Bus))
	}
	return nil
}

func (c Config) level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return l, fmt.Errorf("%w: --log-level %q: use debug, info, warn or error", errUsage, c.LogLevel)
	}
	return l, nil
}

// DBPath is the SQLite file of the log and the read models.
func (c Config) DBPath() string { return filepath.Join(c.Data, "annals.db") }

// flags registers the common flags on fs, with defaults from the
// environment. Commands that do not write skip durability and log level.
func (c *Config) flags(fs *flag.FlagSet, all bool) {
	*c = Defaults().fromEnv()
	fs.StringVar(&c.Data, "data", c.Data, "data directory ($ANNALS_DATA); with --store, this node's read models")
	fs.StringVar(&c.Store, "store", c.Store, "the log of a cluster: nats://HOST[:PORT],HOST…[?stream=&prefix=&replicas=] or kurrentdb://… (default: the embedded SQLite store in --data; $ANNALS_STORE)")
	fs.StringVar(&c.Bus, "bus", c.Bus, "with --store kurrentdb://…: the NATS servers (JetStream on) keeping the credentials and carrying what nodes say to each other, nats://HOST,HOST…[?replicas=] ($ANNALS_BUS)")
	if all {
		fs.StringVar(&c.Durability, "durability", c.Durability, "when an append counts: full (fsync) or normal ($ANNALS_DURABILITY)")
		fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error ($ANNALS_LOG_LEVEL)")
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("annals "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args and turns flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

func (c Config) logger(w io.Writer) *slog.Logger {
	l, _ := c.level()
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// allProjections is every read model this build keeps.
func allProjections() []projections.Projection {
	return []projections.Projection{accounts.Projection{}, archiveModel(), archiveproj.UsageProjection{}, rooms.Projection{}, mirrors.Projection{}}
}

// archiveModel is the archive read model: a room's message kept once,
// read through each account's stays in the room
// (archiveproj.Projection.Stays); ANNALS_ARCHIVE_MODEL=copies copies it
// into each occupant's archive instead, as before archive/v5, to measure
// both. A change rebuilds the archive from the log.
func archiveModel() archiveproj.Projection {
	return archiveproj.Projection{Stays: os.Getenv("ANNALS_ARCHIVE_MODEL") != "copies"}
}

// errInUse: another process holds the data directory's lock.
var errInUse = errors.New("data directory in use")

// lockData takes the data directory's exclusive lock, held by the one
// process that writes read models (serve, rebuild). It is released when
// the process exits, however it exits.
func lockData(c Config) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(c.Data, "annals.lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s is held by another annals serve or rebuild; stop it first", errInUse, c.Data)
	}
	return f, nil
}

func joinNames(ss []string) string { return strings.Join(ss, ", ") }

// parseAround parses fs's flags before, between and after at most one
// argument, which people type anywhere among the flags, and returns that
// argument ("" when there is none).
func parseAround(fs *flag.FlagSet, args []string) (string, error) {
	var arg string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", err
			}
			return "", fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			return arg, nil
		}
		if arg != "" {
			return "", fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
		}
		arg, args = fs.Arg(0), fs.Args()[1:]
	}
}

// withReadModels runs f on the read models: brought up to date first,
// unless a server is running, which keeps them current (and holds the
// lock a catch-up needs).
func withReadModels(ctx context.Context, c Config, stderr io.Writer, f func(*sql.DB) error) error {
	log := c.logger(stderr)
	if o, err := openOwner(ctx, c, false, log); err == nil {
		defer o.Close()
		if _, err := o.runner.CatchUp(ctx, o.store); err != nil {
			return err
		}
		return f(o.db)
	} else if !errors.Is(err, errInUse) {
		return err
	}
	c.raw = true // the log as kept: sealed content stays sealed
	store, err := openStore(ctx, c, false, log)
	if err != nil {
		return err
	}
	defer store.Close()
	db, err := sqlite.OpenDB(store.readModels)
	if err != nil {
		return err
	}
	defer db.Close()
	return f(db)
}
