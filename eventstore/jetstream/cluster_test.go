package jetstream_test

import (
	"fmt"
	"net"
	"os"
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

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCluster starts n servers and waits until JetStream has a meta
// leader. They shut down when t ends.
func startCluster(t testing.TB, n int) *cluster {
	t.Helper()
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range ports {
		ports[i] = freePort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
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
			StoreDir:   t.TempDir(),
			Cluster: server.ClusterOpts{
				Name: "annals-test",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("server %d did not start", i+1)
		}
		c.servers = append(c.servers, s)
	}
	t.Cleanup(c.shutdown)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready := 0
		for _, s := range c.servers {
			if s.JetStreamIsCurrent() && s.JetStreamEnabled() {
				ready++
			}
		}
		leader := false
		for _, s := range c.servers {
			leader = leader || s.JetStreamIsLeader()
		}
		if ready == n && leader {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("JetStream cluster not ready: %d of %d current, leader %v", ready, n, leader)
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

// clusterURLs returns the URLs of the cluster the crash test's parent
// started, or starts one and exports its URLs for such a child.
func clusterURLs(t *testing.T) string {
	if u := os.Getenv(envURLs); u != "" {
		return u
	}
	c := startCluster(t, 3)
	t.Setenv(envURLs, c.urls())
	return c.urls()
}
