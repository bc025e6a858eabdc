package sealing

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind is what a key seals, which decides when it is destroyed.
type Kind string

const (
	// Message content (1:1 and room messages): one key per author per UTC
	// day, destroyed by erasure or when --archive-expiry passes the day.
	Message Kind = "m"
	// State content (PEP items, vCards): one key per account, destroyed
	// only by erasure.
	State Kind = "s"
)

// Key is one data key.
type Key struct {
	ID     string
	Owner  string // bare JID whose content it seals
	Kind   Kind
	Period int64 // Message: the Unix day; State: 0
	Secret []byte
}

// Ends returns when a Message key's day ends (zero for a State key).
func (k Key) Ends() time.Time {
	if k.Kind != Message {
		return time.Time{}
	}
	return time.Unix((k.Period+1)*86400, 0).UTC()
}

// Day returns the period of a Message key sealing content of time t.
func Day(t time.Time) int64 {
	u := t.Unix()
	if u < 0 {
		return (u+1)/86400 - 1
	}
	return u / 86400
}

// Keys is where data keys are kept, beside the log.
type Keys interface {
	// Find returns owner's newest key of kind for period; ok is false
	// when there is none.
	Find(ctx context.Context, owner string, kind Kind, period int64) (k Key, ok bool, err error)
	// Create makes and keeps a new key.
	Create(ctx context.Context, owner string, kind Kind, period int64) (Key, error)
	// Get returns the key id; ok is false when it is gone or never was.
	Get(ctx context.Context, id string) (k Key, ok bool, err error)
	// Owned returns the IDs of owner's keys, at most max (0: no bound).
	Owned(ctx context.Context, owner string, max int) ([]string, error)
	// Ended returns the IDs of Message keys whose day ended at or before
	// t, at most max.
	Ended(ctx context.Context, t time.Time, max int) ([]string, error)
	// Destroy deletes the keys named; an ID already gone is no error.
	Destroy(ctx context.Context, ids []string) error
}

// newKeyID returns a random key ID: 12 bytes in hex.
func newKeyID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// wrapper wraps data keys under the key-encryption key, wherever they
// are kept (SQLKeys, KVKeys): what keeps them alone does not open them.
type wrapper struct {
	kek cipher.AEAD
}

// newWrapper takes kek, 32 bytes (keys.Derive(secret, keys.ContentKeys)).
func newWrapper(kek []byte) (wrapper, error) {
	a, err := newAEAD(kek)
	if err != nil {
		return wrapper{}, fmt.Errorf("sealing: key-encryption key: %w", err)
	}
	return wrapper{a}, nil
}

// make returns a new key of owner and the key as kept: wrapped, bound to
// its ID and owner.
func (w wrapper) make(owner string, kind Kind, period int64) (Key, []byte) {
	k := Key{ID: newKeyID(), Owner: owner, Kind: kind, Period: period, Secret: make([]byte, 32)}
	rand.Read(k.Secret)
	nonce := make([]byte, w.kek.NonceSize())
	rand.Read(nonce)
	return k, w.kek.Seal(nonce, nonce, k.Secret, wrapAD(k.ID, owner))
}

// SQLKeys keeps keys in a table of the event store's database, wrapped
// under a key-encryption key.
type SQLKeys struct {
	wrapper
	db  *sql.DB
	now func() time.Time
}

// OpenSQLKeys creates the table in db if needed. kek is 32 bytes
// (keys.Derive(secret, keys.ContentKeys)).
func OpenSQLKeys(ctx context.Context, db *sql.DB, kek []byte) (*SQLKeys, error) {
	w, err := newWrapper(kek)
	if err != nil {
		return nil, err
	}
	_, err = db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS content_keys (
		id      TEXT PRIMARY KEY,  -- named in each sealed field
		owner   TEXT NOT NULL,     -- bare JID whose content it seals
		kind    TEXT NOT NULL,     -- m: messages of one UTC day; s: state
		period  INTEGER NOT NULL,  -- m: the Unix day; s: 0
		wrapped BLOB NOT NULL,     -- nonce and AES-GCM of the key under the key-encryption key
		created INTEGER NOT NULL   -- Unix nanoseconds
	) WITHOUT ROWID;
	CREATE INDEX IF NOT EXISTS content_keys_owner ON content_keys (owner, kind, period);
	CREATE INDEX IF NOT EXISTS content_keys_period ON content_keys (kind, period);`)
	if err != nil {
		return nil, fmt.Errorf("sealing: create table: %w", err)
	}
	return &SQLKeys{wrapper: w, db: db, now: time.Now}, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("sealing: a key is %d bytes, not 32", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// wrapAD binds a wrapped key to its ID and owner: a row's key cannot be
// passed off as another's.
func wrapAD(id, owner string) []byte { return []byte(id + "\x00" + owner) }

func (w wrapper) unwrap(id, owner string, wrapped []byte) ([]byte, error) {
	n := w.kek.NonceSize()
	if len(wrapped) < n {
		return nil, fmt.Errorf("sealing: key %s is damaged", id)
	}
	k, err := w.kek.Open(nil, wrapped[:n], wrapped[n:], wrapAD(id, owner))
	if err != nil {
		return nil, fmt.Errorf("sealing: key %s does not open under this server's secret: %w", id, err)
	}
	return k, nil
}

// Find implements Keys.
func (s *SQLKeys) Find(ctx context.Context, owner string, kind Kind, period int64) (Key, bool, error) {
	var (
		k       = Key{Owner: owner, Kind: kind, Period: period}
		wrapped []byte
	)
	err := s.db.QueryRowContext(ctx, `SELECT id, wrapped FROM content_keys
		WHERE owner = ? AND kind = ? AND period = ? ORDER BY created DESC LIMIT 1`,
		owner, string(kind), period).Scan(&k.ID, &wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, false, nil
	}
	if err != nil {
		return Key{}, false, fmt.Errorf("sealing: find a key of %s: %w", owner, err)
	}
	if k.Secret, err = s.unwrap(k.ID, owner, wrapped); err != nil {
		return Key{}, false, err
	}
	return k, true, nil
}

// Create implements Keys.
func (s *SQLKeys) Create(ctx context.Context, owner string, kind Kind, period int64) (Key, error) {
	k, wrapped := s.make(owner, kind, period)
	_, err := s.db.ExecContext(ctx, `INSERT INTO content_keys (id, owner, kind, period, wrapped, created)
		VALUES (?, ?, ?, ?, ?, ?)`, k.ID, owner, string(kind), period, wrapped, s.now().UnixNano())
	if err != nil {
		return Key{}, fmt.Errorf("sealing: keep a new key of %s: %w", owner, err)
	}
	return k, nil
}

// Get implements Keys.
func (s *SQLKeys) Get(ctx context.Context, id string) (Key, bool, error) {
	var (
		k       = Key{ID: id}
		kind    string
		wrapped []byte
	)
	err := s.db.QueryRowContext(ctx, `SELECT owner, kind, period, wrapped FROM content_keys WHERE id = ?`, id).
		Scan(&k.Owner, &kind, &k.Period, &wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, false, nil
	}
	if err != nil {
		return Key{}, false, fmt.Errorf("sealing: read key %s: %w", id, err)
	}
	k.Kind = Kind(kind)
	if k.Secret, err = s.unwrap(id, k.Owner, wrapped); err != nil {
		return Key{}, false, err
	}
	return k, true, nil
}

func (s *SQLKeys) ids(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func limit(max int) int {
	if max <= 0 {
		return -1 // SQLite: no limit
	}
	return max
}

// Owned implements Keys.
func (s *SQLKeys) Owned(ctx context.Context, owner string, max int) ([]string, error) {
	ids, err := s.ids(ctx, `SELECT id FROM content_keys WHERE owner = ? ORDER BY created LIMIT ?`, owner, limit(max))
	if err != nil {
		return nil, fmt.Errorf("sealing: keys of %s: %w", owner, err)
	}
	return ids, nil
}

// Ended implements Keys.
func (s *SQLKeys) Ended(ctx context.Context, t time.Time, max int) ([]string, error) {
	// Day d ends at (d+1)*86400 seconds, by t when d < Day(t).
	last := Day(t) - 1
	ids, err := s.ids(ctx, `SELECT id FROM content_keys WHERE kind = 'm' AND period <= ? ORDER BY period LIMIT ?`, last, limit(max))
	if err != nil {
		return nil, fmt.Errorf("sealing: keys ended by %v: %w", t, err)
	}
	return ids, nil
}

// Destroy implements Keys.
func (s *SQLKeys) Destroy(ctx context.Context, ids []string) error {
	const chunk = 500
	for len(ids) > 0 {
		n := min(len(ids), chunk)
		q := `DELETE FROM content_keys WHERE id IN (?` + strings.Repeat(",?", n-1) + `)`
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("sealing: destroy keys: %w", err)
		}
		ids = ids[n:]
	}
	return nil
}
