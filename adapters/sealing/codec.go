package sealing

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
)

// Bounds of what a Codec holds in memory.
const (
	MaxHeldKeys   = 1 << 16 // opened data keys
	MaxTombstones = 1 << 17 // keys an erasure named, remembered until restart
	MaxOpened     = 4096    // events' opened data, for the other readers of the same events
	MaxOpenedSize = 16 << 20
)

// sealed is a sealed field as the log keeps it.
type sealed struct {
	Key string `json:"sealed"`
	Box string `json:"box"` // base64: nonce, then ciphertext and tag
}

// sealedMark starts a sealed field in compact JSON; it cannot occur
// inside a JSON string, whose quotes are escaped.
var sealedMark = []byte(`{"sealed":"`)

type held struct {
	k    Key
	aead cipher.AEAD
}

type slot struct {
	owner  string
	kind   Kind
	period int64
}

type openedData struct {
	data json.RawMessage
	key  Key // without its secret
}

// Codec implements eventstore.Codec with keys from a Keys. It is safe
// for concurrent use.
type Codec struct {
	keys Keys
	seal bool       // Seal seals; otherwise it leaves content as it is (Open still opens)
	slow sync.Mutex // one lookup or creation of a key at a time

	mu       sync.Mutex
	held     map[string]*held
	current  map[slot]string
	gone     map[string]bool
	goneFIFO []string
	expired  time.Time // Message keys whose day ended by then are gone
	opened   map[ulid.ULID]openedData
	openFIFO []ulid.ULID
	openSize int
}

// New returns a codec over keys. With seal false, appends keep their
// content as it is (--seal-content=false) while what was sealed before
// still opens.
func New(keys Keys, seal bool) *Codec {
	return &Codec{keys: keys, seal: seal, held: map[string]*held{}, current: map[slot]string{},
		gone: map[string]bool{}, opened: map[ulid.ULID]openedData{}}
}

// Seal implements eventstore.Codec.
func (c *Codec) Seal(ctx context.Context, evs []event.Envelope) ([]event.Envelope, error) {
	// An erasure or expiry appended here takes effect here at once: what
	// is sealed next must not go under the keys it destroys.
	for _, e := range evs {
		if err := c.observe(e); err != nil {
			return nil, err
		}
	}
	if !c.seal {
		return evs, nil
	}
	out := make([]event.Envelope, len(evs))
	copy(out, evs)
	for i := range out {
		e := &out[i]
		r, ok := rules[e.Type]
		if !ok {
			continue
		}
		d := make(map[string]json.RawMessage, 8)
		start, end, fast := member(e.Data, r.field, d) // splice.go
		if !fast {
			clear(d)
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return nil, fmt.Errorf("sealing: %s: %w", e.Type, err)
			}
		}
		raw := d[r.field]
		if len(raw) == 0 || raw[0] != '"' {
			continue
		}
		var plain string
		if err := json.Unmarshal(raw, &plain); err != nil {
			return nil, fmt.Errorf("sealing: %s %s: %w", e.Type, r.field, err)
		}
		owner := r.owner(e.Stream, d)
		if owner == "" {
			continue
		}
		var period int64
		if r.kind == Message {
			period = Day(e.OccurredAt)
		}
		h, err := c.currentKey(ctx, slot{owner, r.kind, period})
		if err != nil {
			return nil, err
		}
		nonce := make([]byte, h.aead.NonceSize(), h.aead.NonceSize()+len(plain)+h.aead.Overhead())
		rand.Read(nonce)
		box := h.aead.Seal(nonce, nonce, []byte(plain), additional(e.ID, r.field))
		field, simple := appendSealed(nil, h.k.ID, box)
		if !simple {
			if field, err = json.Marshal(sealed{Key: h.k.ID, Box: base64.StdEncoding.EncodeToString(box)}); err != nil {
				return nil, err
			}
		}
		if fast {
			e.Data = splice(e.Data, start, end, field)
		} else {
			d[r.field] = field
			if e.Data, err = json.Marshal(d); err != nil {
				return nil, err
			}
		}
		c.remember(e.ID, evs[i].Data, h.k)
	}
	return out, nil
}

// additional binds a box to its event and field.
func additional(id ulid.ULID, field string) []byte {
	return append(id[:], field...)
}

// Open implements eventstore.Codec.
func (c *Codec) Open(ctx context.Context, evs []event.Envelope) error {
	for i := range evs {
		e := &evs[i]
		if err := c.observe(*e); err != nil {
			return err
		}
		r, ok := rules[e.Type]
		if !ok || !bytes.Contains(e.Data, sealedMark) {
			continue
		}
		if data, ok := c.recall(e.ID); ok {
			e.Data = data
			continue
		}
		if err := c.open(ctx, e, r); err != nil {
			return fmt.Errorf("sealing: %s %s at %s: %w", e.Type, e.ID, e.Position, err)
		}
	}
	return nil
}

// observe takes in what an erasure or an expiry destroys.
func (c *Codec) observe(e event.Envelope) error {
	switch e.Type {
	case account.TypeContentErased:
		var d account.ContentErased
		if err := e.Decode(account.Schema, &d); err != nil {
			return err
		}
		c.forget(d.Keys)
	case archive.TypeExpired:
		var d archive.Expired
		if err := e.Decode(archive.Schema, &d); err != nil {
			return err
		}
		c.expire(d.Before)
	}
	return nil
}

func (c *Codec) open(ctx context.Context, e *event.Envelope, r rule) error {
	// The sealed field is spliced out when the data allows (splice.go);
	// otherwise d holds the data decoded.
	var d map[string]json.RawMessage
	start, end, fast := member(e.Data, r.field, nil)
	raw := e.Data[start:end]
	if !fast {
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return err
		}
		raw = d[r.field]
	}
	s, simple := parseSealed(raw)
	if !simple {
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
	}
	box, err := base64.StdEncoding.DecodeString(s.Box)
	if err != nil {
		return err
	}
	h, ok, err := c.key(ctx, s.Key)
	if err != nil {
		return err
	}
	if !ok {
		// Erased content, rare: the long way, which adds members.
		if fast {
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return err
			}
			fast = false
		}
		d[r.field] = json.RawMessage(`""`)
		d["erased"] = json.RawMessage(`true`)
		d["erased_bytes"], _ = json.Marshal(max(len(box)-12-16, 0))
	} else {
		n := h.aead.NonceSize()
		if len(box) < n {
			return fmt.Errorf("a sealed %s is %d bytes", r.field, len(box))
		}
		plain, err := h.aead.Open(nil, box[:n], box[n:], additional(e.ID, r.field))
		if err != nil {
			return fmt.Errorf("the sealed %s does not open under key %s: %w", r.field, s.Key, err)
		}
		q, err := json.Marshal(string(plain))
		if err != nil {
			return err
		}
		if fast {
			e.Data = splice(e.Data, start, end, q)
		} else {
			d[r.field] = q
		}
	}
	if !fast {
		sealedData := e.Data
		if e.Data, err = json.Marshal(d); err != nil {
			e.Data = sealedData
			return err
		}
	}
	if ok {
		c.remember(e.ID, e.Data, h.k)
	}
	return nil
}

// currentKey returns the key that seals what s names now.
func (c *Codec) currentKey(ctx context.Context, s slot) (*held, error) {
	c.mu.Lock()
	if id, ok := c.current[s]; ok && !c.isGone(c.held[id]) && c.held[id] != nil {
		h := c.held[id]
		c.mu.Unlock()
		return h, nil
	}
	c.mu.Unlock()
	c.slow.Lock()
	defer c.slow.Unlock()
	k, ok, err := c.keys.Find(ctx, s.owner, s.kind, s.period)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	stale := ok && c.isGoneKey(k)
	c.mu.Unlock()
	if !ok || stale {
		if k, err = c.keys.Create(ctx, s.owner, s.kind, s.period); err != nil {
			return nil, err
		}
	}
	h, err := c.hold(k)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.current) >= MaxHeldKeys {
		clear(c.current)
	}
	c.current[s] = k.ID
	c.mu.Unlock()
	return h, nil
}

// key returns key id, ok false when it is gone.
func (c *Codec) key(ctx context.Context, id string) (*held, bool, error) {
	c.mu.Lock()
	h, cached := c.held[id]
	gone := c.gone[id] || (cached && c.isGone(h))
	c.mu.Unlock()
	if gone {
		return nil, false, nil
	}
	if cached {
		return h, true, nil
	}
	c.slow.Lock()
	defer c.slow.Unlock()
	k, ok, err := c.keys.Get(ctx, id)
	if err != nil || !ok {
		return nil, false, err
	}
	c.mu.Lock()
	gone = c.isGoneKey(k)
	c.mu.Unlock()
	if gone {
		return nil, false, nil
	}
	h, err = c.hold(k)
	return h, err == nil, err
}

func (c *Codec) hold(k Key) (*held, error) {
	a, err := newAEAD(k.Secret)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", k.ID, err)
	}
	h := &held{k: k, aead: a}
	c.mu.Lock()
	if len(c.held) >= MaxHeldKeys {
		clear(c.held)
		clear(c.current)
	}
	c.held[k.ID] = h
	c.mu.Unlock()
	return h, nil
}

// isGone (c.mu held): h's key was named by an erasure or expired.
func (c *Codec) isGone(h *held) bool {
	return h == nil || c.isGoneKey(h.k)
}

func (c *Codec) isGoneKey(k Key) bool {
	if c.gone[k.ID] {
		return true
	}
	return k.Kind == Message && !c.expired.IsZero() && !k.Ends().After(c.expired)
}

// forget makes keys open nothing more here: an erasure named them.
func (c *Codec) forget(ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if c.gone[id] {
			continue
		}
		delete(c.held, id)
		c.gone[id] = true
		c.goneFIFO = append(c.goneFIFO, id)
	}
	for len(c.goneFIFO) > MaxTombstones {
		delete(c.gone, c.goneFIFO[0])
		c.goneFIFO = c.goneFIFO[1:]
	}
	// current entries naming a gone key are found stale when next used.
}

// expire makes the Message keys whose day ended by t open nothing more.
func (c *Codec) expire(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.expired) {
		c.expired = t
	}
}

// remember keeps an event's opened data for the next reader of it.
func (c *Codec) remember(id ulid.ULID, data json.RawMessage, key Key) {
	key.Secret = nil
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.opened[id]; ok || len(data) > MaxOpenedSize/16 {
		return
	}
	c.opened[id] = openedData{data: data, key: key}
	c.openFIFO = append(c.openFIFO, id)
	c.openSize += len(data)
	for len(c.openFIFO) > MaxOpened || c.openSize > MaxOpenedSize {
		old := c.openFIFO[0]
		c.openSize -= len(c.opened[old].data)
		delete(c.opened, old)
		c.openFIFO = c.openFIFO[1:]
	}
}

// recall returns an event's opened data, unless its key is gone since.
func (c *Codec) recall(id ulid.ULID) (json.RawMessage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.opened[id]
	if !ok {
		return nil, false
	}
	if c.isGoneKey(o.key) {
		return nil, false
	}
	return o.data, true
}
