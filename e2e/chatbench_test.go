package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkChat is the chat half of `make bench`: Annals, Prosody and
// ejabberd on this machine in the same run, each with MAM on SQLite
// archiving every message on both sides, carbons and stream management
// (XEP-0198) on, driven by the same client (smClient). Annals runs as
// each of annalsVariants: as served by default (content sealed in the
// log), which is compared with the peers, and with --seal-content=false,
// in the chat part only.
//
//   - chat: 100 pairs; each sender sends ANNALS_BENCH_CHAT_PER_SENDER
//     messages (default 100) to its partner's bare JID, at most 32 unacked
//     at once, each followed by <r/>. A message's latency runs from writing
//     it to the server's <a h/> covering it; msgs/s counts SM-acked
//     messages. Delivery latency (write to the partner reading it) is
//     reported beside it. Every client sends presence, enables carbons and
//     answers the server's <r/>.
//   - mam: one account's archive holds ANNALS_BENCH_MAM_N messages (default
//     1,000,000); ANNALS_BENCH_MAM_QUERIES "last 50 messages" queries
//     (default 500, after 10 unmeasured) from ANNALS_BENCH_MAM_CLIENTS
//     clients (default 1, one query at a time each), each timed until the
//     <fin/> iq result. Annals' archive is loaded over XMPP
//     (loadAnnalsArchive), for at most ANNALS_BENCH_MAM_LOAD_LIMIT (default
//     10m); the peers cannot take 1M messages at their ~250 msgs/s in that
//     time, so their archive rows are written into their SQLite databases
//     while they are stopped, copied from the rows one real message made
//     (loadProsodyArchive, loadEjabberdArchive). The peers get as many
//     messages as Annals took.
//
// A server that does not offer urn:xmpp:sm:3 is reported as not measured.
// Quick run: ANNALS_BENCH_MAM_N=20000 go test -run '^$' -bench Chat -benchtime 1x ./e2e/
func BenchmarkChat(b *testing.B) {
	// The load client's own collections add noise to every server's
	// latency alike; fewer of them sharpen the figures.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	perSender := envInt(b, "ANNALS_BENCH_CHAT_PER_SENDER", 100)
	mamN := envInt(b, "ANNALS_BENCH_MAM_N", 1000000)
	queries := envInt(b, "ANNALS_BENCH_MAM_QUERIES", 500)
	clients := envInt(b, "ANNALS_BENCH_MAM_CLIENTS", 1)
	loadLimit := 10 * time.Minute
	if v := os.Getenv("ANNALS_BENCH_MAM_LOAD_LIMIT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("ANNALS_BENCH_MAM_LOAD_LIMIT: %v", err)
		}
		loadLimit = d
	}

	type chatServer struct {
		name string
		addr string
		stop func()
		// reload, for the peers: stop, load the stopped server's database,
		// start again on the same data.
		reload    func(load func(db string) error) error
		loadDB    func(db string, n int) error
		ratesOnly bool // not in the MAM part (annalsVariant)
	}
	var servers []*chatServer
	for _, v := range annalsVariants {
		s, cmd := serveOnB(b, b.TempDir(), append([]string{"--registration", "--registrations-per-address", "0"}, v.flags...)...)
		servers = append(servers, &chatServer{name: v.name, addr: "127.0.0.1:" + strconv.Itoa(s.port), ratesOnly: v.ratesOnly,
			stop: func() { cmd.Process.Kill(); cmd.Wait() }})
	}
	pdir := b.TempDir()
	if addr, stop, err := startProsody(pdir); err == nil {
		p := &chatServer{name: "prosody", addr: addr, stop: stop, loadDB: loadProsodyArchive}
		p.reload = func(load func(string) error) error {
			p.stop()
			p.stop = func() {}
			if err := load(filepath.Join(pdir, "prosody.sqlite")); err != nil {
				return err
			}
			addr, stop, err := startProsody(pdir)
			if err != nil {
				return err
			}
			p.addr, p.stop = addr, stop
			return nil
		}
		servers = append(servers, p)
	} else {
		b.Logf("prosody not measured: %v", err)
	}
	if edir, err := os.MkdirTemp("", "annals-ejabberd"); err != nil {
		b.Fatal(err)
	} else if addr, stop, err := startEjabberdIn(edir); err == nil {
		e := &chatServer{name: "ejabberd", addr: addr, stop: stop, loadDB: loadEjabberdArchive}
		e.reload = func(load func(string) error) error {
			e.stop()
			e.stop = func() {}
			if err := load(filepath.Join(edir, "ejabberd.db")); err != nil {
				return err
			}
			if err := chownEjabberd(edir); err != nil {
				return err
			}
			addr, stop, err := startEjabberdIn(edir)
			if err != nil {
				return err
			}
			e.addr, e.stop = addr, stop
			return nil
		}
		servers = append(servers, e)
		defer func() {
			if os.Getenv("ANNALS_BENCH_KEEP") == "" {
				os.RemoveAll(edir)
			}
		}()
	} else {
		os.RemoveAll(edir)
		b.Logf("ejabberd not measured: %v", err)
	}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()

	chat := map[string]chatFigures{}
	mam := map[string]mamFigures{}
	why := map[string]string{} // why a figure is missing, by "name/part"
	for _, s := range servers {
		if err := makeAccounts(s.addr); err != nil {
			b.Fatalf("%s: %v", s.name, err)
		}
		b.Run(s.name+"/chat", func(b *testing.B) {
			f, err := benchChat(s.addr, benchAccounts/2, perSender)
			if err != nil {
				why[s.name+"/chat"] = err.Error()
			}
			if errors.Is(err, errNoSM) {
				b.Skipf("%s: chat not measured: %v", s.name, err)
			}
			if err != nil {
				b.Fatalf("%s: %v", s.name, err)
			}
			chat[s.name] = f
			b.ReportMetric(f.rate, "msgs/s")
			b.ReportMetric(ms(f.p50), "p50-ms")
			b.ReportMetric(ms(f.p99), "p99-ms")
			b.ReportMetric(ms(f.d99), "delivery-p99-ms")
		})
	}

	// MAM: Annals first, over XMPP; then the peers with as many messages as
	// Annals took (all of mamN unless its load hit the time limit or failed).
	const account = "mam0"
	loaded := map[string]string{}
	n := mamN
	mamServers := slices.DeleteFunc(slices.Clone(servers), func(s *chatServer) bool { return s.ratesOnly })
	for _, s := range mamServers {
		for _, u := range append([]string{account}, mamSenders()...) {
			if err := registerAccount(s.addr, "localhost", u, mamPassword); err != nil {
				b.Fatalf("%s: %v", s.name, err)
			}
		}
	}
	for _, s := range mamServers {
		b.Run(s.name+"/mam", func(b *testing.B) {
			if s.reload == nil {
				// Not 10 minutes of loading for a server without MAM.
				if _, err := benchMAM(s.addr, account, mamPassword, 1, 1, -1); err != nil {
					why[s.name+"/mam"] = err.Error()
					b.Skipf("annals: MAM not measured: %v", err)
				}
				start := time.Now()
				got, err := loadAnnalsArchive(b, s.addr, account, mamN, loadLimit)
				if err != nil {
					why[s.name+"/mam"] = err.Error()
					b.Skipf("annals: MAM not measured: %v", err)
				}
				if got < mamN {
					n = got
				}
				loaded[s.name] = fmt.Sprintf("%d messages sent over XMPP (SM-acked) in %v", got, time.Since(start).Round(time.Second))
			} else {
				// One real message gives the rows to copy.
				if err := sendTemplate(s.addr, account); err != nil {
					b.Fatalf("%s: template message: %v", s.name, err)
				}
				start := time.Now()
				if err := s.reload(func(db string) error { return s.loadDB(db, n) }); err != nil {
					b.Fatalf("%s: loading the archive: %v", s.name, err)
				}
				loaded[s.name] = fmt.Sprintf("%d messages written as SQLite rows (both sides) while stopped, in %v", n, time.Since(start).Round(time.Second))
			}
			f, err := benchMAM(s.addr, account, mamPassword, queries, clients, min(n, 50))
			if err != nil {
				why[s.name+"/mam"] = err.Error()
				b.Fatalf("%s: %v", s.name, err)
			}
			f.n = n
			mam[s.name] = f
			b.ReportMetric(ms(f.p50), "p50-ms")
			b.ReportMetric(ms(f.p99), "p99-ms")
		})
	}

	// The summary, with Annals against the best peer.
	fmt.Printf("chat: %d pairs x %d messages, window %d, SM-acked; MAM on SQLite both sides, carbons on\n", benchAccounts/2, perSender, chatWindow)
	best := ""
	for _, s := range servers {
		if f, ok := chat[s.name]; ok && !isAnnals(s.name) && (best == "" || f.rate > chat[best].rate) {
			best = s.name
		}
	}
	for _, s := range servers {
		f, ok := chat[s.name]
		if !ok {
			fmt.Printf("  %-15s not measured: %s\n", s.name, why[s.name+"/chat"])
			continue
		}
		fmt.Printf("  %-15s %8.0f msgs/s  ack p50 %7.2f ms  p99 %7.2f ms   delivered %d/%d, p50 %7.2f ms  p99 %7.2f ms\n",
			s.name, f.rate, ms(f.p50), ms(f.p99), f.delivered, f.acked, ms(f.d50), ms(f.d99))
	}
	if a, ok := chat["annals"]; ok && best != "" {
		p := chat[best]
		fmt.Printf("  annals/%s: msgs/s x%.2f (target >= 3)   p99 x%.2f (target <= 0.5)\n", best, a.rate/p.rate, ms(a.p99)/ms(p.p99))
	}
	if a, ok := chat[annalsVariants[0].name]; ok {
		if u, ok := chat[annalsVariants[1].name]; ok {
			fmt.Println(sealLine(sealFigure{"msgs/s", a.rate, u.rate}, sealFigure{"ack p50", ms(a.p50), ms(u.p50)},
				sealFigure{"ack p99", ms(a.p99), ms(u.p99)}, sealFigure{"delivery p99", ms(a.d99), ms(u.d99)}))
		}
	}
	fmt.Printf("mam: 'last 50 messages' (RSM max 50, before), %d queries, %d client(s)\n", queries, clients)
	best = ""
	for _, s := range mamServers {
		if f, ok := mam[s.name]; ok && !isAnnals(s.name) && (best == "" || f.p99 < mam[best].p99) {
			best = s.name
		}
	}
	for _, s := range mamServers {
		f, ok := mam[s.name]
		if !ok {
			fmt.Printf("  %-15s not measured: %s\n", s.name, why[s.name+"/mam"])
			continue
		}
		fmt.Printf("  %-15s archive %d: p50 %7.2f ms  p99 %7.2f ms  (%s)\n", s.name, f.n, ms(f.p50), ms(f.p99), loaded[s.name])
	}
	if a, ok := mam["annals"]; ok && best != "" {
		fmt.Printf("  annals/%s: p99 x%.3f (target <= 0.2)\n", best, ms(a.p99)/ms(mam[best].p99))
	}
}

const (
	chatWindow  = 32 // unacked messages a sender keeps in flight
	mamPassword = "pw-mam"
)

func mamSenders() []string {
	var us []string
	for i := 0; i < 8; i++ {
		us = append(us, "mamsrc"+strconv.Itoa(i))
	}
	return us
}

type chatFigures struct {
	acked, delivered int
	elapsed          time.Duration
	rate             float64
	p50, p99         time.Duration // SM ack latency
	d50, d99         time.Duration // delivery latency
	// Delivery after the ack: each delivery's latency less its message's
	// ack latency (both from the same send), paired by order within each
	// pair (RFC 6120 §10.1 keeps it); negative when the recipient had it
	// before the sender's ack. Zero when some pair lost or doubled one.
	f50, f99 time.Duration
}

// benchChat runs the chat load on addr: senders u0, u2, ... to receivers
// u1, u3, ... (accounts made by makeAccounts).
func benchChat(addr string, pairs, perSender int) (chatFigures, error) {
	return benchChatOn(addr, addr, pairs, perSender, nil)
}

// benchChatOn is benchChat with the senders logged in at sendAddr and the
// receivers at recvAddr (two nodes serving one log); mark, when not nil,
// is called as the timed part starts (false) and once the deliveries are
// counted (true).
func benchChatOn(sendAddr, recvAddr string, pairs, perSender int, mark func(end bool)) (chatFigures, error) {
	senders := make([]*smClient, pairs)
	receivers := make([]*smClient, pairs)
	defer func() { closeAll(append(senders, receivers...)) }()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	sem := make(chan struct{}, 16)
	for i := 0; i < 2*pairs; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			addr := sendAddr
			if i%2 == 1 {
				addr = recvAddr
			}
			c, err := dialSM(addr, "localhost", "u"+strconv.Itoa(i), "pw"+strconv.Itoa(i), "chat", chatWindow)
			if err != nil {
				fail(err)
				return
			}
			if i%2 == 0 {
				senders[i/2] = c
			} else {
				receivers[i/2] = c
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return chatFigures{}, firstErr
	}
	if sendAddr != recvAddr {
		// The senders' node learns of the receivers' sessions over the
		// cluster's bus: a message sent before would wait offline.
		time.Sleep(time.Second)
	}
	if mark != nil {
		mark(false)
	}
	start := time.Now()
	for i := 0; i < pairs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, to := senders[i], "u"+strconv.Itoa(2*i+1)+"@localhost"
			for k := 0; k < perSender; k++ {
				err := s.writeTimed(func(now time.Time) string {
					return fmt.Sprintf("<message to='%s' type='chat' id='bm-%d-%d-%d'><body>message %d of %d from pair %d of the chat benchmark</body></message>",
						to, now.UnixNano(), i, k, k, perSender, i)
				})
				if err != nil {
					fail(err)
					return
				}
			}
			if err := s.drain(2 * time.Minute); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return chatFigures{}, firstErr
	}
	var f chatFigures
	var last time.Time
	var acks, dlvs []time.Duration
	for _, s := range senders {
		s.mu.Lock()
		acks = append(acks, s.ackLat...)
		if s.lastAt.After(last) {
			last = s.lastAt
		}
		s.mu.Unlock()
	}
	// Deliveries may trail the acks a little.
	want := int64(pairs * perSender)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var got int64
		for _, r := range receivers {
			got += r.dlv.Load()
		}
		if got >= want {
			break
		}
	}
	if mark != nil {
		mark(true)
	}
	var after []time.Duration
	paired := true
	for i, r := range receivers {
		r.mu.Lock()
		dlvs = append(dlvs, r.dlvLat...)
		s := senders[i]
		s.mu.Lock()
		paired = paired && len(r.dlvLat) == len(s.ackLat)
		for k := range min(len(r.dlvLat), len(s.ackLat)) {
			after = append(after, r.dlvLat[k]-s.ackLat[k])
		}
		s.mu.Unlock()
		r.mu.Unlock()
	}
	if paired {
		f.f50, f.f99 = percentile(after, 50), percentile(after, 99)
	}
	f.acked, f.delivered = len(acks), len(dlvs)
	f.elapsed = last.Sub(start)
	f.rate = float64(f.acked) / f.elapsed.Seconds()
	f.p50, f.p99 = percentile(acks, 50), percentile(acks, 99)
	f.d50, f.d99 = percentile(dlvs, 50), percentile(dlvs, 99)
	if f.acked != pairs*perSender {
		return f, fmt.Errorf("%d of %d messages acked", f.acked, pairs*perSender)
	}
	return f, nil
}

// closeAll closes the clients that are not nil, all at once.
func closeAll(cs []*smClient) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c != nil {
			wg.Add(1)
			go func() { defer wg.Done(); c.close() }()
		}
	}
	wg.Wait()
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
