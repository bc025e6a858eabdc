package websocket

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/coder/websocket"
)

// Path is where the WebSocket endpoint is served.
const Path = "/xmpp-websocket"

// Sessions is the session layer that serves each connection
// (c2s.Server).
type Sessions interface {
	ServeConn(ctx context.Context, nc net.Conn, secure bool)
}

// Handler accepts XMPP over WebSocket at Path.
type Handler struct {
	ctx      context.Context // the server's lifetime: sessions outlive requests
	sessions Sessions
	// maxMessage bounds one message from a client: one stanza, bounded as
	// on TCP, with room for the framing.
	maxMessage int64
	// behindProxy: the listener is the loopback one a reverse proxy that
	// terminates TLS forwards to (--http-plaintext): its connections count
	// as secure, and the client's address is the proxy's
	// X-Forwarded-For.
	behindProxy bool
	log         *slog.Logger
}

// NewHandler returns the endpoint; maxStanza is the session layer's
// bound on a stanza.
func NewHandler(ctx context.Context, sessions Sessions, maxStanza int, behindProxy bool, log *slog.Logger) *Handler {
	if maxStanza <= 0 {
		maxStanza = 256 << 10 // c2s's default
	}
	return &Handler{ctx: ctx, sessions: sessions, maxMessage: int64(maxStanza) + 1024, behindProxy: behindProxy, log: log}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{"xmpp"},
		// Any origin: a web client is often served from another host than
		// the XMPP server's, and nothing is gained by a cross-site page
		// here: authentication is SASL inside the stream, never a cookie
		// or other credential the browser adds by itself.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept answered the request with the error
	}
	if ws.Subprotocol() != "xmpp" {
		ws.Close(websocket.StatusPolicyViolation, "the xmpp subprotocol is required (RFC 7395 §3.1)")
		return
	}
	ws.SetReadLimit(h.maxMessage)
	secure := r.TLS != nil || h.behindProxy
	h.sessions.ServeConn(h.ctx, newConn(ws, localAddr(r), h.clientAddr(r)), secure)
}

// clientAddr is where the client connects from: the request's peer, or
// behind the proxy the last address it forwarded for.
func (h *Handler) clientAddr(r *http.Request) net.Addr {
	s := r.RemoteAddr
	if h.behindProxy {
		if f := r.Header.Get("X-Forwarded-For"); f != "" {
			parts := strings.Split(f, ",")
			if ip, err := netip.ParseAddr(strings.TrimSpace(parts[len(parts)-1])); err == nil {
				s = netip.AddrPortFrom(ip, 0).String()
			}
		}
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return addr(s)
	}
	return net.TCPAddrFromAddrPort(ap)
}

func localAddr(r *http.Request) net.Addr {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a
	}
	return addr("websocket")
}

// addr is an address that is no IP address.
type addr string

func (a addr) Network() string { return "websocket" }
func (a addr) String() string  { return string(a) }

// HostMeta serves XEP-0156 discovery: /.well-known/host-meta (XRD) and
// /.well-known/host-meta.json name the WebSocket endpoint, as the client
// reached this listener.
type HostMeta struct {
	BehindProxy bool // trust X-Forwarded-Proto and X-Forwarded-Host
}

func (m HostMeta) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	scheme, host := "ws", r.Host
	if r.TLS != nil {
		scheme = "wss"
	}
	if m.BehindProxy {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "https" {
			scheme = "wss"
		}
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
			host = fh
		}
	}
	href := scheme + "://" + host + Path
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if strings.HasSuffix(r.URL.Path, ".json") {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"links": []map[string]string{{"rel": "urn:xmpp:alt-connections:websocket", "href": href}}})
		return
	}
	w.Header().Set("Content-Type", "application/xrd+xml")
	w.Write([]byte("<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n" +
		"  <Link rel='urn:xmpp:alt-connections:websocket' href='" + escape(href) + "'/>\n</XRD>\n"))
}
