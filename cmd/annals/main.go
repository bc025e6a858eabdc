package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `Annals: an event-sourced, archive-centric XMPP server.

Usage:
  annals serve   [--config FILE] [--data DIR] [--durability full|normal] [--log-level LEVEL] [--demo]
  annals config check [--config FILE] [serve flags]
  annals user add|passwd JID [--password P | --random-password]
  annals user del JID
  annals user list
  annals rebuild [--data DIR] [--projection NAME]...
  annals audit query  [--data DIR] [--stream S] [--type T] [--since TIME] [--until TIME] [--limit N] [--json]
  annals audit verify [--data DIR] [--head FILE --pub PUBFILE]
  annals audit head   [--data DIR] [--at POSITION] [--sign KEYFILE]
  annals audit export [--data DIR] [--since POSITION] [--out FILE]
  annals audit keygen KEYFILE
  annals mirror list|status ROOM|rebuild ROOM [--data DIR]
  annals backup DEST [--data DIR]   (online, while serve runs)
  annals restore SRC --data DIR     (into a new data directory)
  annals node list --store nats://…  (the nodes serving a cluster's log)

Every command takes --data (default ./var, or $ANNALS_DATA) and --store
(default: the embedded store in --data; nats://H1,H2,H3 for a cluster's
log, where --data holds this machine's read models).
Every serve option can be in a TOML file, --config FILE (or $ANNALS_CONFIG),
named as its flag: see annals.example.toml. Flags win over ANNALS_*
variables, which win over the file.
Run "annals COMMAND -h" for a command's flags.
`

// errUsage marks errors that are the caller's: exit code 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "annals:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "annals:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr)
	case "rebuild":
		return rebuild(ctx, rest, stdout, stderr)
	case "audit":
		return audit(ctx, rest, stdout, stderr)
	case "user":
		return user(ctx, rest, stdin, stdout, stderr)
	case "mirror":
		return mirrorCmd(ctx, rest, stdout, stderr)
	case "node":
		return nodeCmd(ctx, rest, stdout, stderr)
	case "config":
		return configCmd(ctx, rest, stdout, stderr)
	case "backup":
		return backupCmd(ctx, rest, stdout, stderr)
	case "restore":
		return restoreCmd(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
}
