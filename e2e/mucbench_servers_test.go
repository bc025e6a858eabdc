package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mucServer is one of the servers BenchmarkMUC and BenchmarkMUCRooms
// measure side by side.
type mucServer struct {
	name     string
	addr     string
	sameNick bool // the sessions of an account join with one nick
	stop     func()
	count    func(rooms []string) (archiveCount, error) // archive rows of the benchmark's messages
	cpu      func() time.Duration                       // the server's CPU time so far, 0 if unknown
}

// startMUCServers starts Annals (each of annalsVariants), Prosody and
// ejabberd on loopback, each on a new data directory, or only those
// ANNALS_BENCH_MUC_SERVERS names (e.g. "annals,annals-unsealed,ejabberd"). A peer that cannot start is logged and left out. Each
// listens for STARTTLS with a certificate of its own: Annals its
// self-signed one, the peers selfSigned's (the load client does not verify
// it). stop stops them all.
func startMUCServers(b *testing.B, peerSameNick bool) (servers []*mucServer, stop func()) {
	want := func(name string) bool {
		only := os.Getenv("ANNALS_BENCH_MUC_SERVERS")
		return only == "" || slices.Contains(strings.Split(only, ","), name)
	}
	stop = func() {
		for _, s := range servers {
			s.stop()
		}
	}
	for _, v := range annalsVariants {
		if !want(v.name) {
			continue
		}
		adata := b.TempDir()
		s, cmd := serveOnB(b, adata, append([]string{"--registration", "--registrations-per-address", "0"}, v.flags...)...)
		servers = append(servers, &mucServer{name: v.name, addr: "127.0.0.1:" + strconv.Itoa(s.port), sameNick: true,
			stop: func() { cmd.Process.Kill(); cmd.Wait() },
			cpu:  func() time.Duration { return procCPU(cmd.Process.Pid) },
			count: func(rooms []string) (archiveCount, error) {
				return countAnnalsArchive(filepath.Join(adata, "annals.db"), rooms)
			}})
	}
	if want("prosody") {
		pdir := b.TempDir()
		if addr, pstop, err := startProsody(pdir); err == nil {
			servers = append(servers, &mucServer{name: "prosody", addr: addr, sameNick: peerSameNick, stop: pstop,
				count: func([]string) (archiveCount, error) {
					return countProsodyArchive(filepath.Join(pdir, "prosody.sqlite"))
				},
				cpu: func() time.Duration {
					pid, _ := os.ReadFile(filepath.Join(pdir, "prosody.pid"))
					n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
					return procCPU(n)
				}})
		} else {
			b.Logf("prosody not measured: %v", err)
		}
	}
	if want("ejabberd") {
		// Not b.TempDir: ejabberdctl runs the server as the ejabberd user,
		// which must reach the directory.
		edir, err := os.MkdirTemp("", "annals-ejabberd")
		if err != nil {
			stop()
			b.Fatal(err)
		}
		if addr, estop, err := startEjabberdIn(edir); err == nil {
			servers = append(servers, &mucServer{name: "ejabberd", addr: addr, sameNick: peerSameNick,
				stop: func() {
					estop()
					if os.Getenv("ANNALS_BENCH_KEEP") == "" {
						os.RemoveAll(edir)
					}
				},
				count: func([]string) (archiveCount, error) {
					return countEjabberdArchive(filepath.Join(edir, "ejabberd.db"))
				},
				cpu: func() time.Duration {
					out, _ := exec.Command("pgrep", "-u", "ejabberd", "beam.smp").Output()
					n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
					return procCPU(n)
				}})
		} else {
			os.RemoveAll(edir)
			b.Logf("ejabberd not measured: %v", err)
		}
	}
	return servers, stop
}

// runMUC makes the accounts p needs and runs benchMUC on each server, one
// sub-benchmark each, then prints header, a line per server and Annals'
// ratio to the best peer.
func runMUC(b *testing.B, p mucParams, peerSameNick bool, header string) {
	servers, stop := startMUCServers(b, peerSameNick)
	defer stop()
	figs := map[string]mucFigures{}
	arch := map[string]archiveCount{}
	why := map[string]string{}
	for _, s := range servers {
		b.Run(s.name, func(b *testing.B) {
			if err := makeAccountsN(s.addr, len(p.rooms)*p.accounts); err != nil {
				why[s.name] = err.Error()
				b.Fatalf("%s: %v", s.name, err)
			}
			q := p
			q.sameNick, q.addr, q.cpu = s.sameNick, s.addr, s.cpu
			f, err := benchMUC(q)
			if err != nil {
				why[s.name] = err.Error()
				b.Errorf("%s: %v", s.name, err)
			}
			if f.delivered == 0 {
				return
			}
			figs[s.name] = f
			b.ReportMetric(f.rate, "delivered/s")
			b.ReportMetric(ms(f.p50), "p50-ms")
			b.ReportMetric(ms(f.p99), "p99-ms")
			if a, err := s.count(p.rooms); err != nil {
				b.Logf("%s: archive not counted: %v", s.name, err)
			} else {
				arch[s.name] = a
				b.ReportMetric(float64(a.total())/float64(f.sent), "archive-writes/msg")
			}
		})
	}

	fmt.Print(header)
	best := ""
	for _, s := range servers {
		if f, ok := figs[s.name]; ok && !isAnnals(s.name) && (best == "" || f.rate > figs[best].rate) {
			best = s.name
		}
	}
	for _, s := range servers {
		f, ok := figs[s.name]
		if !ok {
			fmt.Printf("  %-15s not measured: %s\n", s.name, why[s.name])
			continue
		}
		line := fmt.Sprintf("  %-15s %8.0f delivered/s  p50 %8.2f ms  p99 %8.2f ms   delivered %d/%d (dup %d) in %v, %d sent",
			s.name, f.rate, ms(f.p50), ms(f.p99), f.delivered, f.expected, f.dups, f.elapsed.Round(time.Millisecond), f.sent)
		if f.cpu > 0 {
			line += fmt.Sprintf("   CPU: server %.0f%%, client %.0f%% of one core", 100*f.cpu.Seconds()/f.elapsed.Seconds(), 100*f.clientCPU.Seconds()/f.elapsed.Seconds())
		}
		if a, ok := arch[s.name]; ok {
			line += fmt.Sprintf("   archive writes/msg %.2f (%s)", float64(a.total())/float64(f.sent), a.detail(f.sent))
		}
		if f.stray > 0 {
			line += fmt.Sprintf("   %d received outside their room", f.stray)
		}
		if f.errs > 0 {
			line += fmt.Sprintf("   %d error stanzas, first: %s", f.errs, f.firstErr)
		}
		fmt.Println(line)
	}
	if a, ok := figs["annals"]; ok && best != "" {
		fmt.Printf("  annals/%s: delivered/s x%.2f (target >= 2)   p99 x%.2f\n", best, a.rate/figs[best].rate, ms(a.p99)/ms(figs[best].p99))
	}
	if a, ok := figs[annalsVariants[0].name]; ok {
		if u, ok := figs[annalsVariants[1].name]; ok {
			line := sealLine(sealFigure{"delivered/s", a.rate, u.rate}, sealFigure{"p50", ms(a.p50), ms(u.p50)}, sealFigure{"p99", ms(a.p99), ms(u.p99)})
			if a.cpu > 0 && u.cpu > 0 {
				// Server CPU per delivery: what sealing costs even when
				// the client, not the server, limits the rate.
				line += fmt.Sprintf("   server CPU/delivery x%.2f", (a.cpu.Seconds()/float64(a.delivered))/(u.cpu.Seconds()/float64(u.delivered)))
			}
			fmt.Println(line)
		}
	}
}

// archiveCount is a server's archive rows for the benchmark's messages, by
// where they are kept.
type archiveCount struct {
	by map[string]int
}

func (a archiveCount) total() int {
	t := 0
	for _, n := range a.by {
		t += n
	}
	return t
}

func (a archiveCount) detail(sent int) string {
	var parts []string
	for _, k := range []string{"room", "users"} {
		if n, ok := a.by[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %d = %.2f/msg", k, n, float64(n)/float64(sent)))
		}
	}
	return strings.Join(parts, ", ")
}

// countRows runs a query giving (group, count) rows on a SQLite database,
// read-only, until the total stops changing for a second (Annals' archive is
// a projection that may trail the messages).
func countRows(db, query string, args ...any) (archiveCount, error) {
	d, err := sql.Open("sqlite3", "file:"+db+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		return archiveCount{}, err
	}
	defer d.Close()
	var a archiveCount
	prev := -1
	for deadline := time.Now().Add(time.Minute); ; {
		a = archiveCount{by: map[string]int{}}
		rs, err := d.Query(query, args...)
		if err != nil {
			return a, err
		}
		for rs.Next() {
			var k string
			var n int
			if err := rs.Scan(&k, &n); err != nil {
				rs.Close()
				return a, err
			}
			a.by[k] += n
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return a, err
		}
		if a.total() == prev || time.Now().After(deadline) {
			return a, nil
		}
		prev = a.total()
		time.Sleep(time.Second)
	}
}

// countAnnalsArchive counts the groupchat rows in the rooms' archives and
// in their occupants'.
func countAnnalsArchive(db string, rooms []string) (archiveCount, error) {
	args := make([]any, len(rooms))
	for i, r := range rooms {
		args[i] = r
	}
	in := strings.TrimSuffix(strings.Repeat("?,", len(rooms)), ",")
	return countRows(db, `SELECT CASE WHEN account IN (`+in+`) THEN 'room' ELSE 'users' END, count(*) FROM archive WHERE groupchat = 1 GROUP BY 1`, args...)
}

func countProsodyArchive(db string) (archiveCount, error) {
	return countRows(db, `SELECT CASE WHEN "store" = 'muc_log' THEN 'room' ELSE 'users' END, count(*) FROM "prosodyarchive" WHERE "value" LIKE '%bm-%' GROUP BY 1`)
}

func countEjabberdArchive(db string) (archiveCount, error) {
	if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
		return archiveCount{}, err
	}
	return countRows(db, `SELECT CASE WHEN username LIKE '%@conference.%' THEN 'room' ELSE 'users' END, count(*) FROM archive WHERE xml LIKE '%bm-%' GROUP BY 1`)
}

// procCPU is the user and system CPU time of process pid and its threads,
// from /proc (0 if unknown).
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis: state is field 3,
	// utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * time.Second / 100 // USER_HZ
}
