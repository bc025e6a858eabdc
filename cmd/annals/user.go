package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"annals.im/annals/adapters/credentials"
	"annals.im/annals/app/accounts"
	"annals.im/annals/app/rooms"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore/sqlite"
	accountsproj "annals.im/annals/projections/accounts"
)

const userUsage = `Usage:
  annals user add JID    [--password P | --random-password]
  annals user passwd JID [--password P | --random-password]
  annals user del JID [--erase [--reason R]]
  annals user erase JID [--reason R]
  annals user list
Without --password or --random-password the password is read from the
first line of standard input.
erase destroys the keys that seal what JID wrote (messages, PEP items,
bookmarks, its vCard): the log keeps the ciphertext, which nobody can
read any more, and the archives drop it. del --erase deletes the account,
then erases. Backups taken before keep the keys (README: Operating Annals).
`

func user(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, userUsage)
		return fmt.Errorf("%w: user needs add, passwd, del, erase or list", errUsage)
	}
	sub, rest := args[0], args[1:]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(stdout, userUsage)
		return nil
	}
	var (
		c              Config
		password       string
		randomPassword bool
		erase          bool
		reason         string
	)
	fs := newFlagSet("user "+sub, stderr)
	c.flags(fs, false)
	if sub == "add" || sub == "passwd" {
		fs.StringVar(&password, "password", "", "the password (visible to other local users in the process list; prefer stdin)")
		fs.BoolVar(&randomPassword, "random-password", false, "generate a password and print it")
	}
	if sub == "del" {
		fs.BoolVar(&erase, "erase", false, "also erase what the account wrote (as annals user erase)")
	}
	if sub == "erase" || sub == "del" {
		fs.StringVar(&reason, "reason", "", "with erase or del --erase: why, as the erasure event records it (e.g. a request's reference); no personal data")
	}
	switch sub {
	case "add", "passwd", "del", "erase", "list":
	default:
		fmt.Fprint(stderr, userUsage)
		return fmt.Errorf("%w: unknown user command %q", errUsage, sub)
	}
	target, err := parseAround(fs, rest)
	if err != nil {
		return err
	}
	if target != "" && sub == "list" {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, target)
	}
	if target == "" && sub != "list" {
		return fmt.Errorf("%w: annals user %s needs a JID, e.g. juliet@localhost", errUsage, sub)
	}
	if sub == "list" {
		return userList(ctx, c, stdout, stderr)
	}
	j, err := account.ParseJID(target)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if sub == "del" {
		// Remove finds the account's rooms in the rooms read model: when
		// no server keeps it current, bring it up to date first.
		if err := catchUpIdle(ctx, c, stderr); err != nil {
			return err
		}
	}
	a, store, closeAll, err := openAccounts(ctx, c, sub == "add", stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	// The events this command appends say which command caused them.
	ctx = event.WithCause(ctx, "cli:user "+sub)
	switch sub {
	case "add", "passwd":
		if password != "" && randomPassword {
			return fmt.Errorf("%w: give --password or --random-password, not both", errUsage)
		}
		switch {
		case randomPassword:
			password = newPassword()
		case password == "":
			if password, err = readPassword(stdin, stderr); err != nil {
				return err
			}
		}
		if err := credentials.CheckPassword(password); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if sub == "add" {
			err = a.Register(ctx, j.String(), password)
		} else {
			err = a.SetPassword(ctx, j.String(), password, "")
		}
		if err != nil {
			return err
		}
		if randomPassword {
			fmt.Fprintf(stdout, "%s password: %s\n", j, password)
		} else {
			fmt.Fprintf(stdout, "%s: password set\n", j)
		}
		return nil
	case "erase":
		return eraseContent(ctx, c, a, store, j.String(), reason, stdout, stderr)
	default: // del
		if err := a.Remove(ctx, j.String()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: deleted\n", j)
		if erase {
			return eraseContent(ctx, c, a, store, j.String(), reason, stdout, stderr)
		}
		return nil
	}
}

// openAccounts opens the store and the credentials beside it for the
// account commands of the CLI.
func openAccounts(ctx context.Context, c Config, create bool, stderr io.Writer) (*accounts.Service, *logStore, func() error, error) {
	store, err := openStore(ctx, c, create, c.logger(stderr))
	if err != nil {
		return nil, nil, nil, err
	}
	db, err := sqlite.OpenDB(store.readModels)
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	creds, pwds, err := store.secrets(ctx, db, c.logger(stderr))
	if err != nil {
		db.Close()
		store.Close()
		return nil, nil, nil, err
	}
	// No MUC domain: the rooms are here only for a deletion to leave them.
	ids := event.NewIDs()
	a := accounts.New(store, creds, ids, accounts.Options{Rooms: rooms.New(store, ids, db, ""), Secrets: pwds})
	return a, store, func() error { return errors.Join(db.Close(), store.Close()) }, nil
}

// catchUpIdle brings the read models up to date when no server holds the
// data directory (a running server keeps them current itself).
func catchUpIdle(ctx context.Context, c Config, stderr io.Writer) error {
	o, err := openOwner(ctx, c, false, c.logger(stderr))
	if errors.Is(err, errInUse) {
		return nil
	}
	if err != nil {
		return err
	}
	defer o.Close()
	_, err = o.runner.CatchUp(ctx, o.store)
	return err
}

// userList prints the accounts read model. When no server holds the data
// directory, it first brings the read model up to date itself.
func userList(ctx context.Context, c Config, stdout, stderr io.Writer) error {
	return withReadModels(ctx, c, stderr, func(db *sql.DB) error { return printAccounts(ctx, db, stdout) })
}

func printAccounts(ctx context.Context, db *sql.DB, stdout io.Writer) error {
	list, err := accountsproj.List(ctx, db)
	if err != nil {
		return err
	}
	for _, a := range list {
		fmt.Fprintf(stdout, "%s\tcreated %s\n", a.JID, time.Unix(0, a.CreatedAt).UTC().Format(time.RFC3339))
	}
	return nil
}

func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stderr, "Password (shown as you type): ")
		}
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("%w: no password on standard input (or use --password / --random-password)", errUsage)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// newPassword returns 26 random base32 characters (128 bits).
func newPassword() string { return rand.Text() }
