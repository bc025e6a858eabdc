// Package beside names what is kept beside the event log rather than in
// it: credentials (SCRAM keys), the passwords inside PEP items, the
// server's secret and certificate. These must never enter the log (it is
// immutable, replicated and read by auditors) yet must be the same on
// every node that serves a domain.
//
// On one machine they live in SQL tables of the data directory's database
// (adapters/credentials, adapters/secrets over a *sql.DB). A cluster keeps
// them in a replicated key-value store (KV), such as a JetStream bucket
// (eventstore/jetstream.Bucket); cmd/annals picks one.
package beside

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// KV is a replicated key-value store with compare-and-set. Keys and values
// are any bytes; a key with no value reads as revision 0.
type KV interface {
	// Get returns key's value and revision (0, with no error, when the
	// key has no value).
	Get(ctx context.Context, key string) (value []byte, rev uint64, err error)
	// Set writes value if key is still at revision rev (0: has no value)
	// and returns the new revision; ok is false, with no error, when it
	// was not.
	Set(ctx context.Context, key string, value []byte, rev uint64) (newRev uint64, ok bool, err error)
	// Put writes value whatever key held.
	Put(ctx context.Context, key string, value []byte) error
	// Delete removes key's value and every older one.
	Delete(ctx context.Context, key string) error
}

// maxRetries bounds Update's read-modify-write rounds: each lost round
// means another writer changed the key, which for the few keys here (one
// per account) takes a second client of one account doing the same thing
// at the same moment.
const maxRetries = 16

// ErrBusy: Update lost maxRetries rounds in a row.
var ErrBusy = errors.New("beside: the key keeps changing")

// Update applies f to key's value (nil when it has none) and writes the
// result with compare-and-set, reading again when another writer came
// first. f returning nil deletes the key.
func Update(ctx context.Context, kv KV, key string, f func(old []byte) ([]byte, error)) error {
	for round := range maxRetries {
		if round > 0 {
			// A replica that has not applied the winning write yet answers
			// the next read with the old revision: asking again at once
			// lost all 16 rounds under light contention on three replicas.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(rand.Int64N(int64(round) * int64(time.Millisecond)))):
			}
		}
		old, rev, err := kv.Get(ctx, key)
		if err != nil {
			return err
		}
		v, err := f(old)
		if err != nil {
			return err
		}
		if v == nil {
			if rev == 0 {
				return nil
			}
			// Unconditional: JetStream's KV has no delete at a revision,
			// so a value written between the read and here goes too. f
			// returns nil only when the last value under key goes.
			return kv.Delete(ctx, key)
		}
		if _, ok, err := kv.Set(ctx, key, v, rev); err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("%w: %q", ErrBusy, key)
}

// Keep returns key's value, setting it to make() first if it has none. Of
// several nodes starting at once, the first one's value is everyone's.
func Keep(ctx context.Context, kv KV, key string, make func() ([]byte, error)) ([]byte, error) {
	for range maxRetries {
		v, rev, err := kv.Get(ctx, key)
		if err != nil || rev != 0 {
			return v, err
		}
		if v, err = make(); err != nil {
			return nil, err
		}
		if _, ok, err := kv.Set(ctx, key, v, 0); err != nil || ok {
			return v, err
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrBusy, key)
}
