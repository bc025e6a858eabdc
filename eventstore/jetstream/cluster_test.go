package jetstream_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// envURLs carries the embedded cluster's client URLs to the crash test's
// child process (storetest re-executes the test binary), which must reach
// the same log rather than start servers of its own.
const envURLs = "ANNALS_JETSTREAM_TEST_URLS"

// cluster is three nats-server instances in one process, routed to each
// other on loopback: a real RAFT cluster, so streams with replicas 3 elect
// a leader and commit on a quorum.
type cluster struct {
	servers []*server.Server
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startCluster starts n servers for t alone (a test that stops some) and
// shuts them down when t ends.
func startCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c, err := startClusterIn(t.TempDir(), n)
	if c != nil {
		t.Cleanup(c.shutdown)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startClusterIn starts n servers keeping their stores under dir and
// waits until every one is current with the JetStream meta leader.
func startClusterIn(dir string, n int) (*cluster, error) {
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	c := &cluster{}
	for i := 0; i < n; i++ {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			NoLog:      true,
			NoSigs:     true,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			Cluster: server.ClusterOpts{
				Name: "annals-test",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			return c, err
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			return c, fmt.Errorf("server %d did not start", i+1)
		}
		c.servers = append(c.servers, s)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready, leader := 0, false
		for _, s := range c.servers {
			if s.JetStreamEnabled() && s.JetStreamIsCurrent() {
				ready++
			}
			leader = leader || s.JetStreamIsLeader()
		}
		if ready == n && leader {
			return c, nil
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("JetStream cluster not ready: %d of %d current, leader %v", ready, n, leader)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) urls() string {
	u := make([]string, len(c.servers))
	for i, s := range c.servers {
		u[i] = s.ClientURL()
	}
	return strings.Join(u, ",")
}

func (c *cluster) shutdown() {
	for _, s := range c.servers {
		s.Shutdown()
	}
	for _, s := range c.servers {
		s.WaitForShutdown()
	}
}

// TestMain starts the cluster the tests share, unless this process is
// the crash test's child, which is handed the parent's URLs.
func TestMain(m *testing.M) {
	if os.Getenv(envURLs) != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "annals-jetstream-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := startClusterIn(dir, 3)
	if err == nil {
		os.Setenv(envURLs, c.urls())
	}
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	if c != nil {
		c.shutdown()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// sharedURLs are the client URLs of the shared cluster.
func sharedURLs() string { return os.Getenv(envURLs) }
