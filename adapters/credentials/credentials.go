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
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"annals.im/annals/adapters/beside"
	"annals.im/annals/domain/account"
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

// Store keeps credentials in a SQL table of their own, keyed by the
// account's bare JID in the one form Annals gives it everywhere: the
// PRECIS form account.ParseJID produces, which is also what resource
// binding produces. Every write, read and delete goes through that form, so
// two spellings of one name (case, fullwidth letters) are one key: a
// password change or a deletion can never miss credentials kept under
// another spelling.
//
// A Store keeps them in a SQL table (Open) or, for a cluster of nodes, in a
// replicated key-value store (OnKV), one value per account under
// "credentials/" and that form.
type Store struct {
	db *sql.DB
	kv beside.KV // instead of db
}

// OnKV keeps credentials in kv.
func OnKV(kv beside.KV) *Store { return &Store{kv: kv} }

func kvKey(k string) string { return "credentials/" + k }

// Key returns the form credentials of the account bareJID are kept under.
func Key(bareJID string) (string, error) {
	j, err := account.ParseJID(bareJID)
	if err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	return j.String(), nil
}

// Open creates the credentials table in db if needed, and moves rows kept
// under a name that is not in Key's form (written by versions that
// lowercased in-band registrations only) to that form; see migrate.
func Open(ctx context.Context, db *sql.DB, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS credentials (
		jid           TEXT PRIMARY KEY,
		sha1_salt     BLOB NOT NULL, sha1_iter   INTEGER NOT NULL, sha1_stored   BLOB NOT NULL, sha1_server   BLOB NOT NULL,
		sha256_salt   BLOB NOT NULL, sha256_iter INTEGER NOT NULL, sha256_stored BLOB NOT NULL, sha256_server BLOB NOT NULL
	) WITHOUT ROWID`)
	if err != nil {
		return nil, fmt.Errorf("credentials: create table: %w", err)
	}
	if err := migrate(ctx, db, log); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// migrate rewrites every row whose key is not in Key's form. It runs on
// every Open (one indexed scan of a table with a row per account) so that a
// row an older binary writes into a data directory is caught next time.
//
// When several rows fall onto one key, which of them is the account's
// password today cannot be told from this table: a row under the normalised
// key is usually the newer (`annals user passwd` wrote it over an in-band
// alias), but not always (an in-band removal deleted only the alias it was
// logged in as, and a newcomer registered the alias again). Guessing wrong
// hands the account to whoever set the other password, which is the alias
// attack itself; so all of them are dropped and the log says which. The
// operator sets a password with `annals user passwd`: a lockout is
// recoverable, a takeover is not. Only names that lowercasing alone did not
// normalise (fullwidth letters, compatibility forms) can collide.
//
// A key that is no JID at all can never be looked up again and is dropped.
func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("credentials: migrate: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT jid FROM credentials`)
	if err != nil {
		return fmt.Errorf("credentials: migrate: %w", err)
	}
	present := make(map[string]bool)     // every key in the table
	aliases := make(map[string][]string) // normalised key -> rows not under it
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return fmt.Errorf("credentials: migrate: %w", err)
		}
		present[k] = true
		n, err := Key(k)
		switch {
		case err != nil:
			aliases[""] = append(aliases[""], k)
		case n != k:
			aliases[n] = append(aliases[n], k)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("credentials: migrate: %w", err)
	}
	if len(aliases) == 0 {
		return nil
	}
	del := func(k string) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE jid = ?`, k); err != nil {
			return fmt.Errorf("credentials: migrate: %w", err)
		}
		return nil
	}
	for _, n := range slices.Sorted(maps.Keys(aliases)) {
		old := aliases[n]
		slices.Sort(old)
		switch {
		case n == "":
			for _, k := range old {
				log.Warn("credentials: dropped credentials kept under a name that is no JID", "account", k)
				if err := del(k); err != nil {
					return err
				}
			}
		case len(old) == 1 && !present[n]:
			if _, err := tx.ExecContext(ctx, `UPDATE credentials SET jid = ? WHERE jid = ?`, n, old[0]); err != nil {
				return fmt.Errorf("credentials: migrate: %w", err)
			}
			log.Info("credentials: moved to the account's normalised name", "account", n, "alias", old[0])
		default:
			if present[n] {
				old = append(old, n)
			}
			for _, k := range old {
				if err := del(k); err != nil {
					return err
				}
			}
			log.Warn("credentials: several spellings of one account held passwords; all were dropped: set one with `annals user passwd`",
				"account", n, "spellings", strings.Join(old, " "))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("credentials: migrate: %w", err)
	}
	return nil
}

// Put stores c as the credentials of the account with bare JID jid.
func (s *Store) Put(ctx context.Context, jid string, c Credentials) error {
	k, err := Key(jid)
	if err != nil {
		return err
	}
	if s.kv != nil {
		b, err := json.Marshal(c)
		if err == nil {
			err = s.kv.Put(ctx, kvKey(k), b)
		}
		if err != nil {
			return fmt.Errorf("credentials: store %s: %w", k, err)
		}
		return nil
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (jid) DO UPDATE SET
			sha1_salt = excluded.sha1_salt, sha1_iter = excluded.sha1_iter,
			sha1_stored = excluded.sha1_stored, sha1_server = excluded.sha1_server,
			sha256_salt = excluded.sha256_salt, sha256_iter = excluded.sha256_iter,
			sha256_stored = excluded.sha256_stored, sha256_server = excluded.sha256_server`,
		k, c.SHA1.Salt, c.SHA1.Iterations, c.SHA1.StoredKey, c.SHA1.ServerKey,
		c.SHA256.Salt, c.SHA256.Iterations, c.SHA256.StoredKey, c.SHA256.ServerKey)
	if err != nil {
		return fmt.Errorf("credentials: store %s: %w", k, err)
	}
	return nil
}

// Get returns the credentials of jid, or ErrNotFound (also for a jid that
// is no account's JID at all).
func (s *Store) Get(ctx context.Context, jid string) (Credentials, error) {
	var c Credentials
	k, err := Key(jid)
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if s.kv != nil {
		return s.getKV(ctx, k)
	}
	err = s.db.QueryRowContext(ctx, `SELECT sha1_salt, sha1_iter, sha1_stored, sha1_server,
		sha256_salt, sha256_iter, sha256_stored, sha256_server FROM credentials WHERE jid = ?`, k).
		Scan(&c.SHA1.Salt, &c.SHA1.Iterations, &c.SHA1.StoredKey, &c.SHA1.ServerKey,
			&c.SHA256.Salt, &c.SHA256.Iterations, &c.SHA256.StoredKey, &c.SHA256.ServerKey)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("%w: %s", ErrNotFound, k)
	}
	if err != nil {
		return c, fmt.Errorf("credentials: read %s: %w", k, err)
	}
	return c, nil
}

// Delete removes the credentials of jid; deleting absent ones is no error.
func (s *Store) Delete(ctx context.Context, jid string) error {
	k, err := Key(jid)
	if err != nil {
		return err
	}
	if s.kv != nil {
		err = s.kv.Delete(ctx, kvKey(k))
	} else {
		_, err = s.db.ExecContext(ctx, `DELETE FROM credentials WHERE jid = ?`, k)
	}
	if err != nil {
		return fmt.Errorf("credentials: delete %s: %w", k, err)
	}
	return nil
}

func (s *Store) getKV(ctx context.Context, k string) (Credentials, error) {
	var c Credentials
	b, rev, err := s.kv.Get(ctx, kvKey(k))
	if err != nil {
		return c, fmt.Errorf("credentials: read %s: %w", k, err)
	}
	if rev == 0 {
		return c, fmt.Errorf("%w: %s", ErrNotFound, k)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("credentials: read %s: %w", k, err)
	}
	return c, nil
}
