package websocket

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// conn is a WebSocket connection as a byte stream: what the session layer
// reads is the client's messages translated (fromClient), what it writes
// is cut into elements and sent one message each (splitter).
type conn struct {
	ws     *websocket.Conn
	local  net.Addr
	remote net.Addr
	// The deadlines, in Unix nanoseconds (0: none), set from any
	// goroutine while a read or write may be under way.
	readDL, writeDL atomic.Int64

	rmu     sync.Mutex
	unread  []byte
	readErr error

	wmu   sync.Mutex
	split splitter

	closeOnce sync.Once
	closed    chan struct{}
	cleanEnd  bool // the stream ended with </stream:stream>: close normally
}

func newConn(ws *websocket.Conn, local, remote net.Addr) *conn {
	return &conn{ws: ws, local: local, remote: remote, closed: make(chan struct{})}
}

// timeoutError is a deadline passing, as net.Conn reports it.
type timeoutError struct{}

func (timeoutError) Error() string   { return "websocket: i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Unwrap() error   { return os.ErrDeadlineExceeded }

func (c *conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.unread) == 0 {
		if c.readErr != nil {
			return 0, c.readErr
		}
		ctx, cancel := withDeadline(c.readDL.Load())
		typ, msg, err := c.ws.Read(ctx)
		cancel()
		switch {
		case err != nil && errors.Is(err, context.DeadlineExceeded):
			// The library closes the connection when a read's context
			// ends: the session is over either way (connection-timeout).
			c.readErr = timeoutError{}
			return 0, c.readErr
		case err != nil:
			c.readErr = err
			return 0, err
		case typ != websocket.MessageText:
			// RFC 7395 §3.2: XMPP over WebSocket is text messages.
			c.readErr = errors.New("websocket: a binary message")
			return 0, c.readErr
		}
		if c.unread, err = fromClient(msg); err != nil {
			c.readErr = err
			return 0, err
		}
	}
	n := copy(p, c.unread)
	c.unread = c.unread[n:]
	return n, nil
}

func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	ctx, cancel := withDeadline(c.writeDL.Load())
	defer cancel()
	for _, m := range c.split.feed(p) {
		if string(m) == "<close xmlns='"+nsFraming+"'/>" {
			c.cleanEnd = true
		}
		if err := c.ws.Write(ctx, websocket.MessageText, m); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return 0, timeoutError{}
			}
			return 0, err
		}
	}
	return len(p), nil
}

// Close ends the WebSocket: normally after the stream's end, else as
// going away.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.wmu.Lock()
		clean := c.cleanEnd
		c.wmu.Unlock()
		if clean {
			// Not waiting for the client's answer to the close: the
			// session layer is done with it.
			go c.ws.Close(websocket.StatusNormalClosure, "")
			return
		}
		c.ws.CloseNow()
	})
	return nil
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline applies to the next read, not one under way: the
// session layer sets it before each read.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.readDL.Store(nanos(t))
	return nil
}

// SetWriteDeadline applies to the next write.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.writeDL.Store(nanos(t))
	return nil
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// withDeadline is a context that ends at the deadline d (Unix
// nanoseconds), or never for 0.
func withDeadline(d int64) (context.Context, context.CancelFunc) {
	if d == 0 {
		return context.Background(), func() {}
	}
	return context.WithDeadline(context.Background(), time.Unix(0, d))
}
