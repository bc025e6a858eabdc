package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The load shape: 200 accounts, logins at concurrency 50 (SCRAM-SHA-256
// over STARTTLS), and 1:1 messages between 100 connected pairs.
const (
	benchAccounts    = 200
	benchConcurrency = 50
	benchLogins      = 2000
	benchPerSender   = 100
)

// BenchmarkXMPP measures Annals. (Prosody and ejabberd beside it, in the
// same run, come next: see the c2s issue.)
func BenchmarkXMPP(b *testing.B) {
	data := b.TempDir()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < benchAccounts; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out, err := exec.Command(bin, "user", "add", fmt.Sprintf("u%d@localhost", i), "--password", "pw"+strconv.Itoa(i), "--data", data).CombinedOutput()
			if err != nil && !strings.Contains(string(out), "already exists") {
				b.Errorf("user add: %v %s", err, out)
			}
		}()
	}
	wg.Wait()
	s, cmd := serveOnB(b, data)
	defer cmd.Process.Kill()
	addr := "127.0.0.1:" + strconv.Itoa(s.port)

	b.Run("logins", func(b *testing.B) {
		for range b.N {
			var next, failed atomic.Int64
			start := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < benchConcurrency; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= benchLogins {
							return
						}
						u := int(i) % benchAccounts
						c, err := dialLogin(addr, "localhost", fmt.Sprintf("u%d", u), "pw"+strconv.Itoa(u), "r"+strconv.Itoa(int(i)))
						if err != nil {
							failed.Add(1)
							continue
						}
						c.close()
					}
				}()
			}
			wg.Wait()
			if failed.Load() > 0 {
				b.Fatalf("%d of %d logins failed", failed.Load(), benchLogins)
			}
			b.ReportMetric(float64(benchLogins)/time.Since(start).Seconds(), "logins/s")
		}
	})

	b.Run("messages", func(b *testing.B) {
		pairs := benchAccounts / 2
		senders := make([]*loadClient, pairs)
		receivers := make([]*loadClient, pairs)
		for i := 0; i < pairs; i++ {
			var err error
			if senders[i], err = dialLogin(addr, "localhost", fmt.Sprintf("u%d", 2*i), "pw"+strconv.Itoa(2*i), "send"); err != nil {
				b.Fatal(err)
			}
			if receivers[i], err = dialLogin(addr, "localhost", fmt.Sprintf("u%d", 2*i+1), "pw"+strconv.Itoa(2*i+1), "recv"); err != nil {
				b.Fatal(err)
			}
		}
		defer func() {
			for i := range senders {
				senders[i].close()
				receivers[i].close()
			}
		}()
		for range b.N {
			start := time.Now()
			var wg sync.WaitGroup
			var got atomic.Int64
			for i := 0; i < pairs; i++ {
				wg.Add(2)
				go func() {
					defer wg.Done()
					to := receivers[i].jid
					var sb strings.Builder
					for k := 0; k < benchPerSender; k++ {
						fmt.Fprintf(&sb, "<message to='%s' type='chat' id='m%d'><body>message %d of the benchmark</body></message>", to, k, k)
					}
					if err := senders[i].send(sb.String()); err != nil {
						b.Error(err)
					}
				}()
				go func() {
					defer wg.Done()
					for k := 0; k < benchPerSender; k++ {
						st, _, err := receivers[i].next()
						if err != nil {
							b.Error(err)
							return
						}
						if st.Name.Local == "message" {
							got.Add(1)
						} else {
							k--
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(got.Load())/time.Since(start).Seconds(), "messages/s")
		}
	})
}

// serveOnB is serveOn for benchmarks.
func serveOnB(b *testing.B, data string) (*server, *exec.Cmd) {
	cmd := exec.Command(bin, "serve", "--data", data, "--c2s", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	var seen strings.Builder
	for !strings.Contains(seen.String(), " on 127.0.0.1:") || !strings.Contains(seen.String(), "Stop with") {
		n, err := stdout.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			b.Fatalf("serve: %v\n%s", err, seen.String())
		}
	}
	text := seen.String()
	i := strings.Index(text, " on 127.0.0.1:") + len(" on 127.0.0.1:")
	j := i
	for j < len(text) && text[j] >= '0' && text[j] <= '9' {
		j++
	}
	port, _ := strconv.Atoi(text[i:j])
	go func() {
		for {
			if _, err := stdout.Read(buf); err != nil {
				return
			}
		}
	}()
	return &server{port: port, data: data}, cmd
}
