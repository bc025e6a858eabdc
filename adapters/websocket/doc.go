// Package websocket carries XMPP over WebSocket (RFC 7395) into the same
// session layer as TCP: each WebSocket connection becomes a net.Conn whose
// bytes look like a TCP client's stream, and c2s serves it as it serves
// any other (SASL, bind, stream management with resumption, CSI). The
// transport is the only difference.
//
// The framing is translated both ways (framing.go): a client's <open/>
// becomes a stream header and <close/> its end, everything else it sends
// passes through, one message at a time; what the server writes is cut
// into top-level elements, one WebSocket message each, the stream header
// becoming <open/>, its end <close/>, and the stream namespaces declared
// on each element that needs them (§3.3.3). It also serves XEP-0156
// discovery (/.well-known/host-meta and host-meta.json).
//
// Invariants: a message from the client is bounded (MaxMessage) before
// it is read; the server's output is cut only at element boundaries, so
// no element is ever split across messages; the connection is closed
// when the session layer closes it, with <close/> when the stream ended
// cleanly.
package websocket
