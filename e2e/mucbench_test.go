package e2e

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

// BenchmarkMUC is the group chat part of `make bench`: MUC fan-out on
// Annals (sealed and not, annalsVariants), Prosody (mod_muc, muc_mam) and
// ejabberd (mod_muc, MAM on every room) in one run, each archiving on
// SQLite. BenchmarkMUCRooms below is its other workload, on servers of its own.
//
// ANNALS_BENCH_MUC_ACCOUNTS accounts (default 50, u0..) log in twice each
// (plain TLS sessions, no stream management) and every session joins one
// room, room 'bench' on conference.localhost, created and configured as an
// instant room by u0's first session. On Annals both sessions of an account
// join with the same nick and the room has one occupant per account (the
// account is the occupant); on Prosody and ejabberd, where every session is
// an occupant, the sessions take two nicks (uN-a, uN-b), as two clients of
// one account that do not share a nick would. Both peers also accept one
// nick for two sessions of a bare JID (ANNALS_BENCH_MUC_PEER_NICKS=same).
// Either way every groupchat message is delivered to every session.
// ANNALS_BENCH_MUC_SERVERS (e.g. "annals,ejabberd") measures only those.
//
// ANNALS_BENCH_MUC_SENDERS sessions (default 10, of distinct accounts) each
// send ANNALS_BENCH_MUC_PER_SENDER groupchat messages (default 200),
// pipelined: at most ANNALS_BENCH_MUC_WINDOW (default 8) not yet reflected
// back to the sending session. A message's id and body carry its send
// time; every session counts the benchmark messages it receives and their
// latency from send to receipt. delivered/s is all sessions' receipts over
// the time from the first send to the last receipt.
//
// After the run it counts the archive rows the messages left in each
// server's SQLite database, per message sent.
//
// Quick run: ANNALS_BENCH_MUC_ACCOUNTS=10 ANNALS_BENCH_MUC_PER_SENDER=20 go test -run '^$' -bench 'MUC$' -benchtime 1x ./e2e/
func BenchmarkMUC(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	p := mucParams{
		rooms:     []string{"bench@conference.localhost"},
		accounts:  envInt(b, "ANNALS_BENCH_MUC_ACCOUNTS", 50),
		sessions:  2,
		senders:   envInt(b, "ANNALS_BENCH_MUC_SENDERS", 10),
		perSender: envInt(b, "ANNALS_BENCH_MUC_PER_SENDER", 200),
		window:    envInt(b, "ANNALS_BENCH_MUC_WINDOW", 8),
	}
	p.senders = min(p.senders, p.accounts)
	peerSameNick := os.Getenv("ANNALS_BENCH_MUC_PEER_NICKS") == "same"
	peerNicks := "two nicks per account (uN-a, uN-b): every session is an occupant"
	if peerSameNick {
		peerNicks = "one nick per account for both sessions"
	}
	runMUC(b, p, peerSameNick,
		fmt.Sprintf("muc: 1 room, %d accounts x %d sessions (plain TLS, no SM), %d senders x %d groupchat messages, window %d; room archive (MAM) on SQLite\n",
			p.accounts, p.sessions, p.senders, p.perSender, p.window)+
			fmt.Sprintf("  annals: one nick per account, the account is the occupant (%d occupants); peers: %s\n", p.accounts, peerNicks))
}

// BenchmarkMUCRooms is BenchmarkMUC's second workload, shaped like an
// independent load test of Annals: several rooms of single-session
// occupants, where every server has as many occupants as sessions.
//
// ANNALS_BENCH_MUC_ROOMS rooms (default 5; bench0.. on conference.localhost)
// each get ANNALS_BENCH_MUC_ROOMS_OCCUPANTS accounts of their own (default
// 20; room r has u(20r)..u(20r+19)), each logged in once over STARTTLS (no
// stream management) and joined with its own nick; the first occupant of a
// room creates it as an instant room. ANNALS_BENCH_MUC_ROOMS_SENDERS
// occupants of each room (default 2) each send
// ANNALS_BENCH_MUC_ROOMS_PER_SENDER groupchat messages (default 200) to
// their room, all rooms at once, pipelined with ANNALS_BENCH_MUC_WINDOW as
// in BenchmarkMUC. Every occupant counts the messages of its room it
// receives (its own reflections included) and their latency from send to
// receipt; delivered/s is messages x occupants per room over the time from
// the first send to the last receipt. Figures, archive counts and the
// annals/best-peer ratio are reported as BenchmarkMUC reports them, on
// servers started again for this workload (ANNALS_BENCH_MUC_SERVERS applies).
//
// Only this one: go test -run '^$' -bench MUCRooms -benchtime 1x ./e2e/
func BenchmarkMUCRooms(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	p := mucParams{
		accounts:  envInt(b, "ANNALS_BENCH_MUC_ROOMS_OCCUPANTS", 20),
		sessions:  1,
		senders:   envInt(b, "ANNALS_BENCH_MUC_ROOMS_SENDERS", 2),
		perSender: envInt(b, "ANNALS_BENCH_MUC_ROOMS_PER_SENDER", 200),
		window:    envInt(b, "ANNALS_BENCH_MUC_WINDOW", 8),
	}
	for r := range envInt(b, "ANNALS_BENCH_MUC_ROOMS", 5) {
		p.rooms = append(p.rooms, "bench"+strconv.Itoa(r)+"@conference.localhost")
	}
	p.senders = min(p.senders, p.accounts)
	runMUC(b, p, false,
		fmt.Sprintf("muc rooms: %d rooms x %d accounts x 1 session (STARTTLS, no SM), %d senders per room x %d groupchat messages, window %d; room archive (MAM) on SQLite\n",
			len(p.rooms), p.accounts, p.senders, p.perSender, p.window)+
			fmt.Sprintf("  every server: one nick per account, every session an occupant (%d occupants in all)\n", len(p.rooms)*p.accounts))
}

type mucParams struct {
	rooms                      []string // each with accounts of its own
	accounts, sessions         int      // accounts per room, sessions per account
	senders, perSender, window int      // senders per room
	addr                       string
	addrOf                     func(account int) string // where an account's sessions log in, if not addr
	mark                       func(end bool)           // called as the timed part starts and ends; may be nil
	sameNick                   bool                     // the sessions of an account take one nick
	cpu                        func() time.Duration
}

type mucFigures struct {
	sent, expected, delivered, dups int
	stray                           int // messages received from a session outside the receiver's room
	errs                            int
	firstErr                        string
	elapsed, cpu, clientCPU         time.Duration // CPU time of the server and of this client, from the first send to the last receipt
	rate                            float64
	p50, p99                        time.Duration
}

// mucSession is one logged-in session: after login it reads the stream raw
// (rawStanzas), not with encoding/xml, so that the client's parsing is not
// what limits the delivery rate; its reader goroutine counts benchmark
// groupchat messages and hands self-presences and iqs to the joiner.
type mucSession struct {
	*loadClient
	idx     int    // index of the session in the run; carried in the ids it sends
	nick    string // the nick it joins with
	room    string // the room it joins and sends to
	peers   [2]int // the indices of its room's sessions: peers[0] <= idx < peers[1]
	ctl     chan []byte
	window  chan struct{} // slots for this session's messages not yet reflected
	dlv     atomic.Int64
	lastAt  atomic.Int64 // UnixNano of the last benchmark message received
	mu      sync.Mutex   // guards lat, seen, dups, stray, errs, first
	lat     []time.Duration
	seen    map[uint64]struct{}
	dups    int
	stray   int
	errs    int
	first   string
	dead    chan struct{}
	readErr error
}

func (m *mucSession) read() {
	defer close(m.dead)
	r := &rawStanzas{r: m.nc, buf: make([]byte, 0, 64<<10), tag: -1}
	for {
		st, err := r.next()
		if err != nil {
			m.readErr = err
			return
		}
		switch {
		case hasPrefix(st, "<message"):
			head := startTag(st)
			if strings.Contains(head, "type='error'") || strings.Contains(head, `type="error"`) {
				m.error(st)
				continue
			}
			if !strings.Contains(head, "groupchat") {
				continue
			}
			i := strings.Index(string(st), "bm-")
			if i < 0 {
				continue // the subject, or something else not ours
			}
			ns, sess, k, ok := parseMUCToken(string(st[i:]))
			if !ok {
				continue
			}
			now := time.Now()
			key := uint64(sess)<<32 | uint64(k)
			m.mu.Lock()
			if sess < m.peers[0] || sess >= m.peers[1] {
				m.stray++ // another room's message: not counted as delivered
				m.mu.Unlock()
				continue
			}
			if _, dup := m.seen[key]; dup {
				m.dups++
				m.mu.Unlock()
				continue
			}
			m.seen[key] = struct{}{}
			m.lat = append(m.lat, now.Sub(time.Unix(0, ns)))
			m.mu.Unlock()
			m.lastAt.Store(now.UnixNano())
			m.dlv.Add(1)
			if sess == m.idx {
				select {
				case <-m.window:
				default:
				}
			}
		case hasPrefix(st, "<presence"):
			head := startTag(st)
			if strings.Contains(head, "type='error'") || strings.Contains(head, `type="error"`) {
				m.error(st)
				select {
				case m.ctl <- st:
				default:
				}
			} else if strings.Contains(string(st), "code='110'") || strings.Contains(string(st), `code="110"`) {
				select {
				case m.ctl <- st:
				default:
				}
			}
		case hasPrefix(st, "<iq"):
			select {
			case m.ctl <- st:
			default:
			}
		case hasPrefix(st, "<stream:error"), hasPrefix(st, "<error"):
			m.readErr = fmt.Errorf("%s: stream error: %s", m.jid, st)
			return
		}
	}
}

func (m *mucSession) error(st []byte) {
	m.mu.Lock()
	m.errs++
	if m.first == "" {
		m.first = string(st)
	}
	m.mu.Unlock()
}

// await waits for a control stanza (self-presence or iq) that ok accepts.
func (m *mucSession) await(what string, timeout time.Duration, ok func(string) bool) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case st := <-m.ctl:
			s := string(st)
			if strings.Contains(startTag(st), "type='error'") || strings.Contains(startTag(st), `type="error"`) {
				return s, fmt.Errorf("%s: %s: %s", m.jid, what, s)
			}
			if ok(s) {
				return s, nil
			}
		case <-m.dead:
			return "", fmt.Errorf("%s: %s: %v", m.jid, what, m.readErr)
		case <-t.C:
			return "", fmt.Errorf("%s: %s: nothing after %v", m.jid, what, timeout)
		}
	}
}

// join sends the MUC join presence (no history) and waits for the
// self-presence; the room's creator also configures it as an instant room.
func (m *mucSession) join(room string) error {
	if err := m.send("<presence to='" + room + "/" + m.nick + "'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"); err != nil {
		return err
	}
	self, err := m.await("join "+room, time.Minute, func(s string) bool { return strings.HasPrefix(s, "<presence") })
	if err != nil {
		return err
	}
	if !strings.Contains(self, "code='201'") && !strings.Contains(self, `code="201"`) {
		return nil
	}
	if err := m.send("<iq type='set' to='" + room + "' id='mucbench-config'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>"); err != nil {
		return err
	}
	_, err = m.await("configure "+room, time.Minute, func(s string) bool {
		return strings.Contains(s, "'mucbench-config'") || strings.Contains(s, `"mucbench-config"`)
	})
	return err
}

// benchMUC runs the load on the len(p.rooms) x p.accounts accounts made by
// makeAccountsN.
func benchMUC(p mucParams) (mucFigures, error) {
	perRoom := p.accounts * p.sessions // sessions in each room
	n := len(p.rooms) * perRoom
	sess := make([]*mucSession, n)
	defer func() {
		var wg sync.WaitGroup
		for _, m := range sess {
			if m != nil {
				wg.Add(1)
				go func() { defer wg.Done(); m.close(); <-m.dead }()
			}
		}
		wg.Wait()
	}()
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	// Session i is account i/sessions' session i%sessions; account a is in
	// room a/accounts.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a, k := i/p.sessions, i%p.sessions
			addr := p.addr
			if p.addrOf != nil {
				addr = p.addrOf(a)
			}
			c, err := dialLogin(addr, "localhost", "u"+strconv.Itoa(a), "pw"+strconv.Itoa(a), "muc"+strconv.Itoa(k))
			if err != nil {
				fail(err)
				return
			}
			nick := "u" + strconv.Itoa(a)
			if p.sessions > 1 && !p.sameNick {
				nick += "-" + string(rune('a'+k))
			}
			m := &mucSession{loadClient: c, idx: i, nick: nick, room: p.rooms[a/p.accounts],
				peers: [2]int{i - i%perRoom, i - i%perRoom + perRoom}, ctl: make(chan []byte, 256),
				window: make(chan struct{}, p.window), seen: map[uint64]struct{}{}, dead: make(chan struct{})}
			go m.read()
			if err := m.send("<presence/>"); err != nil {
				fail(err)
			}
			sess[i] = m
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return mucFigures{}, firstErr
	}
	// Each room's creator (its first session) first, then everyone else,
	// a few at a time.
	for r := range p.rooms {
		if err := sess[r*perRoom].join(p.rooms[r]); err != nil {
			return mucFigures{}, err
		}
	}
	sem = make(chan struct{}, 8)
	for i, m := range sess {
		if i%perRoom == 0 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := m.join(m.room); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return mucFigures{}, firstErr
	}
	// Let the last joins' presence broadcasts settle.
	time.Sleep(time.Second)

	// Senders: the first session of accounts spread over each room.
	var senders []*mucSession
	for r := range p.rooms {
		for j := 0; j < p.senders; j++ {
			senders = append(senders, sess[r*perRoom+(j*p.accounts/p.senders)*p.sessions])
		}
	}
	f := mucFigures{sent: len(senders) * p.perSender}
	f.expected = f.sent * perRoom
	if p.mark != nil {
		p.mark(false)
	}
	cpu0, client0 := p.cpu(), procCPU(os.Getpid())
	start := time.Now()
	for _, m := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < p.perSender; k++ {
				select {
				case m.window <- struct{}{}:
				case <-m.dead:
					fail(fmt.Errorf("%s: %v", m.jid, m.readErr))
					return
				case <-time.After(2 * time.Minute):
					fail(fmt.Errorf("%s: none of its %d messages in flight came back in 2 minutes", m.jid, p.window))
					return
				}
				ns := time.Now().UnixNano()
				tok := fmt.Sprintf("bm-%d-%d-%d", ns, m.idx, k)
				if err := m.send("<message to='" + m.room + "' type='groupchat' id='" + tok + "'><body>" + tok +
					" groupchat message " + strconv.Itoa(k) + " of the MUC benchmark</body></message>"); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Wait for every delivery, or until nothing arrived for 30 s. A
	// message refused with an error reaches nobody.
	total := func() int {
		t := 0
		for _, m := range sess {
			t += int(m.dlv.Load())
			m.mu.Lock()
			t += m.errs * perRoom
			m.mu.Unlock()
		}
		return t
	}
	last, lastChange := -1, time.Now()
	for {
		t := total()
		if t >= f.expected {
			break
		}
		if t != last {
			last, lastChange = t, time.Now()
		} else if time.Since(lastChange) > 30*time.Second {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if c := p.cpu(); cpu0 > 0 {
		f.cpu = c - cpu0
	}
	f.clientCPU = procCPU(os.Getpid()) - client0
	if p.mark != nil {
		p.mark(true)
	}
	var lat []time.Duration
	var end int64
	for _, m := range sess {
		m.mu.Lock()
		lat = append(lat, m.lat...)
		f.dups += m.dups
		f.stray += m.stray
		f.errs += m.errs
		if f.firstErr == "" {
			f.firstErr = m.first
		}
		m.mu.Unlock()
		end = max(end, m.lastAt.Load())
	}
	f.delivered = len(lat)
	f.elapsed = time.Unix(0, end).Sub(start)
	f.rate = float64(f.delivered) / f.elapsed.Seconds()
	f.p50, f.p99 = percentile(lat, 50), percentile(lat, 99)
	if firstErr == nil && f.stray > 0 {
		firstErr = fmt.Errorf("%d messages reached sessions outside the sender's room", f.stray)
	}
	if firstErr == nil && f.delivered < f.expected {
		why := "after 30 s without progress"
		if f.errs > 0 {
			why = fmt.Sprintf("with %d error stanzas, first: %s", f.errs, f.firstErr)
		}
		firstErr = fmt.Errorf("%d of %d deliveries (%d messages x %d sessions in their room) %s", f.delivered, f.expected, f.sent, perRoom, why)
	}
	return f, firstErr
}

// parseMUCToken reads bm-<unix ns>-<session>-<k> at the start of s.
func parseMUCToken(s string) (ns int64, sess, k int, ok bool) {
	s = s[3:]
	var parts [3]int64
	for j := range parts {
		e := 0
		for e < len(s) && s[e] >= '0' && s[e] <= '9' {
			e++
		}
		if e == 0 {
			return 0, 0, 0, false
		}
		v, err := strconv.ParseInt(s[:e], 10, 64)
		if err != nil {
			return 0, 0, 0, false
		}
		parts[j] = v
		s = s[e:]
		if j < 2 {
			if len(s) == 0 || s[0] != '-' {
				return 0, 0, 0, false
			}
			s = s[1:]
		}
	}
	return parts[0], int(parts[1]), int(parts[2]), true
}

// rawStanzas splits a stream, past its header, into top-level elements
// without decoding them: it tracks tags (quotes included) and depth only.
type rawStanzas struct {
	r     io.Reader
	buf   []byte
	pos   int  // next byte to scan
	depth int  // open elements below the stream
	tag   int  // start of the tag being scanned, -1 outside tags
	quote byte // the quote of the attribute value being scanned
	elem  int  // start of the current top-level element
}

func (r *rawStanzas) next() ([]byte, error) {
	for {
		for ; r.pos < len(r.buf); r.pos++ {
			c := r.buf[r.pos]
			if r.tag < 0 {
				if c == '<' {
					r.tag = r.pos
				}
				continue
			}
			if r.quote != 0 {
				if c == r.quote {
					r.quote = 0
				}
				continue
			}
			switch c {
			case '\'', '"':
				r.quote = c
				continue
			case '>':
			default:
				continue
			}
			start := r.tag
			r.tag = -1
			if r.pos-start < 1 {
				continue
			}
			switch r.buf[start+1] {
			case '?', '!':
				continue
			case '/':
				r.depth--
				if r.depth < 0 {
					return nil, io.EOF // </stream:stream>
				}
				if r.depth == 0 {
					return r.take(r.elem)
				}
				continue
			}
			if r.buf[r.pos-1] == '/' {
				if r.depth == 0 {
					return r.take(start)
				}
				continue
			}
			if r.depth == 0 {
				r.elem = start
			}
			r.depth++
		}
		// Keep the unfinished element (or tag) only.
		keep := len(r.buf)
		if r.depth > 0 {
			keep = r.elem
		} else if r.tag >= 0 {
			keep = r.tag
		}
		if keep > 0 {
			n := copy(r.buf, r.buf[keep:])
			r.buf = r.buf[:n]
			r.pos -= keep
			r.elem -= keep
			if r.tag >= 0 {
				r.tag -= keep
			}
		}
		if len(r.buf) == cap(r.buf) {
			r.buf = append(r.buf, make([]byte, cap(r.buf))...)[:len(r.buf)]
		}
		n, err := r.r.Read(r.buf[len(r.buf):cap(r.buf)])
		r.buf = r.buf[:len(r.buf)+n]
		if n == 0 && err != nil {
			return nil, err
		}
	}
}

// take returns buf[from:pos+1] as a copy and moves past it.
func (r *rawStanzas) take(from int) ([]byte, error) {
	out := append([]byte(nil), r.buf[from:r.pos+1]...)
	r.pos++
	return out, nil
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// startTag is the start tag of a raw element.
func startTag(b []byte) string {
	var q byte
	for i, c := range b {
		switch {
		case q != 0:
			if c == q {
				q = 0
			}
		case c == '\'' || c == '"':
			q = c
		case c == '>':
			return string(b[:i+1])
		}
	}
	return string(b)
}
