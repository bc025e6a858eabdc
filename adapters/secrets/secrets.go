package secrets

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
)

// Store keeps the passwords of PEP items in a SQL table of their own, in
// the event store's database file (mode 0600), in the clear: the server
// must give them back to the account's clients.
type Store struct{ db *sql.DB }

// Open creates the table in db if needed.
func Open(ctx context.Context, db *sql.DB) (*Store, error) {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS pep_passwords (
		account   TEXT NOT NULL, -- bare JID
		node      TEXT NOT NULL,
		item      TEXT NOT NULL,
		passwords TEXT NOT NULL, -- JSON array, one per password element of the item, in order
		PRIMARY KEY (account, node, item)
	) WITHOUT ROWID`)
	if err != nil {
		return nil, fmt.Errorf("secrets: create table: %w", err)
	}
	return &Store{db: db}, nil
}

// Put keeps the passwords of an item, replacing what it had; with no
// password among them it removes the item's row.
func (s *Store) Put(ctx context.Context, acct, node, item string, passwords []string) error {
	if !slices.ContainsFunc(passwords, func(p string) bool { return p != "" }) {
		return s.Delete(ctx, acct, node, item)
	}
	b, err := json.Marshal(passwords)
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO pep_passwords (account, node, item, passwords) VALUES (?, ?, ?, ?)
		ON CONFLICT (account, node, item) DO UPDATE SET passwords = excluded.passwords`, acct, node, item, string(b))
	if err != nil {
		return fmt.Errorf("secrets: keep the passwords of %s %s %s: %w", acct, node, item, err)
	}
	return nil
}

// Node returns the passwords kept for the items of one node, by item ID.
func (s *Store) Node(ctx context.Context, acct, node string) (map[string][]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT item, passwords FROM pep_passwords WHERE account = ? AND node = ?`, acct, node)
	if err != nil {
		return nil, fmt.Errorf("secrets: read %s %s: %w", acct, node, err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var item, raw string
		if err := rows.Scan(&item, &raw); err != nil {
			return nil, fmt.Errorf("secrets: read %s %s: %w", acct, node, err)
		}
		var pws []string
		if err := json.Unmarshal([]byte(raw), &pws); err != nil {
			return nil, fmt.Errorf("secrets: read %s %s %s: %w", acct, node, item, err)
		}
		out[item] = pws
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("secrets: read %s %s: %w", acct, node, err)
	}
	return out, nil
}

// Delete removes the passwords of one item; removing none is no error.
func (s *Store) Delete(ctx context.Context, acct, node, item string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM pep_passwords WHERE account = ? AND node = ? AND item = ?`, acct, node, item); err != nil {
		return fmt.Errorf("secrets: delete %s %s %s: %w", acct, node, item, err)
	}
	return nil
}

// DeleteAccount removes every password kept for the account (bare JID):
// for when the account is deleted.
func (s *Store) DeleteAccount(ctx context.Context, acct string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM pep_passwords WHERE account = ?`, acct); err != nil {
		return fmt.Errorf("secrets: delete the passwords of %s: %w", acct, err)
	}
	return nil
}
