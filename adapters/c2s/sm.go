package c2s

import (
	"bufio"
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/wellformed"
)

// Stream management (XEP-0198) and client state indication (XEP-0352).
const (
	nsSM  = "urn:xmpp:sm:3"
	nsCSI = "urn:xmpp:csi:0"
)

const ackRequest = "<r xmlns='" + nsSM + "'/>"

// DefaultMaxUnacked and DefaultMaxUnackedBytes bound what a session keeps
// for a client that does not acknowledge it, in stanzas and in bytes; past
// either the session ends (see traffic.go for why these values).
const (
	DefaultMaxUnacked      = 5000
	DefaultMaxUnackedBytes = 8 << 20
)

// ackEvery: under load, the server asks for an ack after this many
// unacknowledged stanzas; when the client keeps up, after each burst.
const ackEvery = 8

// smState is a session's outbound stream management state.
type smState struct {
	enabled   bool
	resumable bool
	count     uint32   // stanzas sent since <enabled/>, modulo 2^32
	unacked   []string // the last len(unacked) of them, not yet acknowledged
	bytes     int      // the length of unacked's stanzas together
	requested bool     // an <r/> is outstanding
	// maxItems and maxBytes bound unacked (0: the defaults).
	maxItems, maxBytes int
}

// errTooManyUnacked: the client left more unacknowledged than the server
// keeps (worded as ejabberd and Prosody word it).
var errTooManyUnacked = errors.New("too many unacked stanzas")

// sent keeps stanza until it is acknowledged. Past the bounds it keeps
// nothing more and reports why; one stanza is always kept, so that a
// bound below the largest stanza does not end every session.
func (s *smState) sent(stanza string) error {
	maxItems, maxBytes := cmp.Or(s.maxItems, DefaultMaxUnacked), cmp.Or(s.maxBytes, DefaultMaxUnackedBytes)
	switch {
	case len(s.unacked) >= maxItems:
		return fmt.Errorf("%w: more than %d", errTooManyUnacked, maxItems)
	case len(s.unacked) > 0 && s.bytes+len(stanza) > maxBytes:
		return fmt.Errorf("%w: more than %d bytes", errTooManyUnacked, maxBytes)
	}
	s.count++
	s.unacked = append(s.unacked, stanza)
	s.bytes += len(stanza)
	return nil
}

// drop forgets every unacknowledged stanza: the session is over and
// nothing will be sent again.
func (s *smState) drop() {
	s.unacked, s.bytes = nil, 0
}

// wantAck reports whether to ask for an ack now, given how many writes
// are queued for the client.
func (s *smState) wantAck(queued int) bool {
	if s.requested || len(s.unacked) == 0 || (len(s.unacked) < ackEvery && queued > 1) {
		return false
	}
	s.requested = true
	return true
}

var errHandledTooHigh = errors.New("the client acknowledged more stanzas than were sent")

// ack drops the stanzas the client says it handled (h counts all of
// them since <enabled/>). An h older than an earlier one changes nothing.
func (s *smState) ack(h uint32) error {
	pending := int32(s.count - h)
	switch {
	case pending < 0:
		return errHandledTooHigh
	case int(pending) > len(s.unacked):
		return nil
	}
	done := len(s.unacked) - int(pending)
	for _, x := range s.unacked[:done] {
		s.bytes -= len(x)
	}
	clear(s.unacked[:done])
	s.unacked = s.unacked[done:]
	if len(s.unacked) == 0 {
		s.unacked, s.bytes = nil, 0 // let the backing array go
	}
	s.requested = false
	return nil
}

// transport is a new connection that takes over a detached session.
type transport struct {
	nc     net.Conn
	lr     *stanza.LimitReader
	dec    *wellformed.Decoder
	w      *bufio.Writer
	secure bool
	id     string
	h      uint32 // what the client says it handled
}

// errHandedOver: the connection now carries a resumed session, whose
// goroutine owns it.
var errHandedOver = errors.New("c2s: connection handed over to a resumed session")

// errStreamClosed: the client closed its stream, ending the session.
var errStreamClosed = fmt.Errorf("c2s: the client closed the stream: %w", io.EOF)

// smElement handles a stream management or CSI element on a bound
// stream; ok is false when e is neither.
func (c *conn) smElement(e *element) (ok bool, err error) {
	switch e.XMLName {
	case xml.Name{Space: nsSM, Local: "r"}:
		if !c.smEnabled() {
			return true, &streamError{cond: "unsupported-stanza-type", text: "stream management is not enabled"}
		}
		return true, c.writeNonza(fmt.Sprintf("<a xmlns='%s' h='%d'/>", nsSM, c.handled))
	case xml.Name{Space: nsSM, Local: "a"}:
		h, perr := strconv.ParseUint(e.Attr("h"), 10, 32)
		if perr != nil {
			return true, &streamError{cond: "bad-format", text: "h is not a 32-bit count"}
		}
		c.wmu.Lock()
		err := c.sm.ack(uint32(h))
		c.wmu.Unlock()
		if err != nil {
			return true, &streamError{cond: "undefined-condition", text: err.Error()}
		}
		return true, nil
	case xml.Name{Space: nsSM, Local: "enable"}:
		return true, c.enableSM(e)
	case xml.Name{Space: nsSM, Local: "resume"}:
		return true, c.writeNonza("<failed xmlns='" + nsSM + "'><unexpected-request xmlns='" + nsStanzas + "'/></failed>")
	case xml.Name{Space: nsCSI, Local: "inactive"}:
		c.wmu.Lock()
		c.inactive = true
		c.wmu.Unlock()
		return true, nil
	case xml.Name{Space: nsCSI, Local: "active"}:
		c.wmu.Lock()
		c.inactive = false
		c.flushHeldLocked()
		c.wmu.Unlock()
		return true, nil
	}
	return false, nil
}

func (c *conn) smEnabled() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.sm.enabled
}

// enableSM turns stream management on (XEP-0198 §3). The resumption id is
// the session id, so archive IDs computed from it stay valid across
// resumptions.
func (c *conn) enableSM(e *element) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.sm.enabled {
		return c.writeLocked("<failed xmlns='"+nsSM+"'><unexpected-request xmlns='"+nsStanzas+"'/></failed>", false)
	}
	c.sm.enabled = true
	c.sm.maxItems, c.sm.maxBytes = c.srv.cfg.MaxUnacked, c.srv.cfg.MaxUnackedBytes
	c.handled = 0 // h counts from <enable/> on (XEP-0198 §4)
	resume := e.Attr("resume") == "true" || e.Attr("resume") == "1"
	if !resume || c.srv.cfg.ResumeTimeout <= 0 {
		return c.writeLocked("<enabled xmlns='"+nsSM+"'/>", false)
	}
	c.sm.resumable = true
	c.srv.mu.Lock()
	c.srv.resumable[c.sid] = c
	c.srv.mu.Unlock()
	return c.writeLocked(fmt.Sprintf("<enabled xmlns='%s' id='%s' resume='true' max='%d'/>",
		nsSM, c.sid, int(c.srv.cfg.ResumeTimeout/time.Second)), false)
}

// detach keeps a resumable session whose connection broke, so that a new
// connection can resume it. It reports false when the session ends
// instead: no resumption agreed, the client closed the stream, or the
// server ended it with a stream error.
func (c *conn) detach(err error) bool {
	var se *streamError
	if errors.Is(err, errStreamClosed) || errors.Is(err, errHandedOver) || (errors.As(err, &se) && se.cond != "connection-timeout") {
		return false
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.sm.resumable || c.closed {
		return false
	}
	c.detached = true
	if c.out != nil {
		close(c.out) // the writer ends and closes the connection
		c.out = nil
	}
	c.nc.Close()
	return true
}

// waitResume waits for a connection that resumes the session; nil when
// the time is up (the session then ends) or the server stops.
func (c *conn) waitResume(ctx context.Context) *transport {
	c.log.Info("session detached, waiting to be resumed", "jid", c.jid.String(), "for", c.srv.cfg.ResumeTimeout)
	t := time.NewTimer(c.srv.cfg.ResumeTimeout)
	defer t.Stop()
	select {
	case tr := <-c.resume:
		return tr
	case <-t.C:
		c.log.Info("detached session not resumed in time", "jid", c.jid.String())
	case <-ctx.Done():
	case <-c.gone:
	}
	c.shutdown("") // from now on offers find the session gone
	return nil
}

// attach puts the session on a resuming connection: it answers <resumed/>,
// sends again what the client did not acknowledge, and reads on.
func (c *conn) attach(ctx context.Context, t *transport) error {
	c.wmu.Lock()
	c.nc, c.lr, c.dec, c.w, c.secure, c.id = t.nc, t.lr, t.dec, t.w, t.secure, t.id
	if err := c.sm.ack(t.h); err != nil {
		c.closed, c.detached = true, false
		c.markGone()
		c.writeNow((&streamError{cond: "undefined-condition", text: err.Error()}).xml() + "</stream:stream>")
		c.wmu.Unlock()
		t.nc.Close()
		return errStreamClosed
	}
	c.detached = false
	// Written before the queue starts, so that however many stanzas wait
	// they go out in order, ahead of anything new.
	err := c.writeNow(fmt.Sprintf("<resumed xmlns='%s' previd='%s' h='%d'/>", nsSM, c.sid, c.handled))
	for _, s := range c.sm.unacked {
		if err != nil {
			break
		}
		err = c.writeNow(s)
	}
	c.sm.requested = false
	c.inactive = false // a new connection starts active (XEP-0352 §5)
	c.startQueueLocked()
	c.flushHeldLocked()
	if len(c.sm.unacked) > 0 && c.enqueue(ackRequest) {
		c.sm.requested = true
	}
	c.wmu.Unlock()
	c.log.Info("session resumed", "jid", c.jid.String(), "from", t.nc.RemoteAddr().String(), "resent", len(c.sm.unacked))
	if err != nil {
		return fmt.Errorf("c2s: resend after resumption: %w", err)
	}
	return c.stanzas(ctx)
}

// resumeSession handles <resume/> on a new authenticated stream: it hands
// this connection to the detached session it names. ok is false when it
// cannot (then the client may bind a new session on this stream).
func (c *conn) resumeSession(e *element) (ok bool, err error) {
	previd := e.Attr("previd")
	h, herr := strconv.ParseUint(e.Attr("h"), 10, 32)
	bare := c.user + "@" + c.domain
	s := c.srv
	s.mu.Lock()
	old := s.resumable[previd]
	lastH, expired := s.expired[previd]
	s.mu.Unlock()
	failed := func() (bool, error) {
		hAttr := ""
		if expired && lastH.bare == bare {
			hAttr = fmt.Sprintf(" h='%d'", lastH.handled)
		}
		return false, c.writeNonza("<failed xmlns='" + nsSM + "'" + hAttr + "><item-not-found xmlns='" + nsStanzas + "'/></failed>")
	}
	if herr != nil || old == nil || old.jid.Bare().String() != bare {
		return failed()
	}
	// Cut the old connection if the server has not noticed it broke: its
	// reader fails, the session detaches and takes this one.
	old.wmu.Lock()
	oldNC := old.nc
	old.wmu.Unlock()
	oldNC.Close()
	tr := &transport{nc: c.nc, lr: c.lr, dec: c.dec, w: c.w, secure: c.secure, id: c.id, h: uint32(h)}
	// Logged in: the resumed session reads through this connection's
	// reader from now on, without its login deadline.
	by := c.login.by.Swap(0)
	select {
	case old.resume <- tr:
		return true, nil
	case <-old.gone:
	case <-time.After(10 * time.Second):
		c.log.Warn("session to resume did not let go of its connection", "previd", clip(previd, 256))
	}
	c.login.by.Store(by)
	return failed()
}

// expiredSession is what is remembered of a resumable session that ended,
// so that a late <resume/> learns how far its stanzas got (XEP-0198 §5).
type expiredSession struct {
	bare    string
	handled uint32
}

// maxExpired bounds the remembered sessions.
const maxExpired = 4096

func (s *Server) forgetResumable(c *conn) {
	if !c.sm.resumable {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resumable[c.sid] == c {
		delete(s.resumable, c.sid)
	}
	if len(s.expired) >= maxExpired {
		s.expired = make(map[string]expiredSession)
	}
	s.expired[c.sid] = expiredSession{bare: c.jid.Bare().String(), handled: c.handled}
}
