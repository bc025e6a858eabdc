package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/eventstore/sqlite"
)

// What a backup holds beside the database: the files a restored store
// needs to serve as the original did. The server's secret keys the
// made-up SCRAM salts and whatever else it signs; the self-signed pair is
// what clients pinned; the demo password is what `make run` printed;
// uploads are files that the read models point at. annals.lock is not
// copied: it is the running process's.
var backupFiles = []string{"fake-salt.key", c2s.CertFile, c2s.KeyFile, "demo-password"}

const (
	uploadsDir     = "uploads"
	manifestName   = "backup.json"
	manifestFormat = 1
)

// manifest is backup.json, written last: a directory without one is not
// a finished backup. Restore checks every file against its sum, the log
// against the head recorded here, then the log's own chains.
type manifest struct {
	Format  int               `json:"format"`
	Taken   time.Time         `json:"taken"`
	From    string            `json:"from"`
	Events  int64             `json:"events"`
	Head    int64             `json:"head"` // the log's last position
	SHA256  map[string]string `json:"sha256"`
	Comment string            `json:"comment,omitempty"`
}

// clusterBackup is the answer to a backup or restore with --store: the log
// is not on this machine.
const clusterBackup = `a cluster's log is kept by its servers, and backing it up is their business: on NATS, snapshot the log's stream (default ANNALS) and the bucket beside it (KV_ANNALS_BESIDE: the credentials and the server's keys), e.g. "nats stream backup ANNALS DIR" and "nats stream backup KV_ANNALS_BESIDE DIR", restored with "nats stream restore"; on KurrentDB, its own backups plus the NATS bucket of --bus. A node's --data holds read models only: "annals rebuild" remakes them from the log`

const backupUsage = `Usage:
  annals backup DEST [--data DIR]
  annals restore SRC --data DIR
`

// backupCmd copies the embedded store, online, into a new directory.
//
// The database is copied with VACUUM INTO rather than SQLite's online
// backup API: VACUUM INTO reads the whole file in one read transaction, so
// the copy is the database as of one commit, while serve's writer goes on
// appending beside it (WAL readers do not block the writer). The backup
// API copies pages in steps and restarts whenever another connection
// writes between two steps: against a busy server it may never finish,
// or it holds its read transaction just as long if run in one step. VACUUM
// INTO also writes a compact file without the WAL. It does not fsync what
// it wrote, which this command does.
func backupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var c Config
	fset := newFlagSet("backup", stderr)
	c.flags(fset, false)
	dest, err := parseAround(fset, args)
	if err != nil {
		return err
	}
	if dest == "" {
		fmt.Fprint(stderr, backupUsage)
		return fmt.Errorf("%w: backup needs a destination directory", errUsage)
	}
	if u, err := parseStore(c.Store); err != nil {
		return err
	} else if u != nil {
		return fmt.Errorf("%w: annals backup copies the embedded store only; %s", errUsage, clusterBackup)
	}
	if _, err := os.Stat(c.DBPath()); err != nil {
		return fmt.Errorf("%w: no event store at %s (give --data or $ANNALS_DATA)", errUsage, c.DBPath())
	}
	if err := makeDest(dest); err != nil {
		return err
	}
	// A failed backup leaves nothing that could pass for one.
	defer func() {
		if err != nil {
			os.RemoveAll(dest)
		}
	}()
	from, _ := filepath.Abs(c.Data)
	m := manifest{Format: manifestFormat, Taken: time.Now().UTC(), From: from, SHA256: map[string]string{},
		Comment: "annals restore DIR --data NEWDIR; accounts deleted or erased after this backup are still whole in it"}
	db := filepath.Join(dest, "annals.db")
	if err := snapshot(ctx, c.DBPath(), db); err != nil {
		return err
	}
	if m.Events, m.Head, err = countEvents(ctx, db); err != nil {
		return err
	}
	if m.SHA256["annals.db"], err = fileSum(db); err != nil {
		return err
	}
	for _, name := range backupFiles {
		sum, err := copyOut(filepath.Join(c.Data, name), filepath.Join(dest, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // not made yet, or kept elsewhere (--tls-cert)
		}
		if err != nil {
			return err
		}
		m.SHA256[name] = sum
	}
	// Uploads after the database: a file uploaded meanwhile is copied
	// without a slot pointing at it, which is harmless; one expired
	// meanwhile is missing, as it would be on the server.
	if err := copyTree(filepath.Join(c.Data, uploadsDir), dest, uploadsDir, m.SHA256); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := writeSynced(filepath.Join(dest, manifestName), append(b, '\n')); err != nil {
		return err
	}
	if err := syncDir(dest); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup of %s in %s: %d events up to position %d, %d files\n", c.DBPath(), dest, m.Events, m.Head, len(m.SHA256))
	return nil
}

// makeDest creates dest, owner-only; an existing empty directory will do
// (one made for it), anything else is refused rather than overwritten.
func makeDest(dest string) error {
	err := os.Mkdir(dest, 0o700)
	if errors.Is(err, fs.ErrExist) {
		entries, rerr := os.ReadDir(dest)
		if rerr != nil || len(entries) > 0 {
			return fmt.Errorf("%w: %s exists and is not an empty directory: give a new one", errUsage, dest)
		}
		err = os.Chmod(dest, 0o700)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// snapshot writes the database at src, as of one commit, to dst.
func snapshot(ctx context.Context, src, dst string) error {
	// Made first, empty and owner-only (VACUUM INTO takes an empty file):
	// it holds credentials.
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f.Close()
	db, err := sqlite.OpenDB(src)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("backup: VACUUM INTO: %w", err)
	}
	return syncFile(dst)
}

// countEvents reads the number of events and the last position of the
// database file at path.
func countEvents(ctx context.Context, path string) (n, head int64, err error) {
	db, err := sqlite.OpenDB(path)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	err = db.QueryRowContext(ctx, `SELECT count(*), coalesce(max(position), 0) FROM events`).Scan(&n, &head)
	if err != nil {
		return 0, 0, fmt.Errorf("events in %s: %w", path, err)
	}
	return n, head, nil
}

// copyTree copies the directory src (if there is one) to dest/rel, files
// owner-only, recording their sums under their paths relative to dest.
func copyTree(src, dest, rel string, sums map[string]string) error {
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, path)
		to := filepath.Join(dest, rel, r)
		switch {
		case d.IsDir():
			return os.Mkdir(to, 0o700)
		case !d.Type().IsRegular():
			return nil // nothing but files is made there
		}
		sum, err := copyOut(path, to)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since listed
		}
		sums[filepath.ToSlash(filepath.Join(rel, r))] = sum
		return err
	})
	if errors.Is(err, fs.ErrNotExist) && err.(*fs.PathError).Path == src {
		return nil
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// copyOut copies src to a new file dst (mode 0600), synced, and returns
// the SHA-256 of what it wrote.
func copyOut(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err = io.Copy(io.MultiWriter(out, h), in); err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes the names in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	return err
}

// sortedKeys lists a manifest's files in a stable order.
func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
