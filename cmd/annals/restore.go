package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"annals.im/annals/eventstore/sqlite"
)

// restoreCmd puts a backup in place as a new data directory: every file
// checked against the manifest, the database against SQLite's
// integrity_check, the log against the head the backup recorded and its
// own chains (audit verify). Everything is checked in a staging directory
// inside the target and moved into place only then, the database last, so
// that a directory holding annals.db holds a whole restore.
func restoreCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c Config
	fset := newFlagSet("restore", stderr)
	c.flags(fset, false)
	src, err := parseAround(fset, args)
	if err != nil {
		return err
	}
	if src == "" {
		fmt.Fprint(stderr, backupUsage)
		return fmt.Errorf("%w: restore needs the backup's directory", errUsage)
	}
	// The target is never a default: restoring into ./var by accident
	// would be found out only when the wrong server starts.
	given := os.Getenv("ANNALS_DATA") != ""
	fset.Visit(func(f *flag.Flag) { given = given || f.Name == "data" })
	if !given {
		return fmt.Errorf("%w: restore needs --data DIR, the new data directory", errUsage)
	}
	if u, err := parseStore(c.Store); err != nil {
		return err
	} else if u != nil {
		return fmt.Errorf("%w: annals restore restores the embedded store only; %s", errUsage, clusterBackup)
	}
	m, err := readManifest(src)
	if err != nil {
		return err
	}
	// A store, or any file the backup would put there, is never
	// overwritten: the operator moves it away first.
	for _, name := range append([]string{"annals.db", "annals.db-wal", "readmodels.db", uploadsDir}, backupFiles...) {
		if _, err := os.Lstat(filepath.Join(c.Data, name)); err == nil {
			return fmt.Errorf("%w: %s already holds %s: restore into a new directory, or move it away first", errUsage, c.Data, name)
		}
	}
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	staging, err := os.MkdirTemp(c.Data, ".restore-")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(staging)
	for _, rel := range sortedKeys(m.SHA256) {
		to := filepath.Join(staging, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		sum, err := copyOut(filepath.Join(src, filepath.FromSlash(rel)), to)
		if err != nil {
			return fmt.Errorf("restore: the backup is incomplete: %w", err)
		}
		if sum != m.SHA256[rel] {
			return fmt.Errorf("restore: %s in %s is not what was backed up (SHA-256 %s, recorded %s): the backup is damaged", rel, src, sum, m.SHA256[rel])
		}
	}
	db := filepath.Join(staging, "annals.db")
	if err := integrityCheck(ctx, db); err != nil {
		return err
	}
	n, head, err := countEvents(ctx, db)
	if err != nil {
		return err
	}
	if n != m.Events || head != m.Head {
		return fmt.Errorf("restore: the log holds %d events up to position %d, the backup recorded %d up to %d", n, head, m.Events, m.Head)
	}
	if err := auditVerify(ctx, []string{"--data", staging}, stdout, stderr); err != nil {
		return fmt.Errorf("restore: the backup's log does not verify: %w", err)
	}
	// Into place: what is beside the database first, the database (and
	// whatever SQLite left beside it) last.
	entries, err := os.ReadDir(staging)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	last := func(name string) bool { return strings.HasPrefix(name, "annals.db") }
	for _, pass := range []bool{false, true} {
		for _, e := range entries {
			if last(e.Name()) != pass {
				continue
			}
			if err := os.Rename(filepath.Join(staging, e.Name()), filepath.Join(c.Data, e.Name())); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
		}
		if err := syncDir(c.Data); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	fmt.Fprintf(stdout, "restored the backup of %s taken %s into %s: %d events up to position %d; serve it with annals serve --data %s\n",
		m.From, m.Taken.Format("2006-01-02T15:04:05Z"), c.Data, m.Events, m.Head, c.Data)
	return nil
}

// readManifest reads SRC/backup.json.
func readManifest(src string) (manifest, error) {
	var m manifest
	b, err := os.ReadFile(filepath.Join(src, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("%w: %s has no %s: not a finished annals backup", errUsage, src, manifestName)
	}
	if err != nil {
		return m, fmt.Errorf("restore: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("restore: %s: %w", manifestName, err)
	}
	if m.Format != manifestFormat {
		return m, fmt.Errorf("restore: %s is format %d; this annals reads format %d", manifestName, m.Format, manifestFormat)
	}
	if m.SHA256["annals.db"] == "" {
		return m, fmt.Errorf("restore: %s lists no annals.db", manifestName)
	}
	for rel := range m.SHA256 {
		// The manifest names files inside the backup, never elsewhere.
		if !filepath.IsLocal(filepath.FromSlash(rel)) {
			return m, fmt.Errorf("restore: %s names %q, outside the backup", manifestName, rel)
		}
	}
	return m, nil
}

// integrityCheck runs SQLite's integrity_check on the file at path.
func integrityCheck(ctx context.Context, path string) error {
	db, err := sqlite.OpenDB(path)
	if err != nil {
		return fmt.Errorf("restore: the backup's database does not open: %w", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("restore: the backup's database is damaged (integrity_check: %w)", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("restore: the backup's database is damaged (integrity_check: %w)", err)
		}
		problems = append(problems, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("restore: the backup's database is damaged (integrity_check: %w)", err)
	}
	if len(problems) != 1 || problems[0] != "ok" {
		if len(problems) > 5 {
			problems = append(problems[:5], "…")
		}
		return fmt.Errorf("restore: the backup's database is damaged (integrity_check: %s)", strings.Join(problems, "; "))
	}
	return nil
}
