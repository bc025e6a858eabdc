package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are applied in order, each once, on Open. Never edit one that
// has shipped: append a new one.
var migrations = []string{
	// 1: the log and the stream heads.
	`CREATE TABLE events (
		position    INTEGER PRIMARY KEY,
		id          BLOB    NOT NULL UNIQUE,
		stream      TEXT    NOT NULL,
		version     INTEGER NOT NULL,
		type        TEXT    NOT NULL,
		schema      INTEGER NOT NULL,
		occurred_at INTEGER NOT NULL, -- Unix nanoseconds, UTC
		cause       TEXT    NOT NULL,
		data        BLOB    NOT NULL,
		hash        BLOB    NOT NULL, -- the stream's chain: event.Chain
		log_hash    BLOB    NOT NULL, -- the whole log's chain: logChain(previous row's log_hash, position, hash)
		UNIQUE (stream, version)
	);
	CREATE TABLE streams (
		stream   TEXT PRIMARY KEY,
		version  INTEGER NOT NULL,
		hash     BLOB    NOT NULL,
		position INTEGER NOT NULL
	) WITHOUT ROWID;`,
}

func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: create schema_migrations: %w", err)
	}
	var have int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("sqlite: read schema version: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("sqlite: database schema version %d is newer than this build knows (%d); use a newer annals", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			v, time.Now().UTC().Format(time.RFC3339)); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
	}
	return nil
}
