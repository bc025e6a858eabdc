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
	"fmt"
	"hash"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadClient is a minimal XMPP client for load generation only: STARTTLS,
// SCRAM-SHA-256, bind, then raw stanzas. Interop is tested with slixmpp;
// this one just needs to be cheap enough not to be the bottleneck.
type loadClient struct {
	nc       net.Conn
	dec      *xml.Decoder
	w        *bufio.Writer
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

func (c *loadClient) send(s string) error {
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
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true, ServerName: domain})
	c.nc = tc
	if err := c.open(domain); err != nil {
		return fail(err)
	}
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
	if err := c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>"); err != nil {
		return fail(err)
	}
	if st, _, err := c.next(); err != nil || st.Name.Local != "iq" {
		return fail(fmt.Errorf("bind: %v", err))
	}
	c.jid = user + "@" + domain + "/" + resource
	nc.SetDeadline(time.Time{})
	return c, nil
}

func mac(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func (c *loadClient) close() {
	c.send("</stream:stream>")
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
