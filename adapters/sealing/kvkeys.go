package sealing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"annals.im/annals/adapters/beside"
)

// KVKeys keeps keys in a replicated key-value store (beside.KV: a
// cluster's JetStream bucket, which every node shares), wrapped under the
// key-encryption key as SQLKeys wraps them.
//
// The store lists nothing, so beside one value per key it keeps the
// indexes Find, Owned and Ended read, each a value rewritten with
// compare-and-set (beside.Update):
//
//	sealing/key/ID        the key: owner, kind, period, the wrapped secret
//	sealing/owner/H       an owner's keys, oldest first: ID, kind, period
//	                      (H: hex SHA-256 of the owner, a key of fixed length)
//	sealing/day/D/X       the IDs of day D's Message keys whose ID starts
//	                      with hex digit X: 16 values a day
//	sealing/days          the days that may have Message keys, ascending
//
// Only key values hold secrets, and each is written once and destroyed
// by one delete, which purges it with its history (a JetStream bucket
// keeping older revisions would keep a secret that an index rewrite left
// behind). Create writes the key before the indexes and Destroy deletes
// it before them, so after a crash between the two an index may name a
// key that is gone, never miss one that seals something: readers drop
// such entries as they meet them. A key whose Create failed after it was
// written is named by no index and sealed nothing.
//
// Every value is bounded (KVOptions), so each fits one message of the
// servers (NATS's max_payload, 1 MiB by default).
type KVKeys struct {
	wrapper
	kv   beside.KV
	opts KVOptions
	now  func() time.Time
}

// KVOptions bound the values of KVKeys; the zero value takes every
// default.
type KVOptions struct {
	// MaxOwnerKeys bounds one owner's keys (about 60 bytes each in its
	// index); default 8192: a message key a day for 22 years, with no
	// --archive-expiry to destroy them. Create fails beyond it.
	MaxOwnerKeys int
	// MaxDayKeys bounds the Message keys of one UTC day in each of the
	// day's 16 index values (27 bytes each); default 8192, so about
	// 131,000 authors a day. Create fails beyond it.
	MaxDayKeys int
	// MaxDays bounds the days with Message keys not yet destroyed (7
	// bytes each); default 32768, about 89 years. Create fails beyond it.
	MaxDays int
}

// Defaults of KVOptions.
const (
	DefaultMaxOwnerKeys = 8192
	DefaultMaxDayKeys   = 8192
	DefaultMaxDays      = 1 << 15
)

// ErrTooManyKeys: a KVKeys value is full (KVOptions).
var ErrTooManyKeys = errors.New("sealing: too many keys")

// OpenKVKeys keeps keys in kv, wrapped under kek, 32 bytes
// (keys.Derive(secret, keys.ContentKeys)).
func OpenKVKeys(kv beside.KV, kek []byte, opts KVOptions) (*KVKeys, error) {
	w, err := newWrapper(kek)
	if err != nil {
		return nil, err
	}
	if opts.MaxOwnerKeys <= 0 {
		opts.MaxOwnerKeys = DefaultMaxOwnerKeys
	}
	if opts.MaxDayKeys <= 0 {
		opts.MaxDayKeys = DefaultMaxDayKeys
	}
	if opts.MaxDays <= 0 {
		opts.MaxDays = DefaultMaxDays
	}
	return &KVKeys{wrapper: w, kv: kv, opts: opts, now: time.Now}, nil
}

// kvKey is a key as kept.
type kvKey struct {
	Owner   string `json:"owner"`
	Kind    Kind   `json:"kind"`
	Period  int64  `json:"period"`
	Created int64  `json:"created"` // Unix nanoseconds
	Wrapped []byte `json:"wrapped"` // nonce and AES-GCM of the key under the key-encryption key
}

// ownerIndex is an owner's keys, oldest first.
type ownerIndex struct {
	Owner string     `json:"owner"`
	Keys  []indexKey `json:"keys"`
}

type indexKey struct {
	ID     string `json:"id"`
	Kind   Kind   `json:"kind"`
	Period int64  `json:"period"`
}

func keyName(id string) string { return "sealing/key/" + id }

func ownerName(owner string) string {
	h := sha256.Sum256([]byte(owner))
	return "sealing/owner/" + hex.EncodeToString(h[:])
}

// dayName is the index value of day's Message keys that holds id.
func dayName(day int64, id string) string { return dayShard(day, id[:1]) }

func dayShard(day int64, x string) string {
	return "sealing/day/" + strconv.FormatInt(day, 10) + "/" + x
}

const daysName = "sealing/days"

// shards are the first hex digits of IDs: a day's 16 index values.
const shards = "0123456789abcdef"

// Create implements Keys.
func (s *KVKeys) Create(ctx context.Context, owner string, kind Kind, period int64) (Key, error) {
	// Refused before anything is written when the owner's index is full
	// even without keys that are gone; checked again as it is written.
	if idx, err := s.owned(ctx, owner); err != nil {
		return Key{}, err
	} else if len(idx.Keys) >= s.opts.MaxOwnerKeys {
		ids, err := s.Owned(ctx, owner, 0) // drops entries of keys gone
		if err != nil {
			return Key{}, err
		}
		if len(ids) >= s.opts.MaxOwnerKeys {
			return Key{}, fmt.Errorf("%w: %s has %d keys (KVOptions.MaxOwnerKeys): erase or expire some", ErrTooManyKeys, owner, len(ids))
		}
	}
	k, wrapped := s.make(owner, kind, period)
	v, err := json.Marshal(kvKey{Owner: owner, Kind: kind, Period: period, Created: s.now().UnixNano(), Wrapped: wrapped})
	if err != nil {
		return Key{}, err
	}
	if _, ok, err := s.kv.Set(ctx, keyName(k.ID), v, 0); err != nil || !ok {
		return Key{}, fmt.Errorf("sealing: keep a new key of %s: %w", owner, cmpErr(err, errors.New("its ID is taken")))
	}
	if err := s.index(ctx, k); err != nil {
		// Named by no index it would never be destroyed: it goes now,
		// and so does its entry in its day's index if that was written
		// (a refusal by the days' bound comes after it): left there, it
		// would count against the day's bound for nothing.
		err = errors.Join(err, s.kv.Delete(ctx, keyName(k.ID)))
		if k.Kind == Message {
			err = errors.Join(err, s.unindexDay(ctx, k.Period, []string{k.ID}))
		}
		return Key{}, err
	}
	return k, nil
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// index names a new key in its day's index, then the days (after: see
// Ended), then its owner's.
func (s *KVKeys) index(ctx context.Context, k Key) error {
	if k.Kind == Message {
		err := beside.Update(ctx, s.kv, dayName(k.Period, k.ID), func(old []byte) ([]byte, error) {
			ids, err := decodeIDs(old)
			if err != nil || slices.Contains(ids, k.ID) {
				return old, err
			}
			if len(ids) >= s.opts.MaxDayKeys {
				return nil, fmt.Errorf("%w: day %d has %d message keys starting with %s (KVOptions.MaxDayKeys)", ErrTooManyKeys, k.Period, len(ids), k.ID[:1])
			}
			return json.Marshal(append(ids, k.ID))
		})
		if err != nil {
			return fmt.Errorf("sealing: index key %s: %w", k.ID, err)
		}
		if err := s.addDay(ctx, k.Period); err != nil {
			return err
		}
	}
	err := beside.Update(ctx, s.kv, ownerName(k.Owner), func(old []byte) ([]byte, error) {
		idx, err := decodeOwner(old, k.Owner)
		if err != nil {
			return nil, err
		}
		if len(idx.Keys) >= s.opts.MaxOwnerKeys {
			return nil, fmt.Errorf("%w: %s has %d keys (KVOptions.MaxOwnerKeys): erase or expire some", ErrTooManyKeys, k.Owner, len(idx.Keys))
		}
		idx.Keys = append(idx.Keys, indexKey{k.ID, k.Kind, k.Period})
		return json.Marshal(idx)
	})
	if err != nil {
		return fmt.Errorf("sealing: index key %s of %s: %w", k.ID, k.Owner, err)
	}
	return nil
}

// addDay makes sure the days name day. It writes only when they do not:
// Ended, which drops a day, looks at the day again after, so a key it
// raced with is kept either way.
func (s *KVKeys) addDay(ctx context.Context, day int64) error {
	v, _, err := s.kv.Get(ctx, daysName)
	if err != nil {
		return err
	}
	days, err := decodeDays(v)
	if err != nil || slices.Contains(days, day) {
		return err
	}
	return beside.Update(ctx, s.kv, daysName, func(old []byte) ([]byte, error) {
		days, err := decodeDays(old)
		if err != nil {
			return nil, err
		}
		i, found := slices.BinarySearch(days, day)
		if found {
			return old, nil
		}
		if len(days) >= s.opts.MaxDays {
			return nil, fmt.Errorf("%w: %d days have message keys (KVOptions.MaxDays)", ErrTooManyKeys, len(days))
		}
		return json.Marshal(slices.Insert(days, i, day))
	})
}

// dropDays removes drop from the days, then reads each dropped day's
// index again and puts back a day that got a key meanwhile: a Create
// that indexed it before the second read is seen there, one that did
// after finds the day missing and adds it.
func (s *KVKeys) dropDays(ctx context.Context, drop []int64) error {
	err := beside.Update(ctx, s.kv, daysName, func(old []byte) ([]byte, error) {
		days, err := decodeDays(old)
		if err != nil {
			return nil, err
		}
		days = slices.DeleteFunc(days, func(d int64) bool { return slices.Contains(drop, d) })
		return json.Marshal(days)
	})
	if err != nil {
		return err
	}
	for _, d := range drop {
		for _, x := range shards {
			v, _, err := s.kv.Get(ctx, dayShard(d, string(x)))
			if err != nil {
				return err
			}
			if ids, err := decodeIDs(v); err != nil || len(ids) > 0 {
				if err == nil {
					err = s.addDay(ctx, d)
				}
				if err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

func decodeIDs(v []byte) ([]string, error) {
	var ids []string
	if len(v) > 0 {
		if err := json.Unmarshal(v, &ids); err != nil {
			return nil, fmt.Errorf("sealing: a day's key index is damaged: %w", err)
		}
	}
	return ids, nil
}

func decodeDays(v []byte) ([]int64, error) {
	var days []int64
	if len(v) > 0 {
		if err := json.Unmarshal(v, &days); err != nil {
			return nil, fmt.Errorf("sealing: the days' index is damaged: %w", err)
		}
	}
	return days, nil
}

func decodeOwner(v []byte, owner string) (ownerIndex, error) {
	idx := ownerIndex{Owner: owner}
	if len(v) == 0 {
		return idx, nil
	}
	if err := json.Unmarshal(v, &idx); err != nil {
		return idx, fmt.Errorf("sealing: the key index of %s is damaged: %w", owner, err)
	}
	if idx.Owner != owner {
		return idx, fmt.Errorf("sealing: the key index of %s is %s's", owner, idx.Owner)
	}
	return idx, nil
}

func (s *KVKeys) owned(ctx context.Context, owner string) (ownerIndex, error) {
	v, _, err := s.kv.Get(ctx, ownerName(owner))
	if err != nil {
		return ownerIndex{}, fmt.Errorf("sealing: keys of %s: %w", owner, err)
	}
	return decodeOwner(v, owner)
}

// Get implements Keys.
func (s *KVKeys) Get(ctx context.Context, id string) (Key, bool, error) {
	v, rev, err := s.kv.Get(ctx, keyName(id))
	if err != nil {
		return Key{}, false, fmt.Errorf("sealing: read key %s: %w", id, err)
	}
	if rev == 0 {
		return Key{}, false, nil
	}
	var kk kvKey
	if err := json.Unmarshal(v, &kk); err != nil {
		return Key{}, false, fmt.Errorf("sealing: key %s is damaged: %w", id, err)
	}
	k := Key{ID: id, Owner: kk.Owner, Kind: kk.Kind, Period: kk.Period}
	if k.Secret, err = s.unwrap(id, kk.Owner, kk.Wrapped); err != nil {
		return Key{}, false, err
	}
	return k, true, nil
}

// Find implements Keys.
func (s *KVKeys) Find(ctx context.Context, owner string, kind Kind, period int64) (Key, bool, error) {
	idx, err := s.owned(ctx, owner)
	if err != nil {
		return Key{}, false, err
	}
	var gone []string
	defer func() {
		if len(gone) > 0 {
			s.unindex(ctx, owner, gone) // tidying: the answer stands without it
		}
	}()
	for i := len(idx.Keys) - 1; i >= 0; i-- {
		e := idx.Keys[i]
		if e.Kind != kind || e.Period != period {
			continue
		}
		k, ok, err := s.Get(ctx, e.ID)
		if err != nil {
			return Key{}, false, err
		}
		if ok {
			return k, true, nil
		}
		gone = append(gone, e.ID)
	}
	return Key{}, false, nil
}

// exists reports whether key id is kept.
func (s *KVKeys) exists(ctx context.Context, id string) (bool, error) {
	_, rev, err := s.kv.Get(ctx, keyName(id))
	if err != nil {
		return false, fmt.Errorf("sealing: read key %s: %w", id, err)
	}
	return rev != 0, nil
}

// Owned implements Keys. It reads each key, to leave out (and drop from
// the index) those a Destroy cut short left named.
func (s *KVKeys) Owned(ctx context.Context, owner string, max int) ([]string, error) {
	idx, err := s.owned(ctx, owner)
	if err != nil {
		return nil, err
	}
	var ids, gone []string
	for _, e := range idx.Keys {
		if max > 0 && len(ids) >= max {
			break
		}
		ok, err := s.exists(ctx, e.ID)
		if err != nil {
			return nil, err
		}
		if ok {
			ids = append(ids, e.ID)
		} else {
			gone = append(gone, e.ID)
		}
	}
	if len(gone) > 0 {
		if err := s.unindex(ctx, owner, gone); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// unindex drops ids from owner's index. An emptied index stays, empty:
// deleting it could not be made conditional, and would lose a key
// another node indexed meanwhile.
func (s *KVKeys) unindex(ctx context.Context, owner string, ids []string) error {
	err := beside.Update(ctx, s.kv, ownerName(owner), func(old []byte) ([]byte, error) {
		idx, err := decodeOwner(old, owner)
		if err != nil || len(old) == 0 {
			return old, err
		}
		idx.Keys = slices.DeleteFunc(idx.Keys, func(e indexKey) bool { return slices.Contains(ids, e.ID) })
		return json.Marshal(idx)
	})
	if err != nil {
		return fmt.Errorf("sealing: unindex keys of %s: %w", owner, err)
	}
	return nil
}

// unindexDay drops ids, which all start with the same hex digit, from
// day's index. An emptied index stays, empty, as in unindex.
func (s *KVKeys) unindexDay(ctx context.Context, day int64, ids []string) error {
	err := beside.Update(ctx, s.kv, dayName(day, ids[0]), func(old []byte) ([]byte, error) {
		have, err := decodeIDs(old)
		if err != nil || len(old) == 0 {
			return old, err
		}
		return json.Marshal(slices.DeleteFunc(have, func(id string) bool { return slices.Contains(ids, id) }))
	})
	if err != nil {
		return fmt.Errorf("sealing: unindex keys of day %d: %w", day, err)
	}
	return nil
}

// Ended implements Keys. It reads the days that ended by t, oldest
// first, and each key they name, leaving out (and dropping from the
// index) those a Destroy cut short left named; a day found with no key
// is dropped from the days.
func (s *KVKeys) Ended(ctx context.Context, t time.Time, max int) ([]string, error) {
	v, _, err := s.kv.Get(ctx, daysName)
	if err != nil {
		return nil, fmt.Errorf("sealing: keys ended by %v: %w", t, err)
	}
	days, err := decodeDays(v)
	if err != nil {
		return nil, err
	}
	last := Day(t) - 1 // day d ends at (d+1)*86400 seconds, by t when d < Day(t)
	var ids []string
	var empty []int64
	full := func() bool { return max > 0 && len(ids) >= max }
	for _, d := range days {
		if d > last || full() {
			break
		}
		found := false // a key of d is kept, or d was not read whole
		for _, x := range shards {
			if full() {
				found = true
				break
			}
			v, _, err := s.kv.Get(ctx, dayShard(d, string(x)))
			if err != nil {
				return nil, fmt.Errorf("sealing: keys of day %d: %w", d, err)
			}
			have, err := decodeIDs(v)
			if err != nil {
				return nil, err
			}
			var gone []string
			for _, id := range have {
				if full() {
					found = true
					break
				}
				ok, err := s.exists(ctx, id)
				if err != nil {
					return nil, err
				}
				if ok {
					ids, found = append(ids, id), true
				} else {
					gone = append(gone, id)
				}
			}
			if len(gone) > 0 {
				if err := s.unindexDay(ctx, d, gone); err != nil {
					return nil, err
				}
			}
		}
		if !found {
			empty = append(empty, d)
		}
	}
	if len(empty) > 0 {
		if err := s.dropDays(ctx, empty); err != nil {
			return nil, fmt.Errorf("sealing: drop days without keys: %w", err)
		}
	}
	return ids, nil
}

// Destroy implements Keys: each key's value goes first (with its
// history: the bucket purges it), then its entries in the indexes.
func (s *KVKeys) Destroy(ctx context.Context, ids []string) error {
	for _, id := range ids {
		v, rev, err := s.kv.Get(ctx, keyName(id))
		if err != nil {
			return fmt.Errorf("sealing: destroy key %s: %w", id, err)
		}
		if rev == 0 {
			continue
		}
		var kk kvKey
		if err := json.Unmarshal(v, &kk); err != nil {
			return fmt.Errorf("sealing: key %s is damaged: %w", id, err)
		}
		if err := s.kv.Delete(ctx, keyName(id)); err != nil {
			return fmt.Errorf("sealing: destroy key %s: %w", id, err)
		}
		if err := s.unindex(ctx, kk.Owner, []string{id}); err != nil {
			return err
		}
		if kk.Kind == Message {
			if err := s.unindexDay(ctx, kk.Period, []string{id}); err != nil {
				return err
			}
		}
	}
	return nil
}

var (
	_ Keys = (*KVKeys)(nil)
	_ Keys = (*SQLKeys)(nil)
)
