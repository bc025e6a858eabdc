package storetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// OpenCodec opens the store kept in dir as Open does, sealing and opening
// with c (eventstore.Codec); c nil opens it as audits do, reading the log
// as it is kept.
type OpenCodec func(t testing.TB, dir string, c eventstore.Codec) eventstore.Store

// RunCodec checks a store given an eventstore.Codec: the log keeps what
// the codec sealed and the hash chains cover it (read by a store opened
// without the codec), readers and subscribers get it opened, in log
// order, an append's answer is what was proposed, each Append seals once
// whatever the store retries inside, a retried append is recognized by
// its IDs though sealed again to other bytes, and a codec's failure is
// the caller's error, not sealed data handed out or an event lost.
func RunCodec(t *testing.T, open OpenCodec) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open OpenCodec, dir, p string)
	}{
		{"CodecSealedLog", testCodecSealedLog},
		{"CodecRetry", testCodecRetry},
		{"CodecSealOnce", testCodecSealOnce},
		{"CodecFails", testCodecFails},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open, t.TempDir(), prefix()) })
	}
}

// sealedType is the event type whose "secret" field testCodec seals.
const sealedType = "TestSealed"

// sealedMark starts a sealed secret as the log keeps it.
const sealedMark = "sealed:"

// testCodec seals the "secret" field of sealedType events: its JSON value
// becomes the string "sealed:N:" and the base64 of its bytes XORed with
// 0x5a, N counting Seal calls, so that sealing the same events twice
// gives other bytes (as AES-GCM's random nonces do). Opening needs no
// state: any testCodec opens what another sealed, as processes sharing a
// log do.
type testCodec struct {
	mu       sync.Mutex
	seals    int                  // Seal calls
	sealed   map[ulid.ULID]string // each ID's secret as the last Seal of it made it
	failSeal bool
	failOpen bool
	disorder string // how an Open call's events were not in log order
}

func newTestCodec() *testCodec { return &testCodec{sealed: make(map[ulid.ULID]string)} }

var errTestCodec = errors.New("storetest: the codec fails, as asked")

func xor(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = c ^ 0x5a
	}
	return out
}

func (c *testCodec) Seal(_ context.Context, evs []event.Envelope) ([]event.Envelope, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failSeal {
		return nil, errTestCodec
	}
	c.seals++
	out := slices.Clone(evs)
	for i := range out {
		if out[i].Type != sealedType {
			continue
		}
		var d map[string]json.RawMessage
		if err := json.Unmarshal(out[i].Data, &d); err != nil {
			return nil, err
		}
		box := fmt.Sprintf("%s%d:%s", sealedMark, c.seals, base64.StdEncoding.EncodeToString(xor(d["secret"])))
		d["secret"], _ = json.Marshal(box)
		data, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		out[i].Data = data
		c.sealed[out[i].ID] = box
	}
	return out, nil
}

// Open opens in place, the first event before it fails when asked to,
// so that a store handing out a half-opened batch is seen.
func (c *testCodec) Open(_ context.Context, evs []event.Envelope) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range evs {
		if i > 0 && !evs[i-1].Position.Less(evs[i].Position) && c.disorder == "" {
			c.disorder = fmt.Sprintf("Open was given %s after %s", evs[i].Position, evs[i-1].Position)
		}
		if c.failOpen && i > 0 {
			return errTestCodec
		}
		if evs[i].Type != sealedType {
			continue
		}
		var d map[string]json.RawMessage
		if err := json.Unmarshal(evs[i].Data, &d); err != nil {
			return err
		}
		var box string
		if err := json.Unmarshal(d["secret"], &box); err != nil || !strings.HasPrefix(box, sealedMark) {
			return fmt.Errorf("storetest: %s is not sealed: %s", evs[i].ID, evs[i].Data)
		}
		_, b64, _ := strings.Cut(strings.TrimPrefix(box, sealedMark), ":")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return err
		}
		d["secret"] = xor(raw)
		data, err := json.Marshal(d)
		if err != nil {
			return err
		}
		evs[i].Data = data
	}
	if c.failOpen {
		return errTestCodec
	}
	return nil
}

func (c *testCodec) set(f func(c *testCodec)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

func (c *testCodec) sealCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seals
}

func (c *testCodec) check(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disorder != "" {
		t.Fatal(c.disorder)
	}
}

// secrets returns n events of sealedType, each with a secret of its own,
// and a plain event after the first when n > 1.
func secrets(n int, tag string) []event.Envelope {
	var out []event.Envelope
	for i := range n {
		at := time.Date(2026, 11, 30, 10, 0, i, 0, time.UTC)
		e, err := event.New(ids, at, sealedType, 1, tag, map[string]any{
			"tag": tag, "n": i, "secret": fmt.Sprintf("SECRET-%s-%d héllo \"world\"", tag, i)})
		if err != nil {
			panic(err)
		}
		out = append(out, e)
		if i == 0 && n > 1 {
			out = append(out, proposed(1, tag)...)
		}
	}
	return out
}

// samePlain checks that got are the events appended as answer (with
// their hashes) and say what was proposed.
func samePlain(t testing.TB, got, answer, in []event.Envelope) {
	t.Helper()
	if len(got) != len(in) || len(answer) != len(in) {
		t.Fatalf("%d events, %d in the answer, %d proposed", len(got), len(answer), len(in))
	}
	for i := range got {
		if string(got[i].Data) != string(in[i].Data) {
			t.Fatalf("event %d says %s, was proposed as %s", i, got[i].Data, in[i].Data)
		}
		sameEvent(t, got[i], answer[i])
	}
}

// checkSealed checks that the log keeps evs sealed: no secret in the
// clear, chained over what it keeps, the answer's hashes.
func checkSealed(t testing.TB, kept, answer []event.Envelope) {
	t.Helper()
	checkChain(t, kept)
	for i, e := range kept {
		if bytes.Contains(e.Data, []byte("SECRET")) {
			t.Fatalf("the log keeps a secret in the clear: %s", e.Data)
		}
		if e.Type == sealedType && !bytes.Contains(e.Data, []byte(sealedMark)) {
			t.Fatalf("the log keeps %s unsealed: %s", e.ID, e.Data)
		}
		if i < len(answer) && (e.ID != answer[i].ID || !bytes.Equal(e.Hash, answer[i].Hash) || e.Position != answer[i].Position) {
			t.Fatalf("the log keeps %s at %s hashed %x; the append answered %s at %s hashed %x",
				e.ID, e.Position, e.Hash, answer[i].ID, answer[i].Position, answer[i].Hash)
		}
	}
}

func testCodecSealedLog(t *testing.T, open OpenCodec, dir, p string) {
	c := newTestCodec()
	s := open(t, dir, c)
	t.Cleanup(func() { s.Close() })
	raw := open(t, dir, nil)
	t.Cleanup(func() { raw.Close() })
	stream := p + "account-romeo@example.com"
	before := mustAppend(t, s, p+"marker", eventstore.NoStream, proposed(1, "m")...)
	sub, err := s.Subscribe(ctxT(t), before[0].Position)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	in := secrets(3, "s")
	answer := mustAppend(t, s, stream, eventstore.NoStream, in[:2]...)
	answer = append(answer, mustAppend(t, s, stream, 2, in[2:]...)...)
	for i, e := range answer {
		if string(e.Data) != string(in[i].Data) || e.Version != uint64(i+1) || len(e.Hash) == 0 {
			t.Fatalf("the append answered %s version %d hash %x saying %s for %s", e.ID, e.Version, e.Hash, e.Data, in[i].Data)
		}
	}
	checkSealed(t, readStream(t, raw, stream), answer)
	if _, err := eventstore.Verify(ctxT(t), raw); err != nil {
		t.Fatalf("the sealed log does not verify: %v", err)
	}

	samePlain(t, readStream(t, s, stream), answer, in)
	// Pages of two: an append's events are opened across pages too.
	var all []event.Envelope
	for last := before[0].Position; len(all) < len(in); {
		page, err := s.ReadAll(ctxT(t), last, 2)
		if err != nil || len(page) == 0 {
			t.Fatalf("ReadAll after %s: %d events, %v", last, len(page), err)
		}
		for _, e := range page {
			if strings.HasPrefix(e.Stream, p) {
				all = append(all, e)
			}
		}
		last = page[len(page)-1].Position
	}
	samePlain(t, all, answer, in)
	got := followed(t, sub, p, len(in))
	samePlain(t, got, answer, in)
	// Another process's codec opens it too.
	other := open(t, dir, newTestCodec())
	t.Cleanup(func() { other.Close() })
	samePlain(t, readStream(t, other, stream), answer, in)
	c.check(t)
}

func testCodecRetry(t *testing.T, open OpenCodec, dir, p string) {
	c := newTestCodec()
	s := open(t, dir, c)
	t.Cleanup(func() { s.Close() })
	raw := open(t, dir, nil)
	t.Cleanup(func() { raw.Close() })
	stream := p + "account-juliet@example.com"
	in := secrets(3, "r")
	first := mustAppend(t, s, stream, eventstore.NoStream, in...)
	kept := readStream(t, raw, stream)
	for _, expected := range []int64{eventstore.NoStream, eventstore.Any, int64(len(in))} {
		// Sealed again, to other bytes: the store knows the IDs.
		again := mustAppend(t, s, stream, expected, in...)
		samePlain(t, again, first, in)
	}
	if n := c.sealCalls(); n != 4 {
		t.Fatalf("4 appends sealed %d times", n)
	}
	now := readStream(t, raw, stream)
	if len(now) != len(in) {
		t.Fatalf("after retries the stream has %d events, want %d", len(now), len(in))
	}
	for i := range now {
		sameEvent(t, now[i], kept[i])
	}
	samePlain(t, readStream(t, s, stream), first, in)
	if _, err := s.Append(ctxT(t), p+"other", eventstore.NoStream, in[0]); !errors.Is(err, eventstore.ErrDuplicateID) {
		t.Errorf("same ID in another stream: err = %v, want ErrDuplicateID", err)
	}
	c.check(t)
}

// testCodecSealOnce appends from writers that race for one stream under
// Any, which makes stores that retry inside (JetStream) publish an
// append several times: each Append must seal once, and the log keep
// what that one Seal made.
func testCodecSealOnce(t *testing.T, open OpenCodec, dir, p string) {
	const writers, each = 8, 6
	c := newTestCodec()
	s := open(t, dir, c)
	t.Cleanup(func() { s.Close() })
	raw := open(t, dir, nil)
	t.Cleanup(func() { raw.Close() })
	stream := p + "room-hot@conference.example.com"
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.Append(ctxT(t), stream, eventstore.Any, secrets(1, fmt.Sprintf("w%d-%d", w, i))...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := c.sealCalls(); n != writers*each {
		t.Fatalf("%d appends sealed %d times", writers*each, n)
	}
	kept := readStream(t, raw, stream)
	checkSealed(t, kept, nil)
	if len(kept) != writers*each {
		t.Fatalf("the stream has %d events, want %d", len(kept), writers*each)
	}
	c.mu.Lock()
	for _, e := range kept {
		var d struct{ Secret string }
		if err := json.Unmarshal(e.Data, &d); err != nil || d.Secret != c.sealed[e.ID] {
			c.mu.Unlock()
			t.Fatalf("the log keeps %s as %s, sealed as %q", e.ID, e.Data, c.sealed[e.ID])
		}
	}
	c.mu.Unlock()
	for _, e := range readStream(t, s, stream) {
		if !bytes.Contains(e.Data, []byte("SECRET-w")) {
			t.Fatalf("read as %s", e.Data)
		}
	}
	c.check(t)
}

// testCodecFails: a Seal that fails writes nothing; an Open that fails
// fails the read, and a subscription hands out the same events, opened,
// once the codec opens again.
func testCodecFails(t *testing.T, open OpenCodec, dir, p string) {
	c := newTestCodec()
	s := open(t, dir, c)
	t.Cleanup(func() { s.Close() })
	raw := open(t, dir, nil)
	t.Cleanup(func() { raw.Close() })
	stream := p + "account-mercutio@example.com"
	c.set(func(c *testCodec) { c.failSeal = true })
	if _, err := s.Append(ctxT(t), stream, eventstore.NoStream, secrets(1, "f")...); !errors.Is(err, errTestCodec) {
		t.Fatalf("append with a failing Seal: err = %v", err)
	}
	if n := len(readStream(t, raw, stream)); n != 0 {
		t.Fatalf("an append whose Seal failed wrote %d events", n)
	}
	c.set(func(c *testCodec) { c.failSeal = false })

	before := mustAppend(t, s, p+"marker", eventstore.NoStream, proposed(1, "m")...)
	sub, err := s.Subscribe(ctxT(t), before[0].Position)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	in := secrets(2, "f")
	answer := mustAppend(t, s, stream, eventstore.NoStream, in...)
	c.set(func(c *testCodec) { c.failOpen = true })
	if evs, err := s.ReadStream(ctxT(t), stream, 1, 10); !errors.Is(err, errTestCodec) {
		t.Fatalf("ReadStream with a failing Open: %d events, err = %v", len(evs), err)
	}
	if evs, err := s.ReadAll(ctxT(t), before[0].Position, 10); !errors.Is(err, errTestCodec) {
		t.Fatalf("ReadAll with a failing Open: %d events, err = %v", len(evs), err)
	}
	// The subscription fails until the codec opens again, then goes on
	// where it was: every event once, opened.
	for fails := 0; fails < 2; {
		short, cancel := context.WithTimeout(ctxT(t), 5*time.Second)
		page, err := sub.Next(short)
		cancel()
		switch {
		case errors.Is(err, errTestCodec):
			fails++
		case err != nil:
			t.Fatalf("Next with a failing Open: %v", err)
		default:
			for _, e := range page {
				if strings.HasPrefix(e.Stream, p) {
					t.Fatalf("Next with a failing Open handed out %s: %s", e.ID, e.Data)
				}
			}
		}
	}
	c.set(func(c *testCodec) { c.failOpen = false })
	got := followed(t, sub, p, len(in))
	samePlain(t, got, answer, in)
	samePlain(t, readStream(t, s, stream), answer, in)
	c.check(t)
}

// followed returns the next n events sub hands out in streams named with
// prefix p.
func followed(t *testing.T, sub eventstore.Subscription, p string, n int) []event.Envelope {
	t.Helper()
	var got []event.Envelope
	for len(got) < n {
		page, err := sub.Next(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if strings.HasPrefix(e.Stream, p) {
				got = append(got, e)
			}
		}
	}
	return got
}
