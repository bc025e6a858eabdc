package credentials

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"hash"
	"unicode/utf8"
)

// Errors of this package.
var (
	ErrNotFound = errors.New("credentials: no credentials for this account")
	ErrPassword = errors.New("credentials: unusable password")
)

// Iterations is the PBKDF2 iteration count for new credentials: RFC 7677
// asks for at least 4096.
const Iterations = 4096

// MaxPassword bounds a password's length in bytes.
const MaxPassword = 1024

// Keys are SCRAM's stored secrets for one hash function.
type Keys struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte // H(HMAC(SaltedPassword, "Client Key"))
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")
}

// Credentials are an account's secrets for every mechanism served.
type Credentials struct {
	SHA1, SHA256 Keys
}

// Mechanisms lists the SASL mechanisms these credentials serve.
func (Credentials) Mechanisms() []string {
	return []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}
}

// CheckPassword validates a password chosen by a person or a client.
//
// NOTSPEC(RFC 5802 §2.2): the password is not SASLprep-normalized; it is
// used as the UTF-8 bytes given, which is what the common client libraries
// send for the ASCII and NFC passwords people type.
func CheckPassword(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: empty", ErrPassword)
	case len(p) > MaxPassword:
		return fmt.Errorf("%w: longer than %d bytes", ErrPassword, MaxPassword)
	case !utf8.ValidString(p):
		return fmt.Errorf("%w: not UTF-8", ErrPassword)
	}
	return nil
}

// Derive computes new credentials for password with fresh random salts.
func Derive(password string) (Credentials, error) {
	if err := CheckPassword(password); err != nil {
		return Credentials{}, err
	}
	var c Credentials
	var err error
	if c.SHA1, err = derive(sha1.New, password, Iterations); err != nil {
		return c, err
	}
	c.SHA256, err = derive(sha256.New, password, Iterations)
	return c, err
}

// DeriveSalted computes credentials for password with the given salts and
// iteration count: for keys moved from another server that used them, and
// for checking against published test vectors.
func DeriveSalted(password string, sha1Salt, sha256Salt []byte, iterations int) (Credentials, error) {
	if err := CheckPassword(password); err != nil {
		return Credentials{}, err
	}
	var c Credentials
	var err error
	if c.SHA1, err = keysFrom(sha1.New, password, sha1Salt, iterations); err != nil {
		return c, err
	}
	c.SHA256, err = keysFrom(sha256.New, password, sha256Salt, iterations)
	return c, err
}

func derive(h func() hash.Hash, password string, iter int) (Keys, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return Keys{}, fmt.Errorf("credentials: salt: %w", err)
	}
	return keysFrom(h, password, salt, iter)
}

func keysFrom(h func() hash.Hash, password string, salt []byte, iter int) (Keys, error) {
	salted, err := pbkdf2.Key(h, password, salt, iter, h().Size())
	if err != nil {
		return Keys{}, fmt.Errorf("credentials: derive: %w", err)
	}
	clientKey := mac(h, salted, "Client Key")
	stored := h()
	stored.Write(clientKey)
	return Keys{Salt: salt, Iterations: iter, StoredKey: stored.Sum(nil), ServerKey: mac(h, salted, "Server Key")}, nil
}

func mac(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// Verify reports whether password matches c (for PLAIN), by deriving the
// SCRAM-SHA-256 stored key again and comparing in constant time.
func (c Credentials) Verify(password string) bool {
	if CheckPassword(password) != nil {
		return false
	}
	k, err := keysFrom(sha256.New, password, c.SHA256.Salt, c.SHA256.Iterations)
	return err == nil && subtle.ConstantTimeCompare(k.StoredKey, c.SHA256.StoredKey) == 1
}

// Store keeps credentials in a SQL table of their own.
type Store struct{ db *sql.DB }

// Open creates the credentials table in db if needed.
func Open(ctx context.Context, db *sql.DB) (*Store, error) {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS credentials (
		jid           TEXT PRIMARY KEY,
		sha1_salt     BLOB NOT NULL, sha1_iter   INTEGER NOT NULL, sha1_stored   BLOB NOT NULL, sha1_server   BLOB NOT NULL,
		sha256_salt   BLOB NOT NULL, sha256_iter INTEGER NOT NULL, sha256_stored BLOB NOT NULL, sha256_server BLOB NOT NULL
	) WITHOUT ROWID`)
	if err != nil {
		return nil, fmt.Errorf("credentials: create table: %w", err)
	}
	return &Store{db: db}, nil
}

// Put stores c as the credentials of the account with bare JID jid.
func (s *Store) Put(ctx context.Context, jid string, c Credentials) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (jid) DO UPDATE SET
			sha1_salt = excluded.sha1_salt, sha1_iter = excluded.sha1_iter,
			sha1_stored = excluded.sha1_stored, sha1_server = excluded.sha1_server,
			sha256_salt = excluded.sha256_salt, sha256_iter = excluded.sha256_iter,
			sha256_stored = excluded.sha256_stored, sha256_server = excluded.sha256_server`,
		jid, c.SHA1.Salt, c.SHA1.Iterations, c.SHA1.StoredKey, c.SHA1.ServerKey,
		c.SHA256.Salt, c.SHA256.Iterations, c.SHA256.StoredKey, c.SHA256.ServerKey)
	if err != nil {
		return fmt.Errorf("credentials: store %s: %w", jid, err)
	}
	return nil
}

// Get returns the credentials of jid, or ErrNotFound.
func (s *Store) Get(ctx context.Context, jid string) (Credentials, error) {
	var c Credentials
	err := s.db.QueryRowContext(ctx, `SELECT sha1_salt, sha1_iter, sha1_stored, sha1_server,
		sha256_salt, sha256_iter, sha256_stored, sha256_server FROM credentials WHERE jid = ?`, jid).
		Scan(&c.SHA1.Salt, &c.SHA1.Iterations, &c.SHA1.StoredKey, &c.SHA1.ServerKey,
			&c.SHA256.Salt, &c.SHA256.Iterations, &c.SHA256.StoredKey, &c.SHA256.ServerKey)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("%w: %s", ErrNotFound, jid)
	}
	if err != nil {
		return c, fmt.Errorf("credentials: read %s: %w", jid, err)
	}
	return c, nil
}

// Delete removes the credentials of jid; deleting absent ones is no error.
func (s *Store) Delete(ctx context.Context, jid string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM credentials WHERE jid = ?`, jid); err != nil {
		return fmt.Errorf("credentials: delete %s: %w", jid, err)
	}
	return nil
}
