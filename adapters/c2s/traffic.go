package c2s

import (
	"cmp"
	"context"
	"time"
)

// Bounds on what one session or one account makes the server hold or
// store (issue 10 item 7). Each is a serve flag (cmd/annals/traffic.go);
// docs/security.md says why each default.
const (
	// DefaultOutQueueBytes bounds the bytes waiting for a client that reads
	// slowly, besides the OutQueue stanzas: 1,024 stanzas of 256 KiB were
	// 256 MiB. Four full MAM pages.
	DefaultOutQueueBytes = 8 << 20
	// DefaultMAMPageBytes bounds the stanzas of one MAM page (and of a
	// room's join history): a page of 250 stanzas of 256 KiB was 62 MiB,
	// built in memory. The page stops early, marked incomplete, and RSM
	// paging goes on from its last ID.
	DefaultMAMPageBytes = 2 << 20
)

// maxHeldBytes bounds the bytes held for an inactive client (XEP-0352)
// besides maxHeld stanzas; past it the held stanzas are sent.
const maxHeldBytes = 1 << 20

func (cfg *Config) trafficDefaults() {
	cfg.MaxUnacked = cmp.Or(cfg.MaxUnacked, DefaultMaxUnacked)
	cfg.MaxUnackedBytes = cmp.Or(cfg.MaxUnackedBytes, DefaultMaxUnackedBytes)
	cfg.OutQueueBytes = cmp.Or(cfg.OutQueueBytes, DefaultOutQueueBytes)
	cfg.MAMPageBytes = cmp.Or(cfg.MAMPageBytes, DefaultMAMPageBytes)
}

// outRoom reports whether n more bytes fit in the outbound queue. One
// stanza always fits in an empty queue, so that a bound below the largest
// stanza (or MAM page, written as one) only slows nobody down; the caller
// holds wmu.
func (c *conn) outRoom(n int) bool {
	queued := c.outBytes.Load()
	return queued == 0 || queued+int64(n) <= int64(c.srv.cfg.OutQueueBytes)
}

// waitForRoom waits until a stanza of n bytes can be queued for c with
// room to spare: the outbound queue at most half full in stanzas and in
// bytes, and with stream management, half the unacknowledged bounds. It is
// for the server's own bulk sends (the offline backlog), which must wait
// for a client to read rather than get it dropped as one that does not.
// False: the session ended or ctx did first.
func (c *conn) waitForRoom(ctx context.Context, n int) bool {
	for {
		c.wmu.Lock()
		closed := c.closed
		room := c.out == nil || len(c.out) < OutQueue/2 && c.outBytes.Load()+int64(n) <= int64(c.srv.cfg.OutQueueBytes/2)
		if c.sm.enabled {
			maxItems, maxBytes := cmp.Or(c.sm.maxItems, DefaultMaxUnacked), cmp.Or(c.sm.maxBytes, DefaultMaxUnackedBytes)
			room = room && len(c.sm.unacked) < maxItems/2 && c.sm.bytes+n <= maxBytes/2
		}
		c.wmu.Unlock()
		switch {
		case closed:
			return false
		case room:
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-c.gone:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}
