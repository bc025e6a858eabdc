package s2s

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"time"
)

// Direct TLS (XEP-0368) on the inbound side: the one listener takes both
// kinds of stream, told apart by their first byte. A TLS connection
// begins with a handshake record (content type 22, RFC 8446 §5.1); an
// XMPP stream in the clear never does: 0x16 is no character XML allows.

// tlsHandshakeRecord is the first byte of a TLS ClientHello.
const tlsHandshakeRecord = 0x16

// directTLS reads the first byte of a new connection, by the negotiation
// timeout. If it begins a TLS handshake, the handshake is done at once
// (ALPN xmpp-server offered; a client certificate asked for as on
// STARTTLS, for EXTERNAL) and the stream is secure from its header on:
// no STARTTLS is offered (XEP-0368 §3). Otherwise c reads that byte
// again, and the stream goes on in the clear, to STARTTLS.
func (s *Server) directTLS(ctx context.Context, c *conn, in *inbound) error {
	deadline := time.Now().Add(s.cfg.Timeout)
	c.nc.SetReadDeadline(deadline)
	var first [1]byte
	if _, err := io.ReadFull(c.nc, first[:]); err != nil {
		return fmt.Errorf("s2s: nothing sent: %w", err)
	}
	c.nc = &peekedConn{Conn: c.nc, first: first[:]}
	if first[0] != tlsHandshakeRecord {
		c.reset()
		return nil
	}
	tc := tls.Server(c.nc, s.directTLSConfig)
	// One deadline from accept to the end of the handshake: a peer that
	// trickles the handshake gets no more time than one that stalls.
	tc.SetDeadline(deadline)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("s2s: direct TLS handshake: %w", err)
	}
	tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	s.cfg.Log.Debug("s2s direct TLS", "remote", in.remote, "server_name", st.ServerName, "alpn", st.NegotiatedProtocol)
	c.nc, in.secure = tc, true
	in.chain = st.PeerCertificates
	c.reset()
	return nil
}

// peekedConn gives back, on its first reads, the bytes read from Conn to
// tell direct TLS from a stream in the clear.
type peekedConn struct {
	net.Conn
	first []byte // not yet read again; one reader
}

func (p *peekedConn) Read(b []byte) (int, error) {
	if len(p.first) > 0 {
		n := copy(b, p.first)
		p.first = p.first[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}
