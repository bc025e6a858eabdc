package e2e

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// The load client's WebSocket transport (RFC 7395), for the benchmarks
// only. It carries the same stanzas as over TCP; what differs is the
// framing: <open/> and <close/> instead of the stream's header and end,
// each stanza one text message, namespaces declared on each (§3.3.3). It
// never does STARTTLS (§3.6): over wss:// TLS is the WebSocket's.
const (
	nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	wsClose   = "<close xmlns='" + nsFraming + "'/>"
	// wsSendTimeout bounds one message's write: a server that stops
	// reading fails the benchmark rather than hanging it.
	wsSendTimeout = 2 * time.Minute
)

// wsHTTP dials for every WebSocket of the load client: the servers'
// certificates are self-signed for localhost, as for STARTTLS.
var wsHTTP = &http.Client{Transport: &http.Transport{
	TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"},
	MaxIdleConnsPerHost: -1, // every connection is hijacked: none to keep
}}

// dialWS opens an XMPP stream over a WebSocket to url and returns with
// the server's features read; the deadline of the login is set. Reads go
// through websocket.NetConn, which runs the messages together into one
// byte stream for the decoder: each message is a complete element, so
// the elements come out whole. Writes go to the WebSocket directly, one
// message per send (NetConn would do the same, but the bufio.Writer of a
// TCP client would cut and join them).
func dialWS(url, domain string) (*loadClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient:      wsHTTP,
		Subprotocols:    []string{"xmpp"},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, fmt.Errorf("websocket %s: %w", url, err)
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if ws.Subprotocol() != "xmpp" {
		ws.CloseNow()
		return nil, fmt.Errorf("websocket %s: the server chose subprotocol %q, not xmpp (RFC 7395 §3.1)", url, ws.Subprotocol())
	}
	ws.SetReadLimit(1 << 20)
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageText)
	c := &loadClient{nc: nc, ws: ws, dec: xml.NewDecoder(nc)}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.open(domain); err != nil {
		nc.Close()
		return nil, err
	}
	if strings.Contains(c.features, "urn:ietf:params:xml:ns:xmpp-tls") {
		// §3.6: TLS is the WebSocket's; a server offering STARTTLS here
		// is not speaking RFC 7395.
		nc.Close()
		return nil, fmt.Errorf("websocket %s: the server offers STARTTLS: %s", url, c.features)
	}
	return c, nil
}

// wsOpen opens (or, after SASL, restarts) the stream and reads the
// features. One decoder serves every stream of the connection: the
// server sends nothing between <success/> and the new <open/>'s answer,
// and each message stands alone.
func (c *loadClient) wsOpen(domain string) error {
	if err := c.send("<open xmlns='" + nsFraming + "' to='" + domain + "' version='1.0'/>"); err != nil {
		return err
	}
	st, inner, err := c.next()
	if err != nil || st.Name.Local != "features" {
		return fmt.Errorf("no features: %s %v", st.Name.Local, err)
	}
	c.features = inner
	return nil
}

func (c *loadClient) wsSend(s string) error {
	ctx, cancel := context.WithTimeout(context.Background(), wsSendTimeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, []byte(s))
}

// sendStanzas sends a run of stanzas as fast as the transport takes
// them: over TCP in one write, over WebSocket one message each (RFC 7395
// §3.3.3), each then in the frame's single write and flush.
func (c *loadClient) sendStanzas(stanzas []string) error {
	if c.ws == nil {
		return c.send(strings.Join(stanzas, ""))
	}
	ctx, cancel := context.WithTimeout(context.Background(), wsSendTimeout)
	defer cancel()
	for _, s := range stanzas {
		if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
			return err
		}
	}
	return nil
}

// clientNS is what a stanza's start tag carries over this transport:
// over WebSocket each message declares its namespace (RFC 7395 §3.3.3);
// over TCP the stream header's default does.
func (c *loadClient) clientNS() string {
	if c.ws != nil {
		return " xmlns='jabber:client'"
	}
	return ""
}
