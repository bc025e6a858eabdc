package secrets

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"

	"annals.im/annals/adapters/beside"
)

// Store keeps the passwords of PEP items in a SQL table of their own, in
// the event store's database file (mode 0600), in the clear: the server
// must give them back to the account's clients. For a cluster of nodes
// they are in a replicated key-value store instead (OnKV): one value per
// account, under "pep-passwords/" and its bare JID, holding every node's
// items, changed by compare-and-set.
type Store struct {
	db *sql.DB
	kv beside.KV // instead of db
}

// OnKV keeps the passwords in kv.
func OnKV(kv beside.KV) *Store { return &Store{kv: kv} }

// kept is an account's value in the key-value store: node -> item ->
// passwords.
type kept map[string]map[string][]string

func kvKey(acct string) string { return "pep-passwords/" + acct }

// updateKV changes acct's value with f, which may change the map it is
// given; an empty map removes the value.
func (s *Store) updateKV(ctx context.Context, acct string, f func(kept)) error {
	return beside.Update(ctx, s.kv, kvKey(acct), func(old []byte) ([]byte, error) {
		k := kept{}
		if old != nil {
			if err := json.Unmarshal(old, &k); err != nil {
				return nil, err
			}
		}
		f(k)
		if len(k) == 0 {
			return nil, nil
		}
		return json.Marshal(k)
	})
}

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
	if s.kv != nil {
		err := s.updateKV(ctx, acct, func(k kept) {
			if k[node] == nil {
				k[node] = map[string][]string{}
			}
			k[node][item] = passwords
		})
		if err != nil {
			return fmt.Errorf("secrets: keep the passwords of %s %s %s: %w", acct, node, item, err)
		}
		return nil
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
	if s.kv != nil {
		b, _, err := s.kv.Get(ctx, kvKey(acct))
		k := kept{}
		if err == nil && b != nil {
			err = json.Unmarshal(b, &k)
		}
		if err != nil {
			return nil, fmt.Errorf("secrets: read %s %s: %w", acct, node, err)
		}
		if k[node] == nil {
			return map[string][]string{}, nil
		}
		return k[node], nil
	}
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
	if s.kv != nil {
		err := s.updateKV(ctx, acct, func(k kept) {
			delete(k[node], item)
			if len(k[node]) == 0 {
				delete(k, node)
			}
		})
		if err != nil {
			return fmt.Errorf("secrets: delete %s %s %s: %w", acct, node, item, err)
		}
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM pep_passwords WHERE account = ? AND node = ? AND item = ?`, acct, node, item); err != nil {
		return fmt.Errorf("secrets: delete %s %s %s: %w", acct, node, item, err)
	}
	return nil
}

// DeleteAccount removes every password kept for the account (bare JID):
// for when the account is deleted.
func (s *Store) DeleteAccount(ctx context.Context, acct string) error {
	if s.kv != nil {
		if err := s.kv.Delete(ctx, kvKey(acct)); err != nil {
			return fmt.Errorf("secrets: delete the passwords of %s: %w", acct, err)
		}
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM pep_passwords WHERE account = ?`, acct); err != nil {
		return fmt.Errorf("secrets: delete the passwords of %s: %w", acct, err)
	}
	return nil
}
