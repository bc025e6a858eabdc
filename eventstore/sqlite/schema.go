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
	// 1: the log, the stream heads and the stream marks.
	//
	// There is deliberately no index on (stream, version): under load every
	// commit holds events of many streams, and such an index dirties one
	// page per stream per commit, which halved append throughput. Instead
	// each event points at its stream's previous event (prev), the streams
	// table holds each head, and stream_marks holds every MarkEvery-th
	// version, so ReadStream walks at most max+MarkEvery links.
	//
	// store_meta's heads_position says up to which position the streams
	// table is complete: a lazy writer (Options.LazyHeads) writes heads
	// every few batches, and readers find a stream's newer events by
	// scanning the few events after heads_position.
	`CREATE TABLE events (
		position    INTEGER PRIMARY KEY,
		id          BLOB    NOT NULL UNIQUE,
		stream      TEXT    NOT NULL,
		version     INTEGER NOT NULL,
		prev        INTEGER NOT NULL, -- position of version-1 in the stream; 0 for version 1
		type        TEXT    NOT NULL,
		schema      INTEGER NOT NULL,
		occurred_at INTEGER NOT NULL, -- Unix nanoseconds, UTC
		cause       TEXT    NOT NULL,
		data        BLOB    NOT NULL,
		hash        BLOB    NOT NULL, -- the stream's chain: event.Chain
		log_hash    BLOB    NOT NULL  -- the whole log's chain: logChain(previous row's log_hash, position, hash)
	);
	CREATE TABLE streams (
		stream   TEXT PRIMARY KEY,
		version  INTEGER NOT NULL,
		hash     BLOB    NOT NULL,
		position INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE store_meta (
		key   TEXT PRIMARY KEY,
		value INTEGER NOT NULL
	) WITHOUT ROWID;
	INSERT INTO store_meta (key, value) VALUES ('heads_position', 0);
	CREATE TABLE stream_marks (
		stream   TEXT    NOT NULL,
		version  INTEGER NOT NULL,
		position INTEGER NOT NULL,
		PRIMARY KEY (stream, version)
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
