package e2e

import (
	"fmt"
	"strconv"
	"testing"

	annalsws "annals.im/annals/adapters/websocket"
)

// BenchmarkWebSocket measures 1:1 messages/s over XMPP over WebSocket
// (RFC 7395) beside TCP, with BenchmarkXMPP's load (benchMessageRate: 100
// connected pairs, each sender writing its 100 messages at once, each
// receiver checking that all arrive, in order), for Annals and, when
// installed, Prosody (mod_websocket) and ejabberd (ejabberd_http_ws),
// each started by the benchmark on loopback; then prints the ratios of
// the run. Both transports carry TLS: STARTTLS over TCP, wss:// with the
// server's self-signed certificate over WebSocket (what --http serves,
// and what Prosody and ejabberd serve on their HTTPS port), so the ratio
// is the cost of the WebSocket and its framing alone. Each server is
// measured over TCP then over WebSocket, on the same accounts and store:
// the WebSocket run finds the TCP run's messages in the archive.
func BenchmarkWebSocket(b *testing.B) {
	type peer struct {
		name    string
		tcp, ws string
	}
	var peers []peer
	// notes says which peers are missing, printed with the figures: the
	// log of a benchmark that passes is easily missed.
	var notes []string
	httpsPort, err := freePort()
	if err != nil {
		b.Fatal(err)
	}
	httpsAddr := "127.0.0.1:" + strconv.Itoa(httpsPort)
	s, cmd := serveOnB(b, b.TempDir(), "--registration", "--registrations-per-address", "0", "--http", httpsAddr)
	defer cmd.Process.Kill()
	if err := waitListen(httpsAddr, 10e9); err != nil {
		b.Fatal(err)
	}
	peers = append(peers, peer{"annals", "127.0.0.1:" + strconv.Itoa(s.port), "wss://" + httpsAddr + annalsws.Path})
	if port, err := freePort(); err != nil {
		b.Fatal(err)
	} else if addr, stop, err := startProsodyWeb(b.TempDir(), port); err == nil {
		defer stop()
		peers = append(peers, peer{"prosody", addr, "wss://127.0.0.1:" + strconv.Itoa(port) + "/xmpp-websocket"})
	} else {
		notes = append(notes, fmt.Sprintf("prosody not measured: %v", err))
	}
	if port, err := freePort(); err != nil {
		b.Fatal(err)
	} else if addr, stop, err := startEjabberdWeb(port); err == nil {
		defer stop()
		peers = append(peers, peer{"ejabberd", addr, "wss://127.0.0.1:" + strconv.Itoa(port) + "/xmpp-websocket"})
	} else {
		notes = append(notes, fmt.Sprintf("ejabberd not measured: %v", err))
	}
	results := map[string]float64{}
	for _, p := range peers {
		if err := makeAccounts(p.tcp); err != nil {
			b.Fatalf("%s: %v", p.name, err)
		}
		for _, t := range []struct{ name, addr string }{{"tcp", p.tcp}, {"websocket", p.ws}} {
			b.Run(p.name+"/"+t.name+"/messages", func(b *testing.B) {
				r := benchMessageRate(b, t.addr)
				b.ReportMetric(r, "messages/s")
				results[p.name+" "+t.name] = r
			})
		}
	}
	for _, t := range []string{"websocket", "tcp"} {
		line := fmt.Sprintf("messages/s over %-9s  annals %7.0f", t, results["annals "+t])
		for _, p := range peers[1:] {
			line += fmt.Sprintf("   %s %7.0f   annals/%s %.2f", p.name, results[p.name+" "+t], p.name, results["annals "+t]/results[p.name+" "+t])
		}
		fmt.Println(line)
	}
	line := "websocket/tcp             "
	for _, p := range peers {
		line += fmt.Sprintf("   %s %.2f", p.name, results[p.name+" websocket"]/results[p.name+" tcp"])
	}
	fmt.Println(line)
	for _, n := range notes {
		fmt.Println(n)
	}
}
