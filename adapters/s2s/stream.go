package s2s

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/wellformed"
)

// Namespaces of server-to-server streams.
const (
	nsServer          = "jabber:server"
	nsStream          = "http://etherx.jabber.org/streams"
	nsStreams         = "urn:ietf:params:xml:ns:xmpp-streams"
	nsTLS             = "urn:ietf:params:xml:ns:xmpp-tls"
	nsDialback        = "jabber:server:dialback"
	nsDialbackFeature = "urn:xmpp:features:dialback"
)

// errStreamEnd: the peer closed its stream.
var errStreamEnd = errors.New("s2s: stream closed by the peer")

// streamError is an RFC 6120 §4.9 stream error, ours or the peer's.
type streamError struct{ cond, text string }

func (e *streamError) Error() string { return "s2s: stream error " + e.cond + ": " + e.text }

func (e *streamError) xml() string {
	s := "<stream:error><" + e.cond + " xmlns='" + nsStreams + "'/>"
	if e.text != "" {
		s += "<text xmlns='" + nsStreams + "'>" + stanza.Escape(e.text) + "</text>"
	}
	return s + "</stream:error>"
}

// conn is one server-to-server connection: its framing, on TCP and then
// on TLS. One goroutine reads; writers are serialized (with bidi, the
// pool writes stanzas on an inbound stream its server answers on).
type conn struct {
	nc        net.Conn
	lr        *stanza.LimitReader
	dec       *wellformed.Decoder
	wmu       sync.Mutex
	w         *bufio.Writer
	maxStanza int
}

func newConn(nc net.Conn, maxStanza int) *conn {
	c := &conn{nc: nc, maxStanza: maxStanza}
	c.reset()
	return c
}

// reset starts reading and writing a new stream on c.nc (after TLS).
func (c *conn) reset() {
	c.lr = &stanza.LimitReader{R: c.nc, Max: c.maxStanza}
	c.dec = wellformed.NewDecoder(c.lr, wellformed.DefaultMaxDepth)
	c.wmu.Lock()
	c.w = bufio.NewWriter(c.nc)
	c.wmu.Unlock()
}

func (c *conn) send(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.w.WriteString(s); err != nil {
		return err
	}
	return c.w.Flush()
}

// sendAll writes ss in order and flushes once: what waited for a peer
// goes out in as few packets as the buffer allows.
func (c *conn) sendAll(ss []string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for _, s := range ss {
		if _, err := c.w.WriteString(s); err != nil {
			return err
		}
	}
	return c.w.Flush()
}

// header sends our stream header.
func (c *conn) header(from, to, id string) error {
	h := "<?xml version='1.0'?><stream:stream xmlns='" + nsServer + "' xmlns:stream='" + nsStream + "' xmlns:db='" + nsDialback +
		"' version='1.0'" + stanza.ToFrom(to, from)
	if id != "" {
		h += " id='" + stanza.Escape(id) + "'"
	}
	return c.send(h + ">")
}

// readHeader reads the peer's stream header: its from, to and id.
func (c *conn) readHeader(deadline time.Time) (from, to, id string, err error) {
	c.nc.SetReadDeadline(deadline)
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return "", "", "", fmt.Errorf("s2s: stream header: %w", err)
		}
		switch t := tok.(type) {
		case xml.ProcInst, xml.CharData:
			continue
		case xml.StartElement:
			if t.Name.Space != nsStream || t.Name.Local != "stream" {
				return "", "", "", &streamError{cond: "invalid-namespace"}
			}
			for _, a := range t.Attr {
				if a.Name.Space == "" {
					switch a.Name.Local {
					case "from":
						from = strings.ToLower(a.Value)
					case "to":
						to = strings.ToLower(a.Value)
					case "id":
						id = a.Value
					}
				}
			}
			return from, to, id, nil
		default:
			return "", "", "", &streamError{cond: "bad-format"}
		}
	}
}

// next reads the next top-level element before deadline.
func (c *conn) next(deadline time.Time) (*stanza.Element, error) {
	c.nc.SetReadDeadline(deadline)
	c.lr.Reset()
	for {
		begin := c.dec.InputOffset()
		tok, err := c.dec.Token()
		if err != nil {
			return nil, readError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var inner bytes.Buffer
			if err := c.dec.WriteInner(&inner, t); err != nil {
				return nil, readError(err)
			}
			if n := c.dec.InputOffset() - begin; n > int64(c.maxStanza) {
				return nil, &streamError{cond: "policy-violation", text: fmt.Sprintf("stanza of %d bytes: the limit is %d", n, c.maxStanza)}
			}
			return &stanza.Element{XMLName: t.Name, Attrs: stanza.OwnAttrs(t.Attr), Inner: inner.Bytes()}, nil
		case xml.EndElement:
			return nil, errStreamEnd
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, &streamError{cond: "not-well-formed", text: "text between stanzas"}
			}
		default:
			return nil, &streamError{cond: "restricted-xml"}
		}
	}
}

// readError is what a read error ends the stream with: the strict
// reader's condition for input that is not namespace-well-formed, the
// peer's own end, or the connection's error.
func readError(err error) error {
	var we *wellformed.Error
	switch {
	case errors.Is(err, stanza.ErrTooBig):
		return &streamError{cond: "policy-violation", text: "stanza too big"}
	case errors.As(err, &we):
		return &streamError{cond: we.Cond, text: we.Msg}
	case errors.Is(err, io.EOF):
		return errStreamEnd
	}
	return err
}

// fail ends the stream with a stream error and closes the connection.
func (c *conn) fail(se *streamError) {
	c.send(se.xml() + "</stream:stream>")
	c.nc.Close()
}
