package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/projections"
)

// UsageName is the usage read model's name and version.
const UsageName = "usage/v1"

// UsageProjection keeps what each account was charged for storage: the
// bytes of the 1:1 messages it sent (the log's copy, once, whoever
// archives it), for the storage quota. It runs beside the log, not in the
// writer's transactions, and sums a batch per account before it writes:
// one statement per sender per batch instead of one per message, which
// cost the 1:1 message path a tenth of its throughput when it was kept
// inline. A quota read from it may lag the log by a moment.
type UsageProjection struct{}

func (UsageProjection) Name() string     { return UsageName }
func (UsageProjection) Tables() []string { return []string{"archive_usage"} }
func (UsageProjection) Schema() string {
	return `CREATE TABLE IF NOT EXISTS archive_usage (
		account    TEXT PRIMARY KEY,
		sent_bytes INTEGER NOT NULL
	) WITHOUT ROWID;`
}

// Apply implements projections.Projection for one event.
func (p UsageProjection) Apply(ctx context.Context, tx *sql.Tx, e event.Envelope) error {
	return p.ApplyBatch(ctx, tx, []event.Envelope{e})
}

// ApplyBatch implements projections.Batcher.
func (p UsageProjection) ApplyBatch(ctx context.Context, tx *sql.Tx, evs []event.Envelope) error {
	sent := map[string]int64{}
	var deleted []string // in log order; an account's later messages count again
	for _, e := range evs {
		switch e.Type {
		case archive.TypeMessageSent:
			var d archive.MessageSent
			if err := e.Decode(archive.Schema, &d); err != nil {
				return &projections.ApplyError{Projection: UsageName, Event: e, Err: err}
			}
			// An erased message counts as it did: the log still holds it.
			sent[bare(d.From)] += int64(len(d.Stanza) + d.ErasedBytes)
		case account.TypeDeleted:
			acct := account.JIDOf(e.Stream)
			delete(sent, acct)
			deleted = append(deleted, acct)
		}
	}
	for _, acct := range deleted {
		if _, err := tx.ExecContext(ctx, `DELETE FROM archive_usage WHERE account = ?`, acct); err != nil {
			return fmt.Errorf("archive: usage of %s: %w", acct, err)
		}
	}
	for acct, n := range sent {
		if _, err := tx.ExecContext(ctx, `INSERT INTO archive_usage (account, sent_bytes) VALUES (?1, ?2)
			ON CONFLICT (account) DO UPDATE SET sent_bytes = sent_bytes + ?2`, acct, n); err != nil {
			return fmt.Errorf("archive: usage of %s: %w", acct, err)
		}
	}
	return nil
}

// SentBytes returns what acct was charged: the bytes of the 1:1 messages
// it sent, as far as the usage read model has followed the log.
func (r *Reader) SentBytes(ctx context.Context, acct string) (int64, error) {
	var n int64
	err := r.db.QueryRowContext(ctx, `SELECT sent_bytes FROM archive_usage WHERE account = ?`, acct).Scan(&n)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("archive: usage of %s: %w", acct, err)
	}
	return n, nil
}

// Offlines counts the messages waiting for acct's next session: a count
// over a partial index, bounded by the offline quota.
func (r *Reader) Offlines(ctx context.Context, acct string) (int64, error) {
	var n int64
	if err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM archive WHERE account = ? AND offline = 1`, acct).Scan(&n); err != nil {
		return 0, fmt.Errorf("archive: offline messages of %s: %w", acct, err)
	}
	return n, nil
}

// Reads implements projections.Selective.
func (UsageProjection) Reads(e event.Envelope) bool {
	return e.Type == archive.TypeMessageSent || e.Type == account.TypeDeleted
}
