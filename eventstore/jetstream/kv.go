package jetstream

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is a JetStream key-value bucket for what stays beside the log and
// must be the same on every node: credentials, the server's secret, its
// certificate. It is not the log: values are replaced and purged, never
// audited, and no event names them.
//
// Keys are any strings: each is stored base64url-encoded, since a NATS
// key allows only [-/_=.a-zA-Z0-9] and account names are Unicode.
type Bucket struct {
	kv      jetstream.KeyValue
	timeout func(context.Context) (context.Context, context.CancelFunc)
}

// Bucket opens the key-value bucket name in the store's account, creating
// it with replicas (the store's Replicas when 0) and one value per key if
// it does not exist. An existing bucket keeps its own settings.
func (s *Store) Bucket(ctx context.Context, name string, replicas int) (*Bucket, error) {
	if replicas <= 0 {
		replicas = s.opts.Replicas
	}
	return openBucket(ctx, s.js, name, replicas, s.bound)
}

// OpenBucket is Store.Bucket for a deployment whose log is elsewhere (on
// KurrentDB): the bucket on the NATS servers behind nc, each request
// bounded by timeout.
func OpenBucket(ctx context.Context, nc *nats.Conn, name string, replicas int, timeout time.Duration) (*Bucket, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	bound := func(ctx context.Context) (context.Context, context.CancelFunc) {
		if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
			return context.WithCancel(ctx)
		}
		return context.WithTimeout(ctx, timeout)
	}
	return openBucket(ctx, js, name, max(replicas, 1), bound)
}

func openBucket(ctx context.Context, js jetstream.JetStream, name string, replicas int, bound func(context.Context) (context.Context, context.CancelFunc)) (*Bucket, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: "Annals: kept beside the log (credentials, server keys)",
		History:     1,
		Replicas:    replicas,
		Storage:     jetstream.FileStorage,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: key-value bucket %s: %w", name, err)
	}
	return &Bucket{kv: kv, timeout: bound}, nil
}

func bucketKey(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

// Get returns key's value and revision; revision 0 and no error when the
// key has no value.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	ctx, cancel := b.timeout(ctx)
	defer cancel()
	var e jetstream.KeyValueEntry
	err := settling(ctx, func() (err error) {
		e, err = b.kv.Get(ctx, bucketKey(key))
		return err
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("jetstream: get %q: %w", key, err)
	}
	return e.Value(), e.Revision(), nil
}

// Set writes value if key is still at revision rev (0: if it has no
// value), and returns the new revision; ok is false, with no error, when
// the key was at another revision. The bucket's leader decides, so of two
// nodes setting one key from one revision, exactly one succeeds.
func (b *Bucket) Set(ctx context.Context, key string, value []byte, rev uint64) (_ uint64, ok bool, _ error) {
	ctx, cancel := b.timeout(ctx)
	defer cancel()
	var err error
	var n uint64
	err = settling(ctx, func() (err error) {
		if rev == 0 {
			n, err = b.kv.Create(ctx, bucketKey(key), value)
		} else {
			n, err = b.kv.Update(ctx, bucketKey(key), value, rev)
		}
		return err
	})
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("jetstream: set %q: %w", key, err)
	}
	return n, true, nil
}

// Put writes value whatever key held.
func (b *Bucket) Put(ctx context.Context, key string, value []byte) error {
	ctx, cancel := b.timeout(ctx)
	defer cancel()
	if err := settling(ctx, func() error { _, err := b.kv.Put(ctx, bucketKey(key), value); return err }); err != nil {
		return fmt.Errorf("jetstream: put %q: %w", key, err)
	}
	return nil
}

// Delete removes key's value and its history (a purge: a secret deleted is
// gone from the servers, not kept as an older revision); deleting an absent
// key is no error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	ctx, cancel := b.timeout(ctx)
	defer cancel()
	if err := settling(ctx, func() error { return b.kv.Purge(ctx, bucketKey(key)) }); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("jetstream: delete %q: %w", key, err)
	}
	return nil
}

// settlePause is how long a request answered by no server waits before
// it asks again.
const settlePause = 50 * time.Millisecond

// settling runs f again while the servers answer it with no responders,
// until ctx ends: a bucket just created, or whose leader just moved, has
// nobody answering for a moment (seen: the first Get after creating one,
// in TestBucket and in the sealing keys' tests).
func settling(ctx context.Context, f func() error) error {
	for {
		err := f()
		if !errors.Is(err, nats.ErrNoResponders) {
			return err
		}
		t := time.NewTimer(settlePause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
