package c2s

import (
	"net"
	"strings"
)

// Metrics is told what the server does, for an operator's scrapes
// (adapters/metrics implements it). Its methods run on the sessions'
// paths: they must be quick and never block. Labels are from small fixed
// sets, never a user's name: transport is a Transport* constant, reason a
// SASL failure condition or "throttled", kind message, presence or iq.
type Metrics interface {
	// Connected counts a connection admitted on transport; closed counts
	// it closed, and may be called more than once.
	Connected(transport string) (closed func())
	LoggedIn(transport string)
	LoginFailed(transport, reason string)
	StanzaReceived(kind string)
	StanzaSent(kind string)
}

// Transports, the values Metrics gets.
const (
	TransportTCP       = "tcp"
	TransportWebSocket = "websocket"
)

type noMetrics struct{}

func (noMetrics) Connected(string) func()    { return func() {} }
func (noMetrics) LoggedIn(string)            {}
func (noMetrics) LoginFailed(string, string) {}
func (noMetrics) StanzaReceived(string)      {}
func (noMetrics) StanzaSent(string)          {}

// countConn counts nc, as admit returned it, in Metrics until it is
// closed: by whoever closes it, as the limits count it.
func (s *Server) countConn(nc net.Conn, transport string) {
	cc, ok := nc.(*countedConn)
	if !ok {
		return
	}
	release, closed := cc.release, s.cfg.Metrics.Connected(transport)
	cc.release = func() { release(); closed() }
}

// sentKind is the kind of a stanza this package serialized, for
// StanzaSent; "" for what is no stanza (stream features, SASL).
func sentKind(s string) string {
	switch {
	case strings.HasPrefix(s, "<message"):
		return "message"
	case strings.HasPrefix(s, "<presence"):
		return "presence"
	case strings.HasPrefix(s, "<iq"):
		return "iq"
	}
	return ""
}

// SessionCounts counts the bound sessions, detached ones waiting to be resumed
// included, by the transport they were bound on; read at scrape time.
func (s *Server) SessionCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, 2)
	for _, res := range s.sessions {
		for _, c := range res {
			out[c.transport]++
		}
	}
	return out
}
