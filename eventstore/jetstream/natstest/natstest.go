// Package natstest starts clusters of NATS servers with JetStream on
// loopback for tests: either embedded in the test process (the
// nats-server module this repository builds against) or as processes of
// the nats-server binary an operator installs from Debian (2.9 in Debian
// 12), each from a generated configuration file. Either way the servers
// route to each other and form one JetStream cluster whose streams
// replicate by RAFT, and a test can stop, kill and restart single
// servers. It is imported by tests only.
package natstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// DebianBinary is where Debian's nats-server package installs the server.
const DebianBinary = "/usr/sbin/nats-server"

// ReadyTimeout bounds how long starting a cluster, or restarting one of
// its servers, waits for every server to be current with the JetStream
// meta leader.
const ReadyTimeout = 30 * time.Second

// Cluster is N routed NATS servers with JetStream.
type Cluster struct {
	nodes []node
}

// node is one server of a cluster, embedded or a process.
type node interface {
	name() string
	clientURL() string
	start() error
	stop()         // graceful: the server flushes and leaves
	kill()         // abrupt where the kind allows it (SIGKILL)
	health() error // nil once it is current with the meta leader
	running() bool
}

// Embedded starts n servers in this process for t and shuts them down
// when t ends.
func Embedded(t testing.TB, n int) *Cluster {
	t.Helper()
	return retried(t, func() (*Cluster, error) { return StartEmbedded(t.TempDir(), n) })
}

// Debian starts n processes of Debian's nats-server for t and stops them
// when t ends. The test is skipped, saying so, when the binary is not
// installed (make tools installs it).
func Debian(t testing.TB, n int) *Cluster {
	t.Helper()
	if _, err := os.Stat(DebianBinary); err != nil {
		t.Skipf("%s is not installed (Debian package nats-server; make tools installs it): %v", DebianBinary, err)
	}
	return retried(t, func() (*Cluster, error) { return StartProcesses(DebianBinary, t.TempDir(), n) })
}

// startAttempts bounds how often a cluster is started afresh, on other
// ports, when a server did not start: a free port chosen here may be taken
// by another test's process before the server binds it (seen once in CI:
// "server n2 did not start", with the e2e tests running beside).
const startAttempts = 3

func retried(t testing.TB, start func() (*Cluster, error)) *Cluster {
	t.Helper()
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		var c *Cluster
		if c, err = start(); err == nil || attempt == startAttempts {
			return forTest(t, c, err)
		}
		if c != nil {
			c.Cleanup()
		}
		t.Logf("natstest: start %d of %d: %v; again on other ports", attempt, startAttempts, err)
	}
	return nil
}

func forTest(t testing.TB, c *Cluster, err error) *Cluster {
	t.Helper()
	if c != nil {
		t.Cleanup(func() {
			c.Cleanup()
			if t.Failed() {
				for _, nd := range c.nodes {
					if p, ok := nd.(*process); ok {
						t.Logf("end of %s's log:\n%s", p.srvName, tail(p.log, 4000))
					}
				}
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ports returns n distinct free TCP ports on 127.0.0.1. Another process
// may take one before the server binds it; the server then fails to start
// and says so.
func ports(n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are chosen, so none repeats
		out[i] = l.Addr().(*net.TCPAddr).Port
	}
	return out, nil
}

// start starts every node, then waits until the cluster is ready.
func start(c *Cluster) (*Cluster, error) {
	for _, nd := range c.nodes {
		if err := nd.start(); err != nil {
			return c, err
		}
	}
	return c, c.WaitReady(ReadyTimeout)
}

// N is the number of servers, running or not.
func (c *Cluster) N() int { return len(c.nodes) }

// URL is the client URL of server i (from 0).
func (c *Cluster) URL(i int) string { return c.nodes[i].clientURL() }

// URLs are the client URLs of every server, comma-separated as
// nats.Connect takes them.
func (c *Cluster) URLs() string {
	u := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		u[i] = nd.clientURL()
	}
	return strings.Join(u, ",")
}

// Name is server i's server_name, as stream and cluster info report it.
func (c *Cluster) Name(i int) string { return c.nodes[i].name() }

// Stop shuts server i down gracefully.
func (c *Cluster) Stop(i int) { c.nodes[i].stop() }

// Kill ends server i abruptly: SIGKILL for a process, so nothing is
// flushed; an embedded server can only be shut down, as Stop does.
func (c *Cluster) Kill(i int) { c.nodes[i].kill() }

// Restart starts server i again, with its store and addresses, and waits
// until every running server is current again.
func (c *Cluster) Restart(i int) error {
	if c.nodes[i].running() {
		return fmt.Errorf("natstest: server %s is running", c.nodes[i].name())
	}
	if err := c.nodes[i].start(); err != nil {
		return err
	}
	return c.WaitReady(ReadyTimeout)
}

// WaitReady waits until a JetStream meta leader is elected and every
// running server is current with it and with the streams it holds.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var errs []error
		for _, nd := range c.nodes {
			if !nd.running() {
				continue
			}
			if err := nd.health(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", nd.name(), err))
			}
		}
		if len(errs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("natstest: cluster not ready after %v: %w", timeout, errors.Join(errs...))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// StreamLeader returns the index of the server leading stream (in the
// default account), asking the first running server that answers.
func (c *Cluster) StreamLeader(ctx context.Context, stream string) (int, error) {
	var last error
	for i, nd := range c.nodes {
		if !nd.running() {
			continue
		}
		leader, err := streamLeader(ctx, c.URL(i), stream)
		if err != nil {
			last = err
			continue
		}
		for j := range c.nodes {
			if c.nodes[j].name() == leader {
				return j, nil
			}
		}
		return -1, fmt.Errorf("natstest: stream %s is led by %q, not a server of this cluster", stream, leader)
	}
	return -1, fmt.Errorf("natstest: no running server answered: %v", last)
}

func streamLeader(ctx context.Context, url, stream string) (string, error) {
	nc, err := nats.Connect(url, nats.MaxReconnects(0))
	if err != nil {
		return "", err
	}
	defer nc.Close()
	resp, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO."+stream, nil)
	if err != nil {
		return "", err
	}
	var info struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
		Cluster *struct {
			Leader string `json:"leader"`
		} `json:"cluster"`
	}
	if err := json.Unmarshal(resp.Data, &info); err != nil {
		return "", err
	}
	switch {
	case info.Error != nil:
		return "", errors.New(info.Error.Description)
	case info.Cluster == nil || info.Cluster.Leader == "":
		return "", fmt.Errorf("stream %s has no leader", stream)
	}
	return info.Cluster.Leader, nil
}

// Cleanup stops every server that still runs. A cluster started for a
// test does so when the test ends.
func (c *Cluster) Cleanup() {
	for _, nd := range c.nodes {
		if nd.running() {
			nd.stop()
		}
	}
}
