package c2s

// Writing to a session: the bounded outbound queue, stream-management
// counting, client state indication and ending a session.

import (
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// OutQueue is how many stanzas may wait for a session's client to read
// them before the connection is dropped as unresponsive.
const OutQueue = 1024

var errSlowReader = errors.New("c2s: the client does not read: outbound queue full")

// write sends a stanza to the client: directly during negotiation, through
// the outbound queue once the session is bound. It never blocks on a bound
// session's client. With stream management the stanza is counted and kept
// until the client acknowledges it.
func (c *conn) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(s, true)
}

// writeAll sends stanzas as write does, in one piece: a MAM page is one
// write to the connection instead of fifty.
func (c *conn) writeAll(stanzas []string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	for _, s := range stanzas {
		if err := c.countLocked(s); err != nil {
			return err
		}
		c.srv.cfg.Metrics.StanzaSent(sentKind(s))
	}
	if err := c.writeLocked(strings.Join(stanzas, ""), false); err != nil {
		return err
	}
	if c.out != nil && c.sm.enabled && c.sm.wantAck(len(c.out)) {
		c.enqueue(ackRequest)
	}
	return nil
}

// writeNonza sends what is not a stanza (XEP-0198 acks and requests):
// neither counted nor kept for retransmission.
func (c *conn) writeNonza(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(s, false)
}

// deliver sends a stanza routed to this session. While the client is
// inactive (XEP-0352), what is not urgent (presence, chat states,
// receipts) waits, up to maxHeld stanzas; anything urgent sends the held
// ones first, in order.
func (c *conn) deliver(s string, urgent bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.inactive {
		if !urgent {
			// A newer presence from the same entity replaces the held one:
			// only the latest counts (XEP-0352 §6).
			if from, ok := presenceFrom(s); ok {
				for i, h := range c.held {
					if f, ok := presenceFrom(h); ok && f == from {
						c.held = append(c.held[:i], c.held[i+1:]...)
						c.heldBytes -= len(h)
						break
					}
				}
			}
			if len(c.held) < maxHeld && c.heldBytes+len(s) <= maxHeldBytes {
				c.held = append(c.held, s)
				c.heldBytes += len(s)
				return
			}
		}
		c.flushHeldLocked()
	}
	if err := c.writeLocked(s, true); err != nil {
		c.log.Debug("delivery failed", "err", err)
	}
}

// presenceFrom returns the from of a presence this package serialized.
func presenceFrom(s string) (string, bool) {
	if !strings.HasPrefix(s, "<presence") {
		return "", false
	}
	end := strings.IndexByte(s, '>')
	i := strings.Index(s[:max(end, 0)], " from='")
	if i < 0 {
		return "", false
	}
	rest := s[i+len(" from='"):]
	j := strings.IndexByte(rest, '\'')
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}

// maxHeld bounds the stanzas held for an inactive client.
const maxHeld = 256

func (c *conn) flushHeldLocked() {
	held := c.held
	c.held, c.heldBytes = nil, 0
	for _, h := range held {
		if err := c.writeLocked(h, true); err != nil {
			return
		}
	}
}

func (c *conn) writeLocked(s string, stanza bool) error {
	if c.closed {
		return net.ErrClosed
	}
	if stanza {
		if err := c.countLocked(s); err != nil {
			return err
		}
		c.srv.cfg.Metrics.StanzaSent(sentKind(s))
	}
	if c.detached {
		return nil // kept in sm.unacked for the resumption
	}
	if c.out == nil {
		return c.writeNow(s)
	}
	if !c.enqueue(s) {
		return c.dropSlow()
	}
	if stanza && c.sm.enabled && c.sm.wantAck(len(c.out)) {
		c.enqueue(ackRequest)
	}
	return nil
}

// countLocked counts an outbound stanza for stream management and keeps
// it until acknowledged; a client that acknowledges nothing loses its
// session.
func (c *conn) countLocked(s string) error {
	if !c.sm.enabled {
		return nil
	}
	if err := c.sm.sent(s); err != nil {
		c.log.Warn("closing a session whose client acknowledges nothing", "jid", c.jid.String(), "unacked", len(c.sm.unacked), "unacked_bytes", c.sm.bytes)
		// Nothing will be resent: a resumption of this session fails.
		c.sm.drop()
		c.endLocked((&streamError{cond: "policy-violation", text: err.Error()}).xml() + "</stream:stream>")
		return err
	}
	return nil
}

func (c *conn) enqueue(s string) bool {
	if !c.outRoom(len(s)) {
		return false
	}
	select {
	case c.out <- s:
		c.outBytes.Add(int64(len(s)))
		return true
	default:
		return false
	}
}

// dropSlow handles a client that does not read: a resumable session loses
// its connection (the client may resume and get what it missed), any
// other session ends.
func (c *conn) dropSlow() error {
	c.log.Warn("dropping the connection of a client that does not read", "jid", c.jid.String(), "queued", len(c.out))
	if c.sm.resumable {
		c.nc.Close() // the reader fails and the session detaches
		return nil
	}
	c.closed = true
	close(c.out) // the writer flushes what it can, then closes the connection
	c.out = nil
	c.markGone()
	return errSlowReader
}

// writeNow writes s and flushes; the caller holds wmu or is the writer.
func (c *conn) writeNow(s string) error {
	c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.w.WriteString(s); err != nil {
		return err
	}
	return c.w.Flush()
}

// startQueue switches the session to queued writes on its current
// connection; the caller holds wmu.
func (c *conn) startQueueLocked() {
	out, done, nc, w, queued := make(chan string, OutQueue), make(chan struct{}), c.nc, c.w, new(atomic.Int64)
	c.out, c.outDone, c.outBytes = out, done, queued
	go func() {
		defer close(done)
		defer nc.Close()
		for s := range out {
			nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			_, err := w.WriteString(s)
			queued.Add(-int64(len(s)))
			if err != nil {
				return
			}
			// Flush when nothing more is waiting: one write for a burst.
			if len(out) == 0 {
				if err := w.Flush(); err != nil {
					return
				}
			}
		}
		w.Flush()
	}()
}

// shutdown ends the session: it sends final (a stream error and/or the
// stream's end) and closes the connection once everything queued before
// it is written.
func (c *conn) shutdown(final string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.endLocked(final)
}

func (c *conn) endLocked(final string) {
	if c.closed {
		return
	}
	c.closed = true
	c.markGone()
	switch {
	case c.detached:
	case c.out == nil:
		c.writeNow(final)
		c.nc.Close()
	default:
		select {
		case c.out <- final:
		default:
		}
		close(c.out)
		c.out = nil
	}
}

func (c *conn) markGone() { c.goneOnce.Do(func() { close(c.gone) }) }
