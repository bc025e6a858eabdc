package c2s

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/connlimit"
	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/sasl"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/wellformed"
)

// Server accepts client connections.
type Server struct {
	cfg Config

	mu        sync.Mutex
	sessions  map[string]map[string]*conn // bare JID -> resource -> session
	resumable map[string]*conn            // session id -> session that may be resumed
	conns     map[*conn]struct{}          // every session being served, bound or not
	expired   map[string]expiredSession   // session id -> what a late resumption learns
	throttle  *throttle
	limits    *connlimit.Limits
	regs      *registrations
	refused   atomic.Int64 // connections refused by limits since last reported
	delivery  deliveryLocks
	appended  delivered            // archived messages delivered here, for the log follower (cluster.go)
	remote    remoteRooms          // the accounts' rooms at other servers
	caps      capsCache            // clients' capabilities by verification string (caps.go)
	ended     map[string]time.Time // bare JID -> when EndAccount last ended its sessions
	lists     *blockLists          // the block lists (blocklists.go); nil: no blocking
	remotes   remoteResources      // contacts' resources elsewhere, for PEP (remotecaps.go)
	awaited   awaitedIQs           // accounts' IQs to other servers awaiting answers (accountiq.go)
	lastSeen  sync.WaitGroup       // last activity being recorded (wentOffline)
}

// NewServer checks cfg and returns a server.
func NewServer(cfg Config) (*Server, error) {
	if len(cfg.Domains) == 0 {
		return nil, errors.New("c2s: no domain to serve")
	}
	if cfg.TLS == nil && !cfg.Plaintext {
		return nil, errors.New("c2s: neither TLS nor plaintext streams are allowed")
	}
	if cfg.Credentials == nil {
		return nil, errors.New("c2s: no credentials store")
	}
	if cfg.MaxStanza <= 0 {
		cfg.MaxStanza = 256 << 10
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	cfg.FailuresPerAccount = cmp.Or(cfg.FailuresPerAccount, 5)
	cfg.FailuresPerIP = cmp.Or(cfg.FailuresPerIP, 10)
	cfg.FailureDelay = cmp.Or(cfg.FailureDelay, time.Second)
	cfg.FailureDelayMax = max(cmp.Or(cfg.FailureDelayMax, 20*time.Second), cfg.FailureDelay)
	cfg.FailureWindow = cmp.Or(cfg.FailureWindow, 15*time.Minute)
	cfg.ThrottleKeys = cmp.Or(cfg.ThrottleKeys, 1<<16)
	cfg.ResumeTimeout = cmp.Or(cfg.ResumeTimeout, 300*time.Second)
	cfg.connDefaults()
	cfg.quotaDefaults()
	cfg.trafficDefaults()
	if len(cfg.Secret) < 16 {
		return nil, errors.New("c2s: the server secret is missing or shorter than 16 bytes")
	}
	if cfg.Mux == nil {
		cfg.Mux = mux.New()
	}
	s := &Server{cfg: cfg, sessions: make(map[string]map[string]*conn), resumable: make(map[string]*conn), conns: make(map[*conn]struct{}),
		expired: make(map[string]expiredSession), throttle: newThrottle(throttleConfig{
			freeAccount: cfg.FailuresPerAccount, freeAddress: cfg.FailuresPerIP,
			delay: cfg.FailureDelay, delayMax: cfg.FailureDelayMax, window: cfg.FailureWindow,
			maxKeys: cfg.ThrottleKeys, trusted: cfg.TrustedProxies,
		}),
		limits: connlimit.New(cfg.MaxConnections, cfg.MaxConnectionsPerIP),
		regs:   newRegistrations(cfg.RegistrationsPerAddress, cfg.RegistrationWindow, registrationKeys)}
	if cfg.Blocking != nil {
		s.lists = newBlockLists(cfg.Blocking.Blocklist)
	}
	s.registerBuiltins(cfg.Mux)
	return s, nil
}

// Serve accepts connections on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		ln.Close()
		// Every connection ends with the server (RFC 6120 §4.9.3.21);
		// detached sessions stop waiting on ctx themselves.
		s.services(func(svc mux.Service) {
			if sd, ok := svc.(mux.Stopper); ok {
				sd.Shutdown()
			}
		})
		s.leaveRemoteRooms()
		s.mu.Lock()
		conns := slices.Collect(maps.Keys(s.conns))
		s.mu.Unlock()
		for _, c := range conns {
			c.shutdown((&streamError{cond: "system-shutdown"}).xml() + "</stream:stream>")
		}
	}()
	go s.reportRefused(ctx)
	// Serve returns after the services' own work too: serve catches the
	// read models up once it returns, and what a service appended later
	// (an idle leave) would be missing from them.
	var runners sync.WaitGroup
	defer runners.Wait()
	s.services(func(svc mux.Service) {
		if r, ok := svc.(mux.Runner); ok {
			runners.Go(func() { r.Run(ctx) })
		}
	})
	// After the sessions, what their ends record.
	defer s.lastSeen.Wait()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := s.accept(ctx, ln)
		if err != nil {
			if ctx.Err() != nil {
				// Returns once the services were told (what they say on
				// the way out, to other servers too, is queued by then)
				// and every session ended.
				<-stopped
				return nil
			}
			return fmt.Errorf("c2s: accept: %w", err)
		}
		nc, ok := s.admit(nc)
		if !ok {
			continue
		}
		s.countConn(nc, TransportTCP)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, nc, false, TransportTCP)
		}()
	}
}

// ServeConn serves one client connection that came another way than
// Serve's listener (XMPP over WebSocket, RFC 7395) until its session
// ends, resumption included: the same limits, sessions and guarantees.
// Metrics count it as TransportWebSocket.
// secure: the transport is encrypted already, so STARTTLS is neither
// offered nor required. ctx is the server's: the session outlives the
// connection while it waits to be resumed.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn, secure bool) {
	nc, ok := s.admit(nc)
	if !ok {
		return
	}
	s.countConn(nc, TransportWebSocket)
	s.serveConn(ctx, nc, secure, TransportWebSocket)
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn, secure bool, via string) {
	c := &conn{srv: s, nc: nc, transport: via, log: s.cfg.Log.With("remote", nc.RemoteAddr().String()), secure: secure,
		resume: make(chan *transport), gone: make(chan struct{})}
	c.login.start(s.cfg.LoginTimeout)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	c.serve(ctx)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// conn is one client session: its connection from the first stream
// header to close and, with stream management (XEP-0198), the connections
// that resume it later. A resumed session keeps its conn, its goroutine and
// its state; only the transport (nc, lr, dec, w) is swapped.
type conn struct {
	srv *Server
	nc  net.Conn
	log *slog.Logger
	// transport is what the session was bound on (TransportTCP, ...), a
	// metrics label; a resumption on another transport does not change it.
	transport string

	lr     *stanza.LimitReader
	dec    *wellformed.Decoder
	w      *bufio.Writer
	secure bool
	domain string
	user   string // authenticated local part
	// authAt is when the SASL exchange that authenticated user began: a
	// bind after the account's sessions were ended since is refused.
	authAt time.Time
	jid    jid.JID // bound full JID
	id     string  // id of the current stream header we sent
	login  loginClock
	// sid is the session id: the id of the stream header on which the
	// resource was bound. Archive IDs of the session's messages and the
	// XEP-0198 resumption id are made from it, and it survives resumption.
	sid string

	available string // the last broadcast available presence, stamped; "" when unavailable (guarded by srv.mu)
	caps      capsOf // what the client can do (XEP-0115, caps.go; guarded by srv.mu)
	// lastStatus is the status of the session's unavailable presence, for
	// the account's last activity (XEP-0012; guarded by srv.mu).
	lastStatus string
	// availableEl is that presence as the client sent it, for
	// RefreshPresence to dress again (guarded by srv.mu).
	availableEl *element
	// presenceMu keeps the session's presence broadcasts in order: its own
	// and RefreshPresence's, run from another session's goroutine.
	presenceMu sync.Mutex
	// blocklist: the client asked for its block list, so it gets the
	// changes pushed (XEP-0191 §3.3).
	blocklist atomic.Bool

	// handled counts the stanzas from the client handled so far (XEP-0198
	// h); only the session's goroutine touches it.
	handled uint32

	wmu    sync.Mutex // guards everything below
	closed bool       // the session is over: nothing more is written
	// After bind, writes go through out to a writer goroutine, so that a
	// client that stops reading holds up nobody else: when out is full the
	// connection is dropped instead of waiting for it.
	out      chan string
	outDone  chan struct{}
	outBytes *atomic.Int64 // bytes in out and being written (traffic.go)
	detached bool          // stream management: the transport is gone, the session waits to be resumed
	sm       smState
	// XEP-0352: while the client says it is inactive, stanzas that are
	// not urgent wait in held.
	inactive  bool
	held      []string
	heldBytes int

	resume   chan *transport // a new connection taking the session over
	gone     chan struct{}   // closed when the session ends (replaced, shut down)
	goneOnce sync.Once
}

func (c *conn) serve(ctx context.Context) {
	err := c.run(ctx)
	if errors.Is(err, errHandedOver) {
		return // the resumed session's goroutine has the connection now
	}
	for c.detach(err) {
		t := c.waitResume(ctx)
		if t == nil {
			err = nil
			break
		}
		err = c.attach(ctx, t)
	}
	var se *streamError
	final := "</stream:stream>"
	switch {
	case errors.As(err, &se):
		c.log.Info("stream error", "condition", se.cond, "text", clip(se.text, 256), "jid", c.jid.String())
		final = se.xml() + final
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), err == nil:
	default:
		c.log.Debug("connection ended", "err", clip(err.Error(), 256))
	}
	if c.srv.cfg.Accounts != nil {
		c.srv.goneUnavailable(c)
	}
	c.srv.unbind(c)
	c.srv.sessionGone(c)
	c.srv.forgetResumable(c)
	c.shutdown(final)
	c.wmu.Lock()
	done, nc := c.outDone, c.nc
	c.wmu.Unlock()
	if done != nil {
		<-done
	}
	nc.Close()
}

// idleReader moves the read deadline forward before every read: any bytes
// from the client, whitespace keepalives (RFC 6120 §4.6.1) included, show
// that it is still there. Until the client is logged in, the deadline
// never passes the login deadline, however many bytes come.
type idleReader struct {
	nc    net.Conn
	idle  time.Duration
	login *loginClock
}

func (r idleReader) Read(p []byte) (int, error) {
	d, login := r.login.deadline(r.idle)
	r.nc.SetReadDeadline(d)
	n, err := r.nc.Read(p)
	var ne net.Error
	if login && errors.As(err, &ne) && ne.Timeout() {
		err = fmt.Errorf("%w: %w", errLoginTimeout, err)
	}
	return n, err
}

// restart begins a new stream on the (possibly now TLS) connection.
func (c *conn) restart() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.lr = &stanza.LimitReader{R: idleReader{c.nc, c.srv.cfg.IdleTimeout, &c.login}, Max: c.srv.cfg.MaxStanza}
	c.dec = wellformed.NewDecoder(c.lr, c.srv.cfg.MaxDepth)
	c.w = bufio.NewWriterSize(c.nc, 32<<10) // a MAM page (tens of KiB) in one TLS write
}

func (c *conn) run(ctx context.Context) error {
	c.restart()
	for {
		if err := c.openStream(); err != nil {
			return err
		}
		restart, err := c.negotiate(ctx)
		if err != nil {
			return err
		}
		if !restart {
			return c.stanzas(ctx)
		}
	}
}

// next reads the next top-level element, skipping white space (keepalives).
func (c *conn) next() (*element, error) {
	c.lr.Reset()
	for {
		begin := c.dec.InputOffset()
		tok, err := c.dec.Token()
		if err != nil {
			return nil, c.readError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			// The stanza is re-serialized from its tokens: whatever is
			// forwarded, stored or replayed is namespace-well-formed, so one
			// client cannot send another bytes its parser chokes on.
			var inner bytes.Buffer
			if err := c.dec.WriteInner(&inner, t); err != nil {
				return nil, c.readError(err)
			}
			// lr stops a stanza that never ends; the exact size is the
			// decoder's, which read-ahead does not blur.
			if n := c.dec.InputOffset() - begin; n > int64(c.srv.cfg.MaxStanza) {
				return nil, &streamError{cond: "policy-violation", text: fmt.Sprintf("stanza of %d bytes: the limit is %d", n, c.srv.cfg.MaxStanza)}
			}
			return &element{XMLName: t.Name, Attrs: stanza.OwnAttrs(t.Attr), Inner: inner.Bytes()}, nil
		case xml.EndElement:
			return nil, errStreamClosed // </stream:stream>
		case xml.CharData:
			if len(strings.TrimSpace(string(t))) > 0 {
				return nil, &streamError{cond: "not-well-formed", text: "text between stanzas"}
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			// RFC 6120 §11.1: no comments, processing instructions or DTDs.
			return nil, &streamError{cond: "restricted-xml"}
		}
	}
}

func (c *conn) readError(err error) error {
	var se *xml.SyntaxError
	var we *wellformed.Error
	var ne net.Error
	switch {
	case errors.Is(err, stanza.ErrTooBig):
		return &streamError{cond: "policy-violation", text: fmt.Sprintf("stanza larger than %d bytes", c.srv.cfg.MaxStanza)}
	case errors.Is(c.lr.Err, errLoginTimeout):
		return &streamError{cond: "connection-timeout", text: fmt.Sprintf("not logged in within %v", c.srv.cfg.LoginTimeout)}
	case errors.As(c.lr.Err, &ne) && ne.Timeout(), errors.As(err, &ne) && ne.Timeout():
		return &streamError{cond: "connection-timeout"}
	case c.lr.Err != nil:
		// The connection broke or the client hung up without closing the
		// stream: nothing to answer, and nobody to answer to.
		return io.EOF
	case errors.As(err, &we):
		return &streamError{cond: we.Cond, text: we.Msg}
	case errors.As(err, &se):
		return &streamError{cond: "not-well-formed", text: se.Msg}
	}
	return err
}

// openStream reads the client's stream header and answers with ours.
func (c *conn) openStream() error {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return c.readError(err)
		}
		switch t := tok.(type) {
		case xml.ProcInst, xml.CharData, xml.Comment:
			continue
		case xml.StartElement:
			return c.header(t)
		default:
			return &streamError{cond: "bad-format"}
		}
	}
}

func (c *conn) header(t xml.StartElement) error {
	c.id = stanza.NewID()
	to := ""
	for _, a := range t.Attr {
		if a.Name.Local == "to" && a.Name.Space == "" {
			to = strings.ToLower(a.Value)
		}
	}
	from := c.srv.cfg.Domains[0]
	if slices.Contains(c.srv.cfg.Domains, to) {
		from = to
	}
	// The header goes out even for a bad one: a stream error needs a stream.
	c.write(fmt.Sprintf(`<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' id='%s' from='%s' version='1.0' xml:lang='en'>`,
		nsClient, nsStream, c.id, stanza.Escape(from)))
	switch {
	case t.Name.Space != nsStream || t.Name.Local != "stream":
		return &streamError{cond: "invalid-namespace"}
	case !slices.Contains(c.srv.cfg.Domains, to):
		return &streamError{cond: "host-unknown", text: fmt.Sprintf("this server serves %s", strings.Join(c.srv.cfg.Domains, ", "))}
	case c.domain != "" && to != c.domain:
		return &streamError{cond: "host-unknown", text: "the domain changed during negotiation"}
	}
	c.domain = to
	return nil
}

// negotiate offers the features due at this point of the stream and runs
// the one the client picks. restart reports that a new stream follows
// (after TLS or SASL); false means the resource is bound and stanzas flow.
func (c *conn) negotiate(ctx context.Context) (restart bool, err error) {
	// STARTTLS is offered until the client authenticates (RFC 6120 §5.3.1)
	// and required unless plaintext streams are allowed (loopback only:
	// CheckPlaintext); then SASL is offered beside it.
	tlsOffered := !c.secure && c.srv.cfg.TLS != nil && c.user == ""
	tlsDue := tlsOffered && !c.srv.cfg.Plaintext
	var f strings.Builder
	f.WriteString("<stream:features>")
	switch {
	case tlsDue:
		f.WriteString("<starttls xmlns='" + nsTLS + "'><required/></starttls>")
	case c.user == "":
		if tlsOffered {
			f.WriteString("<starttls xmlns='" + nsTLS + "'/>")
		}
		f.WriteString("<mechanisms xmlns='" + nsSASL + "'>")
		for _, m := range sasl.Mechanisms {
			f.WriteString("<mechanism>" + m + "</mechanism>")
		}
		f.WriteString("</mechanisms>")
		if c.srv.cfg.Registration {
			f.WriteString("<register xmlns='" + nsRegisterFeature + "'/>")
		}
	default:
		f.WriteString("<bind xmlns='" + nsBind + "'/><session xmlns='" + nsSession + "'><optional/></session>")
		f.WriteString("<sm xmlns='" + nsSM + "'/><csi xmlns='" + nsCSI + "'/>")
	}
	f.WriteString("</stream:features>")
	if err := c.write(f.String()); err != nil {
		return false, err
	}
	for {
		e, err := c.next()
		if err != nil {
			return false, err
		}
		switch {
		case tlsOffered && e.XMLName == xml.Name{Space: nsTLS, Local: "starttls"}:
			return true, c.startTLS()
		case tlsDue:
			return false, &streamError{cond: "policy-violation", text: "STARTTLS is required"}
		case c.user == "" && e.XMLName == xml.Name{Space: nsSASL, Local: "auth"}:
			began := time.Now()
			ok, err := c.authenticate(ctx, e)
			if ok {
				c.authAt = began
			}
			if err != nil || ok {
				return ok, err
			}
			// A failed attempt: the client may try again on this stream.
		case c.user == "" && e.XMLName.Local == "iq" && isRegister(e):
			q, _ := e.Child()
			if _, err := c.register(ctx, e, q); err != nil {
				return false, err
			}
		case c.user == "":
			return false, &streamError{cond: "not-authorized", text: "authenticate first"}
		case e.XMLName == xml.Name{Space: nsSM, Local: "resume"}:
			resumed, err := c.resumeSession(e)
			if err != nil {
				return false, err
			}
			if resumed {
				return false, errHandedOver
			}
		case e.XMLName == xml.Name{Space: nsSM, Local: "enable"}:
			if err := c.write("<failed xmlns='" + nsSM + "'><unexpected-request xmlns='" + nsStanzas + "'/></failed>"); err != nil {
				return false, err
			}
		case e.XMLName.Local == "iq" && e.Attr("type") == "set":
			child, _ := e.Child()
			if child.XMLName != (xml.Name{Space: nsBind, Local: "bind"}) {
				c.write(c.errorReply(e, "cancel", "not-authorized"))
				continue
			}
			if bound, err := c.bind(e, &child); err != nil || bound {
				return false, err
			}
			// Refused: the client may try again (RFC 6120 §7.6.2).
		default:
			return false, &streamError{cond: "not-authorized", text: "bind a resource first"}
		}
	}
}

func (c *conn) startTLS() error {
	if err := c.write("<proceed xmlns='" + nsTLS + "'/>"); err != nil {
		return err
	}
	tc := tls.Server(c.nc, c.srv.cfg.TLS)
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("c2s: TLS handshake: %w", err)
	}
	tc.SetDeadline(time.Time{})
	c.wmu.Lock()
	c.nc, c.secure = tc, true
	c.wmu.Unlock()
	c.restart()
	return nil
}

func isRegister(e *element) bool {
	q, ok := e.Child()
	return ok && q.XMLName.Space == nsRegister && (e.Attr("type") == "get" || e.Attr("type") == "set")
}

func remoteHost(nc net.Conn) string {
	host, _, err := net.SplitHostPort(nc.RemoteAddr().String())
	if err != nil {
		return nc.RemoteAddr().String()
	}
	return host
}
