package accounts

import (
	"context"
	"database/sql"
	"fmt"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
)

// Name is stored with the checkpoint; change it and the read model is
// rebuilt from the start of the log.
const Name = "accounts/v1"

// Projection is the accounts read model.
type Projection struct{}

func (Projection) Name() string     { return Name }
func (Projection) Tables() []string { return []string{"accounts"} }
func (Projection) Schema() string {
	return `CREATE TABLE IF NOT EXISTS accounts (
		jid                 TEXT PRIMARY KEY,
		created_at          INTEGER NOT NULL, -- Unix nanoseconds of AccountCreated
		password_changed_at INTEGER,          -- of the last AccountPasswordChanged
		version             INTEGER NOT NULL  -- last lifecycle event's version in the account's stream
	)`
}

// Apply implements projections.Projection.
func (Projection) Apply(ctx context.Context, tx *sql.Tx, e event.Envelope) error {
	var err error
	switch e.Type {
	case account.TypeCreated:
		var d account.Created
		if err = e.Decode(account.Schema, &d); err != nil {
			return err
		}
		if want := account.StreamOf(d.JID); want != e.Stream {
			return fmt.Errorf("accounts: AccountCreated for %s in stream %s", d.JID, e.Stream)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO accounts (jid, created_at, version) VALUES (?, ?, ?)`,
			d.JID, e.OccurredAt.UnixNano(), e.Version)
	case account.TypePasswordChanged:
		var d account.PasswordChanged
		if err = e.Decode(account.Schema, &d); err != nil {
			return err
		}
		err = updateOne(ctx, tx, e, `UPDATE accounts SET password_changed_at = ?, version = ? WHERE jid = ?`,
			e.OccurredAt.UnixNano(), e.Version, account.JIDOf(e.Stream))
	case account.TypeDeleted:
		var d account.Deleted
		if err = e.Decode(account.Schema, &d); err != nil {
			return err
		}
		err = updateOne(ctx, tx, e, `DELETE FROM accounts WHERE jid = ?`, account.JIDOf(e.Stream))
	}
	return err
}

// updateOne runs a statement that must touch exactly one account: an event
// about an account the read model does not have means the log and the
// model disagree, which must stop the projection rather than pass silently.
func updateOne(ctx context.Context, tx *sql.Tx, e event.Envelope, q string, args ...any) error {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return fmt.Errorf("accounts: %s for %s, which has no account", e.Type, e.Stream)
	}
	return nil
}

// Account is one row of the read model.
type Account struct {
	JID               string
	CreatedAt         int64
	PasswordChangedAt int64 // 0 if never changed
}

// List returns every account, ordered by JID.
func List(ctx context.Context, db *sql.DB) ([]Account, error) {
	rows, err := db.QueryContext(ctx, `SELECT jid, created_at, COALESCE(password_changed_at, 0) FROM accounts ORDER BY jid`)
	if err != nil {
		return nil, fmt.Errorf("accounts: list: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		var a Account
		if err := rows.Scan(&a.JID, &a.CreatedAt, &a.PasswordChangedAt); err != nil {
			return nil, fmt.Errorf("accounts: list: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Reads implements projections.Selective: account lifecycle events only.
func (Projection) Reads(e event.Envelope) bool {
	return e.Type == account.TypeCreated || e.Type == account.TypePasswordChanged || e.Type == account.TypeDeleted
}
