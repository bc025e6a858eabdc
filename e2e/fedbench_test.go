package e2e

import (
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFederation is the federation line of `make bench`: 1:1 messages
// across two federated Annals beside the same across two federated
// Prosody, on this machine in the same run, with the same client, load
// and message size (fedbench_servers_test.go starts them, in one network
// namespace). Each server archives every message of its own users (MAM on
// SQLite, fsync at every commit), offers carbons and stream management;
// the two of a pair authenticate each other with SASL EXTERNAL and
// certificates from a test CA.
//
// Load: ANNALS_BENCH_FED_PAIRS accounts on each server (default 100), all
// logged in with stream management, presence sent and carbons on
// (smClient). First a->b: u_i at a sends ANNALS_BENCH_FED_PER_SENDER chat
// messages (default 50) to the bare JID of u_i at b, at most chatWindow
// unacked at once; then b->a the same way back. A message is delivered
// when its receiver reads it; msgs/s is the messages delivered over the
// time from the first send to the last delivery. Before that, one message
// each way sets up the server links, which the figures leave out.
//
// Checked, else the benchmark fails: every receiver got exactly its
// messages, no sender got any back (a bounce), every message is archived
// exactly once on each side (in its sender's archive at one server, its
// receiver's at the other) and nowhere else, and each server saw SASL
// EXTERNAL, no dialback. CPU: seconds each server process used from the
// first send until its archive held every message.
//
// ANNALS_BENCH_FED_SERVERS=annals (or prosody) runs one pair only;
// ANNALS_BENCH_FED_PROFILE=DIR writes a CPU profile of each Annals during
// the load to DIR (fedBin).
// Quick run: ANNALS_BENCH_FED_PER_SENDER=10 go test -run '^$' -bench Federation -benchtime 1x ./e2e/
func BenchmarkFederation(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	pairs := envInt(b, "ANNALS_BENCH_FED_PAIRS", 100)
	per := envInt(b, "ANNALS_BENCH_FED_PER_SENDER", 50)
	f := newFederation(b, fedBenchHosts())
	figs := map[string][2]fedFigures{}
	why := map[string]string{}
	kinds := []string{"annals", "prosody"}
	for _, kind := range kinds {
		if only := os.Getenv("ANNALS_BENCH_FED_SERVERS"); only != "" && !slices.Contains(strings.Split(only, ","), kind) {
			why[kind] = "not asked for (ANNALS_BENCH_FED_SERVERS)"
			continue
		}
		why[kind] = "failed or skipped, see above"
		b.Run(kind, func(b *testing.B) {
			r, err := f.benchFedPair(b, kind, pairs, per)
			if err != nil {
				why[kind] = err.Error()
				b.Fatalf("%s: %v", kind, err)
			}
			figs[kind] = r
			b.ReportMetric(r[0].rate, "a-b-msgs/s")
			b.ReportMetric(r[1].rate, "b-a-msgs/s")
			b.ReportMetric(ms(r[0].d99), "a-b-p99-ms")
		})
	}

	fmt.Printf("federation: %d pairs x %d messages each way (a->b, then b->a), %d-byte bodies, window %d, SM and carbons on; MAM on SQLite on both servers, fsync per commit; s2s SASL EXTERNAL, test CA; loopback in a network namespace\n",
		pairs, per, len(fedBody(0, 0, per)), chatWindow)
	for _, kind := range kinds {
		r, ok := figs[kind]
		if !ok {
			fmt.Printf("  %-8s not measured: %s\n", kind, why[kind])
			continue
		}
		for _, p := range r {
			fmt.Printf("  %-8s %s %7.0f msgs/s  delivery p50 %7.2f ms  p99 %7.2f ms   delivered %d/%d in %v, archived +%v   CPU s: sender's server %.1f, receiver's %.1f, client %.1f\n",
				kind, p.dir, p.rate, ms(p.d50), ms(p.d99), p.delivered, p.sent, p.elapsed.Round(time.Millisecond), p.archiveLag.Round(time.Millisecond),
				p.cpuFrom.Seconds(), p.cpuTo.Seconds(), p.clientCPU.Seconds())
		}
	}
	if a, ok := figs["annals"]; ok {
		if p, ok := figs["prosody"]; ok {
			fmt.Printf("  annals/prosody: a->b x%.2f   b->a x%.2f   CPU s per 1000 messages (both servers): annals %.2f, prosody %.2f\n",
				a[0].rate/p[0].rate, a[1].rate/p[1].rate, cpuPerK(a), cpuPerK(p))
		}
	}
}

// fedFigures are one direction's measurements.
type fedFigures struct {
	dir             string // a->b or b->a
	sent, delivered int
	elapsed         time.Duration // first send to last delivery
	rate            float64       // delivered per second of elapsed
	d50, d99        time.Duration // delivery latency, send to the receiver reading it
	archiveLag      time.Duration // last delivery to both archives complete
	cpuFrom, cpuTo  time.Duration // CPU of the sender's and the receiver's server, first send to archives complete
	clientCPU       time.Duration // of this process, the load client
}

func cpuPerK(r [2]fedFigures) float64 {
	var cpu time.Duration
	n := 0
	for _, p := range r {
		cpu += p.cpuFrom + p.cpuTo
		n += p.sent
	}
	return cpu.Seconds() / float64(n) * 1000
}

// fedBody is the body of message k of pair i: the same for every server.
func fedBody(i, k, per int) string {
	return fmt.Sprintf("message %04d of %04d from pair %03d of the federation benchmark", k, per, i)
}

// benchFedPair starts kind's pair, logs pairs clients in on each, sets up
// the server links, and measures a->b then b->a.
func (f *federation) benchFedPair(b *testing.B, kind string, pairs, per int) ([2]fedFigures, error) {
	var r [2]fedFigures
	da, db := fedBenchDomains[kind][0], fedBenchDomains[kind][1]
	var servers [2]*fedBenchServer
	if kind == "annals" {
		servers = [2]*fedBenchServer{f.startFedAnnals(b, da, db), f.startFedAnnals(b, db, da)}
	} else {
		servers = [2]*fedBenchServer{f.startFedProsody(b, da), f.startFedProsody(b, db)}
	}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	var clients [2][]*smClient
	for side, s := range servers {
		if err := f.fedAccounts(s, pairs); err != nil {
			return r, err
		}
		cs, err := f.fedClients(s, pairs)
		clients[side] = cs
		defer closeAll(cs)
		if err != nil {
			return r, err
		}
	}
	// The links: one message each way, not measured.
	for side := range servers {
		to := clients[1-side][0]
		if err := fedPhase(clients[side][:1], clients[1-side][:1], servers[1-side].domain, 1, []string{"warmab", "warmba"}[side], nil, &fedFigures{}); err != nil {
			return r, fmt.Errorf("setting up the link %s -> %s: %w", servers[side].domain, bareOf(to.jid), err)
		}
	}
	profileSignal(b, servers[:], syscall.SIGUSR1)
	for side, tag := range []string{"ab", "ba"} {
		from, to := servers[side], servers[1-side]
		p := &r[side]
		p.dir = from.domain[:1] + "->" + to.domain[:1]
		cpu0, cpu1, client0 := from.cpu(), to.cpu(), procCPU(os.Getpid())
		if err := fedPhase(clients[side], clients[1-side], to.domain, per, tag, []*fedBenchServer{from, to}, p); err != nil {
			return r, fmt.Errorf("%s: %w", p.dir, err)
		}
		p.cpuFrom, p.cpuTo, p.clientCPU = from.cpu()-cpu0, to.cpu()-cpu1, procCPU(os.Getpid())-client0
	}
	profileSignal(b, servers[:], syscall.SIGUSR2)
	for _, s := range servers {
		if err := checkExternal(s); err != nil {
			return r, err
		}
	}
	return r, nil
}

// fedClients logs u0..u(n-1) in at s from inside the namespace, 16 at a
// time, each with SM, presence and carbons.
func (f *federation) fedClients(s *fedBenchServer, n int) ([]*smClient, error) {
	cs := make([]*smClient, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- f.ns.within(func() error {
				c, err := dialSM(s.c2s, s.domain, "u"+strconv.Itoa(i), "pw"+strconv.Itoa(i), "fed", chatWindow)
				cs[i] = c
				return err
			})
		}()
	}
	var first error
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil && first == nil {
			first = fmt.Errorf("%s: %w", s.domain, err)
		}
	}
	return cs, first
}

// fedPhase has from[i] send per messages to to[i]'s bare JID at toDomain,
// ids tagged tag, and fills p; with servers (the sender's first) it also
// waits for both archives to hold every message, and checks them.
func fedPhase(from, to []*smClient, toDomain string, per int, tag string, servers []*fedBenchServer, p *fedFigures) error {
	n := len(from)
	p.sent = n * per
	base := make([]int64, n)
	back := make([]int64, n)
	lat := make([]int, n)
	for i := range to {
		base[i], back[i] = to[i].dlv.Load(), from[i].dlv.Load()
		to[i].mu.Lock()
		lat[i] = len(to[i].dlvLat)
		to[i].mu.Unlock()
	}
	delivered := func() int64 {
		var got int64
		for i, c := range to {
			got += c.dlv.Load() - base[i]
		}
		return got
	}
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
	start := time.Now()
	for i := range from {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, rcpt := from[i], "u"+strconv.Itoa(i)+"@"+toDomain
			for k := 0; k < per; k++ {
				err := s.writeTimed(func(now time.Time) string {
					return fmt.Sprintf("<message to='%s' type='chat' id='bm-%d-%s-%d-%d'><body>%s</body></message>", rcpt, now.UnixNano(), tag, i, k, fedBody(i, k, per))
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
	// The last delivery, to within a millisecond; no progress for a
	// minute ends the wait.
	var end time.Time
	want, last, lastAt := int64(p.sent), int64(-1), time.Now()
	for {
		got := delivered()
		if got >= want {
			end = time.Now()
			break
		}
		if got != last {
			last, lastAt = got, time.Now()
		} else if time.Since(lastAt) > time.Minute {
			end = time.Now()
			break
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	p.elapsed = end.Sub(start)
	p.delivered = int(delivered())
	p.rate = float64(p.delivered) / p.elapsed.Seconds()
	var dl []time.Duration
	for i, c := range to {
		c.mu.Lock()
		dl = append(dl, c.dlvLat[lat[i]:]...)
		c.mu.Unlock()
	}
	p.d50, p.d99 = percentile(dl, 50), percentile(dl, 99)
	if firstErr != nil {
		return firstErr
	}
	// What each receiver got, and each sender got back (a bounce).
	check := func() error {
		var wrong []string
		for i := range to {
			if got := to[i].dlv.Load() - base[i]; got != int64(per) {
				wrong = append(wrong, fmt.Sprintf("%s got %d", bareOf(to[i].jid), got))
			}
			if got := from[i].dlv.Load() - back[i]; got != 0 {
				wrong = append(wrong, fmt.Sprintf("%s got %d of its own back (bounced)", bareOf(from[i].jid), got))
			}
		}
		if len(wrong) > 0 {
			return fmt.Errorf("%d of %d delivered in %v; want %d each: %s", p.delivered, p.sent, p.elapsed.Round(time.Millisecond), per, strings.Join(wrong[:min(len(wrong), 10)], ", "))
		}
		return nil
	}
	if p.delivered < p.sent {
		return check()
	}
	if servers != nil {
		if err := checkArchives(servers, tag, n, per); err != nil {
			return err
		}
		p.archiveLag = time.Since(end)
	}
	// Late or doubled deliveries, and bounces, show by now.
	time.Sleep(200 * time.Millisecond)
	return check()
}

// checkArchives waits (a minute at most: Annals' archive is a projection
// that may trail the deliveries) until servers[0] holds every message
// tagged tag in its sender's archive and servers[1] in its receiver's,
// and fails on a message archived twice, for another account, or not at
// all.
func checkArchives(servers []*fedBenchServer, tag string, pairs, per int) error {
	for side, s := range servers {
		var problem string
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			rows, err := s.archived(tag)
			if err != nil {
				return fmt.Errorf("%s: reading the archive: %w", s.domain, err)
			}
			problem = archiveProblem(rows, s.domain, pairs, per)
			if problem == "" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s (the %s's server): archive of the %s messages: %s", s.domain, []string{"sender", "receiver"}[side], tag, problem)
			}
		}
	}
	return nil
}

// archiveProblem says what is wrong with rows (owner, pair-k) for a
// server of domain whose account u_i archives message i-k, once each.
func archiveProblem(rows [][2]string, domain string, pairs, per int) string {
	seen := map[string]int{}
	var stray []string
	for _, r := range rows {
		i, _, _ := strings.Cut(r[1], "-")
		if r[0] != "u"+i+"@"+domain {
			stray = append(stray, r[0]+" has "+r[1])
			continue
		}
		seen[r[1]]++
	}
	twice := 0
	for _, n := range seen {
		if n > 1 {
			twice++
		}
	}
	if len(stray) > 0 || twice > 0 {
		return fmt.Sprintf("%d rows; %d messages archived more than once; %d in the wrong archive (%s)", len(rows), twice, len(stray), strings.Join(stray[:min(len(stray), 5)], ", "))
	}
	if len(seen) != pairs*per {
		return fmt.Sprintf("%d of %d messages archived", len(seen), pairs*per)
	}
	return ""
}

// checkExternal reads in s's log that its peer's stream authenticated with
// SASL EXTERNAL and none by dialback.
func checkExternal(s *fedBenchServer) error {
	log := s.logText()
	var ok, bad bool
	switch s.kind {
	case "annals":
		ok, bad = strings.Contains(log, "method=EXTERNAL"), strings.Contains(log, "method=dialback")
	case "prosody":
		ok, bad = strings.Contains(log, "Accepting SASL EXTERNAL identity from"), strings.Contains(log, "dialback")
	}
	if !ok || bad {
		return fmt.Errorf("%s authenticated its peer otherwise than by SASL EXTERNAL alone:\n%s", s.domain, tail(log, 4<<10))
	}
	return nil
}
