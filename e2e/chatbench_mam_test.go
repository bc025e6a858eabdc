package e2e

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadAnnalsArchive fills account's archive on the Annals server at addr
// with n messages sent over XMPP, the way clients would: 8 senders
// (mamsrc0..7) each pipeline their share to account's bare JID through the
// SM client (32 unacked at once, <r/> after each), while account is online
// and reads them. Annals acks a message (<a h/>) once it is durably
// archived. It stops sending after limit and returns how many messages
// were acked. It needs XEP-0198 on the server: without it, it fails at
// once.
func loadAnnalsArchive(b *testing.B, addr, account string, n int, limit time.Duration) (int, error) {
	for _, u := range append([]string{account}, mamSenders()...) {
		if err := registerAccount(addr, "localhost", u, mamPassword); err != nil {
			return 0, err
		}
	}
	r, err := dialSM(addr, "localhost", account, mamPassword, "drain", chatWindow)
	if err != nil {
		return 0, fmt.Errorf("loadAnnalsArchive needs stream management on Annals: %w", err)
	}
	defer r.close()
	senders := mamSenders()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	acked := make([]*smClient, len(senders))
	deadline := time.Now().Add(limit)
	start := time.Now()
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				done := 0
				mu.Lock()
				cs := slices.Clone(acked)
				mu.Unlock()
				for _, c := range cs {
					if c != nil {
						c.mu.Lock()
						done += len(c.ackLat)
						c.mu.Unlock()
					}
				}
				fmt.Printf("annals archive load: %d of %d acked after %v\n", done, n, time.Since(start).Round(time.Second))
			}
		}
	}()
	defer close(stopProgress)
	for j, u := range senders {
		share := n / len(senders)
		if j < n%len(senders) {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := dialSM(addr, "localhost", u, mamPassword, "load", chatWindow)
			if err == nil {
				mu.Lock()
				acked[j] = s
				mu.Unlock()
				to := account + "@localhost"
				for k := 0; k < share && err == nil && time.Now().Before(deadline); k++ {
					err = s.writeTimed(func(now time.Time) string {
						return fmt.Sprintf("<message to='%s' type='chat' id='bm-%d-%d-%d'><body>archived message %d from %s of the MAM benchmark load</body></message>",
							to, now.UnixNano(), j, k, k, u)
					})
				}
				if err == nil {
					err = s.drain(2 * time.Minute)
				}
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	got := 0
	for _, s := range acked {
		if s != nil {
			s.mu.Lock()
			got += len(s.ackLat)
			s.mu.Unlock()
		}
	}
	closeAll(acked)
	if firstErr != nil {
		return got, firstErr
	}
	if got < n {
		b.Logf("annals: archive load stopped at %d of %d messages after %v", got, n, limit)
	}
	return got, nil
}

// sendTemplate sends one real message from mamsrc0 to account, both online
// with SM and carbons like the benchmark clients: the rows it leaves in a
// peer's archive tables are the ones the loaders copy.
func sendTemplate(addr, account string) error {
	r, err := dialSM(addr, "localhost", account, mamPassword, "drain", chatWindow)
	if err != nil {
		return err
	}
	defer r.close()
	s, err := dialSM(addr, "localhost", "mamsrc0", mamPassword, "load", chatWindow)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.writeTimed(func(time.Time) string {
		return "<message to='" + account + "@localhost' type='chat' id='" + templateID + "'><body>" + templateBody + "</body></message>"
	}); err != nil {
		return err
	}
	if err := s.drain(30 * time.Second); err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); r.dlv.Load() < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not receive the template message", account)
		}
	}
	return nil
}

type mamFigures struct {
	n        int
	p50, p99 time.Duration
}

// benchMAM logs clients in as user and has each send queries/clients
// "last 50 messages" queries one after the other (after 10 unmeasured
// ones), each timed until the iq result with <fin/>; every answer must
// hold want results (want < 0: a probe, any count, no warm-up).
func benchMAM(addr, user, password string, queries, clients, want int) (mamFigures, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine, err := mamQueries(addr, user, password, "mam"+strconv.Itoa(c), queries/clients, want)
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, mine...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return mamFigures{}, firstErr
	}
	return mamFigures{p50: percentile(lat, 50), p99: percentile(lat, 99)}, nil
}

// readMAMAnswer reads the raw bytes of one query's answer until the iq
// that ends it and counts the results. It does not parse XML: what is
// timed is the server's answer, not this client's XML decoder (which
// took about a millisecond for 50 results, more than Annals' own time).
// It relies on nothing else arriving meanwhile: the querying session has
// sent no presence and runs no stream management.
func readMAMAnswer(c *loadClient, id string, iq *regexp.Regexp) (int, error) {
	var acc []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := c.nc.Read(buf)
		acc = append(acc, buf[:n]...)
		if loc := iq.FindIndex(acc); loc != nil {
			head := string(acc[loc[0]:loc[1]])
			rest := acc[loc[1]:]
			if strings.Contains(head, "type='error'") || strings.Contains(head, `type="error"`) {
				return 0, fmt.Errorf("the server answers a MAM (urn:xmpp:mam:2) query with an error: %s", rest)
			}
			if end := bytes.Index(rest, []byte("</iq>")); end >= 0 || strings.HasSuffix(head, "/>") {
				if !bytes.Contains(rest, []byte("fin")) {
					return 0, fmt.Errorf("mam query %s: no <fin/> in %s", id, rest)
				}
				body := string(acc[:loc[0]])
				return strings.Count(body, "queryid='"+id+"'") + strings.Count(body, `queryid="`+id+`"`), nil
			}
		}
		if err != nil {
			return 0, fmt.Errorf("mam query %s: %v", id, err)
		}
	}
}

func mamQueries(addr, user, password, resource string, queries, want int) ([]time.Duration, error) {
	c, err := dialLogin(addr, "localhost", user, password, resource)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var lat []time.Duration
	warm := 10
	if want < 0 {
		warm = 0 // a probe: any answer will do
	}
	for k := -warm; k < queries; k++ {
		id := resource + "-q" + strconv.Itoa(k+warm)
		c.nc.SetDeadline(time.Now().Add(time.Minute))
		iq := regexp.MustCompile(`<iq[^>]*\bid=['"]` + regexp.QuoteMeta(id) + `['"][^>]*>`) // the answer's end
		start := time.Now()
		if err := c.send("<iq type='set' id='" + id + "'><query xmlns='urn:xmpp:mam:2' queryid='" + id +
			"'><set xmlns='http://jabber.org/protocol/rsm'><max>50</max><before/></set></query></iq>"); err != nil {
			return lat, err
		}
		results, err := readMAMAnswer(c, id, iq)
		if err != nil {
			return lat, err
		}
		if k >= 0 {
			lat = append(lat, time.Since(start))
		}
		if want >= 0 && results != want {
			return lat, fmt.Errorf("mam query %s: %d results, want %d", id, results, want)
		}
	}
	return lat, nil
}
