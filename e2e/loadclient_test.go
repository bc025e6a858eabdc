package e2e

import (
	"bufio"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// loadClient is a minimal XMPP client for load generation only: STARTTLS,
// SCRAM-SHA-256, bind, then raw stanzas. Interop is tested with slixmpp;
// this one just needs to be cheap enough not to be the bottleneck. Given
// a ws:// or wss:// URL instead of an address it speaks XMPP over
// WebSocket (RFC 7395, loadclient_ws_test.go).
type loadClient struct {
	nc       net.Conn
	dec      *xml.Decoder
	w        *bufio.Writer
	ws       *websocket.Conn // over WebSocket: each send is one message; nc reads
	jid      string
	features string // of the last stream opened
	mech     string // SCRAM mechanism used at login
}

// saltedCache keeps SCRAM's PBKDF2 result per password and salt: the
// client's key stretching is not what a login benchmark measures.
var saltedCache sync.Map

func salted(h func() hash.Hash, password string, salt []byte, iter int) []byte {
	key := fmt.Sprint(h().Size()) + "\x00" + password + "\x00" + string(salt) + "\x00" + strconv.Itoa(iter)
	if v, ok := saltedCache.Load(key); ok {
		return v.([]byte)
	}
	k, _ := pbkdf2.Key(h, password, salt, iter, h().Size())
	saltedCache.Store(key, k)
	return k
}

// send writes one stanza or other element (over TCP, any run of them).
func (c *loadClient) send(s string) error {
	if c.ws != nil {
		return c.wsSend(s)
	}
	if _, err := c.w.WriteString(s); err != nil {
		return err
	}
	return c.w.Flush()
}

// next returns the next top-level element as a start element and its
// inner XML.
func (c *loadClient) next() (xml.StartElement, string, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return xml.StartElement{}, "", err
		}
		if st, ok := tok.(xml.StartElement); ok {
			if st.Name.Local == "stream" {
				continue
			}
			if st.Name.Space == nsFraming {
				// RFC 7395's <open/> stands for the stream header, and
				// <close/> for its end.
				if st.Name.Local == "close" {
					return st, "", io.EOF
				}
				continue
			}
			var inner struct {
				Inner string `xml:",innerxml"`
			}
			if err := c.dec.DecodeElement(&inner, &st); err != nil {
				return st, "", err
			}
			return st, inner.Inner, nil
		}
	}
}

func (c *loadClient) open(domain string) error {
	if c.ws != nil {
		return c.wsOpen(domain)
	}
	c.dec = xml.NewDecoder(c.nc)
	c.w = bufio.NewWriter(c.nc)
	if err := c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "' version='1.0'>"); err != nil {
		return err
	}
	st, inner, err := c.next()
	if err != nil || st.Name.Local != "features" {
		return fmt.Errorf("no features: %v", err)
	}
	c.features = inner
	return nil
}

// dialLogin connects to addr and logs in as user@domain with resource.
func dialLogin(addr, domain, user, password, resource string) (*loadClient, error) {
	c, err := dialAuth(addr, domain, user, password)
	if err != nil {
		return nil, err
	}
	c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.send("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>"); err != nil {
		c.nc.Close()
		return nil, err
	}
	if st, inner, err := c.next(); err != nil || st.Name.Local != "iq" || attr(st, "type") != "result" {
		c.nc.Close()
		return nil, fmt.Errorf("bind: %v %s", err, inner)
	}
	c.jid = user + "@" + domain + "/" + resource
	c.nc.SetDeadline(time.Time{})
	return c, nil
}

// dialAuth connects to addr and authenticates as user@domain: the stream
// after SASL is open, nothing bound.
func dialAuth(addr, domain, user, password string) (*loadClient, error) {
	var c *loadClient
	var err error
	if strings.HasPrefix(addr, "ws://") || strings.HasPrefix(addr, "wss://") {
		c, err = dialWS(addr, domain)
	} else {
		c, err = dialSTARTTLS(addr, domain)
	}
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*loadClient, error) { c.nc.Close(); return nil, err }
	// SCRAM-SHA-256 (RFC 7677) where offered, else SCRAM-SHA-1 (Prosody
	// 0.12 offers only that): the client side of RFC 5802.
	h, mech := sha256.New, "SCRAM-SHA-256"
	if !strings.Contains(c.features, ">SCRAM-SHA-256<") {
		h, mech = sha1.New, "SCRAM-SHA-1"
	}
	c.mech = mech
	nonceB := make([]byte, 18)
	rand.Read(nonceB)
	cnonce := base64.RawStdEncoding.EncodeToString(nonceB)
	first := "n=" + user + ",r=" + cnonce
	if err := c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mech + "'>" +
		base64.StdEncoding.EncodeToString([]byte("n,,"+first)) + "</auth>"); err != nil {
		return fail(err)
	}
	st, inner, err := c.next()
	if err != nil || st.Name.Local != "challenge" {
		return fail(fmt.Errorf("scram: %s %s %v", st.Name.Local, inner, err))
	}
	sf, _ := base64.StdEncoding.DecodeString(inner)
	attrs := map[string]string{}
	for _, kv := range strings.Split(string(sf), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			attrs[k] = v
		}
	}
	salt, _ := base64.StdEncoding.DecodeString(attrs["s"])
	iter, _ := strconv.Atoi(attrs["i"])
	sp := salted(h, password, salt, iter)
	withoutProof := "c=biws,r=" + attrs["r"]
	authMsg := first + "," + string(sf) + "," + withoutProof
	clientKey := mac(h, sp, "Client Key")
	sh := h()
	sh.Write(clientKey)
	sig := mac(h, sh.Sum(nil), authMsg)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	final := withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)
	if err := c.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64.StdEncoding.EncodeToString([]byte(final)) + "</response>"); err != nil {
		return fail(err)
	}
	if st, inner, err := c.next(); err != nil || st.Name.Local != "success" {
		return fail(fmt.Errorf("login %s: %s %s %v", user, st.Name.Local, inner, err))
	}
	if err := c.open(domain); err != nil {
		return fail(err)
	}
	c.nc.SetDeadline(time.Time{})
	return c, nil
}

// dialSTARTTLS connects to addr over TCP and returns with the stream
// opened over TLS; the deadline of the login is set.
func dialSTARTTLS(addr, domain string) (*loadClient, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := &loadClient{nc: nc}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	fail := func(err error) (*loadClient, error) { nc.Close(); return nil, err }
	if err := c.open(domain); err != nil {
		return fail(err)
	}
	if err := c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		return fail(err)
	}
	if st, _, err := c.next(); err != nil || st.Name.Local != "proceed" {
		return fail(fmt.Errorf("starttls: %v", err))
	}
	c.nc = tls.Client(nc, &tls.Config{InsecureSkipVerify: true, ServerName: domain})
	if err := c.open(domain); err != nil {
		return fail(err)
	}
	return c, nil
}

func mac(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func (c *loadClient) close() {
	if c.ws != nil {
		c.send(wsClose)
	} else {
		c.send("</stream:stream>")
	}
	c.nc.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, c.nc)
	c.nc.Close()
}

// registerAccount creates user@domain in-band (XEP-0077) over STARTTLS:
// how the benchmark makes accounts on servers it does not own the CLI of.
func registerAccount(addr, domain, user, password string) error {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	c := &loadClient{nc: nc}
	if err := c.open(domain); err != nil {
		return err
	}
	if err := c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		return err
	}
	if st, _, err := c.next(); err != nil || st.Name.Local != "proceed" {
		return fmt.Errorf("starttls: %v", err)
	}
	c.nc = tls.Client(nc, &tls.Config{InsecureSkipVerify: true, ServerName: domain})
	if err := c.open(domain); err != nil {
		return err
	}
	if err := c.send("<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>" + user +
		"</username><password>" + password + "</password></query></iq>"); err != nil {
		return err
	}
	st, inner, err := c.next()
	if err != nil {
		return err
	}
	for _, a := range st.Attr {
		if a.Name.Local == "type" && a.Value == "result" {
			return nil
		}
	}
	if strings.Contains(inner, "conflict") {
		return nil // made by an earlier run
	}
	return fmt.Errorf("register %s: %s", user, inner)
}

// errNoSM says a server does not offer XEP-0198 in its stream features:
// the chat benchmark reports that server's figure as not measured.
var errNoSM = errors.New("server does not offer stream management (urn:xmpp:sm:3) in its stream features")

// smClient is a loadClient with XEP-0198 stream management on: after bind it
// enables SM, then sends initial presence and enables carbons (XEP-0280). A
// reader goroutine counts inbound stanzas, answers the server's <r/> with
// <a h/>, and turns the server's <a h/> into per-stanza ack latencies. Every
// timed stanza is followed by an <r/>; at most cap(window) timed stanzas are
// unacked at once.
type smClient struct {
	*loadClient
	wmu    sync.Mutex // serialises writes
	mu     sync.Mutex // guards what follows
	out    uint32     // stanzas sent since <enable/>
	pend   []smPending
	acked  uint32 // the server's last h
	ackLat []time.Duration
	lastAt time.Time // when the last timed stanza was acked
	iqs    map[string]chan string
	dlvLat []time.Duration // delivery latencies of benchmark messages received
	window chan struct{}
	in     uint32 // stanzas received since <enabled/>; the reader's alone
	dlv    atomic.Int64
	dead   chan struct{} // closed when the reader stops; err says why
	err    error
	idle   time.Duration // longest silence the reader accepts
}

type smPending struct {
	seq   uint32
	at    time.Time
	timed bool
}

// dialSM logs in, enables SM, sends presence and enables carbons. window
// bounds the timed stanzas in flight.
func dialSM(addr, domain, user, password, resource string, window int) (*smClient, error) {
	c, err := dialLogin(addr, domain, user, password, resource)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(c.features, "urn:xmpp:sm:3") {
		c.close()
		return nil, errNoSM
	}
	s := &smClient{loadClient: c, iqs: map[string]chan string{}, window: make(chan struct{}, window),
		dead: make(chan struct{}), idle: 2 * time.Minute}
	c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.send("<enable xmlns='urn:xmpp:sm:3'/>"); err != nil {
		c.nc.Close()
		return nil, err
	}
	for {
		st, inner, err := c.next()
		if err != nil {
			c.nc.Close()
			return nil, fmt.Errorf("sm enable %s: %v", user, err)
		}
		if st.Name.Local == "enabled" {
			break
		}
		if st.Name.Local == "failed" {
			c.nc.Close()
			return nil, fmt.Errorf("sm enable %s: failed: %s", user, inner)
		}
	}
	c.nc.SetDeadline(time.Time{})
	go s.read()
	if err := s.write("<presence/>"); err != nil {
		s.close()
		return nil, err
	}
	if _, err := s.iq("carbons", "<iq type='set' id='carbons'><enable xmlns='urn:xmpp:carbons:2'/></iq>", 30*time.Second); err != nil {
		s.close()
		return nil, fmt.Errorf("carbons %s: %v", user, err)
	}
	return s, nil
}

// write sends one untimed stanza (counted by SM all the same).
func (s *smClient) write(stanza string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	s.out++
	s.pend = append(s.pend, smPending{seq: s.out, at: time.Now()})
	s.mu.Unlock()
	s.w.WriteString(stanza)
	return s.w.Flush()
}

// writeTimed waits for a window slot, then sends the stanza build makes
// (given the send time) followed by <r/>; its latency runs until an <a h/>
// covers it.
func (s *smClient) writeTimed(build func(now time.Time) string) error {
	t := time.NewTimer(s.idle)
	defer t.Stop()
	select {
	case s.window <- struct{}{}:
	case <-s.dead:
		return s.err
	case <-t.C:
		return fmt.Errorf("%s: no <a/> from the server for %v with %d stanzas unacked", s.jid, s.idle, cap(s.window))
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	now := time.Now()
	s.mu.Lock()
	s.out++
	s.pend = append(s.pend, smPending{seq: s.out, at: now, timed: true})
	s.mu.Unlock()
	s.w.WriteString(build(now))
	s.w.WriteString("<r xmlns='urn:xmpp:sm:3'/>")
	return s.w.Flush()
}

// iq sends an iq with the given id and waits for its answer's inner XML.
func (s *smClient) iq(id, stanza string, timeout time.Duration) (string, error) {
	ch := make(chan string, 1)
	s.mu.Lock()
	s.iqs[id] = ch
	s.mu.Unlock()
	if err := s.write(stanza); err != nil {
		return "", err
	}
	select {
	case inner := <-ch:
		return inner, nil
	case <-s.dead:
		return "", s.err
	case <-time.After(timeout):
		return "", fmt.Errorf("no answer to iq %s after %v", id, timeout)
	}
}

// read is the reader goroutine.
func (s *smClient) read() {
	defer close(s.dead)
	for {
		s.nc.SetReadDeadline(time.Now().Add(s.idle))
		st, inner, err := s.next()
		if err != nil {
			s.err = fmt.Errorf("%s: %v", s.jid, err)
			return
		}
		switch st.Name.Local {
		case "r":
			s.wmu.Lock()
			s.w.WriteString("<a xmlns='urn:xmpp:sm:3' h='" + strconv.FormatUint(uint64(s.in), 10) + "'/>")
			err = s.w.Flush()
			s.wmu.Unlock()
			if err != nil {
				s.err = err
				return
			}
		case "a":
			h64, err := strconv.ParseUint(attr(st, "h"), 10, 32)
			if err != nil {
				s.err = fmt.Errorf("%s: bad <a h/>: %v", s.jid, err)
				return
			}
			h, now := uint32(h64), time.Now()
			s.mu.Lock()
			k := 0
			for ; k < len(s.pend) && int32(h-s.pend[k].seq) >= 0; k++ {
				if s.pend[k].timed {
					s.ackLat = append(s.ackLat, now.Sub(s.pend[k].at))
					s.lastAt = now
					<-s.window
				}
			}
			s.pend = s.pend[k:]
			s.acked = h
			s.mu.Unlock()
		case "message", "presence", "iq":
			s.in++
			switch st.Name.Local {
			case "message":
				// Benchmark messages carry their send time in their id.
				if id := attr(st, "id"); strings.HasPrefix(id, "bm-") {
					ns, _, _ := strings.Cut(id[3:], "-")
					if n, err := strconv.ParseInt(ns, 10, 64); err == nil {
						s.mu.Lock()
						s.dlvLat = append(s.dlvLat, time.Since(time.Unix(0, n)))
						s.mu.Unlock()
						s.dlv.Add(1)
					}
				}
			case "iq":
				s.mu.Lock()
				ch := s.iqs[attr(st, "id")]
				delete(s.iqs, attr(st, "id"))
				s.mu.Unlock()
				if ch != nil {
					if attr(st, "type") == "error" {
						inner = "error: " + inner
					}
					ch <- inner
				}
			}
		case "error":
			s.err = fmt.Errorf("%s: stream error: %s", s.jid, inner)
			return
		case "failed":
			s.err = fmt.Errorf("%s: sm failed: %s", s.jid, inner)
			return
		}
	}
}

// drain waits until the server has acked every stanza sent.
func (s *smClient) drain(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		left := len(s.pend)
		s.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-s.dead:
			return s.err
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d stanzas still unacked after %v", s.jid, left, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// close ends the stream and waits briefly for the reader.
func (s *smClient) close() {
	s.wmu.Lock()
	s.w.WriteString("</stream:stream>")
	s.w.Flush()
	s.wmu.Unlock()
	select {
	case <-s.dead:
	case <-time.After(2 * time.Second):
	}
	s.nc.Close()
	<-s.dead
}

func attr(st xml.StartElement, name string) string {
	for _, a := range st.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}
