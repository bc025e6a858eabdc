package natstest

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartEmbedded starts n servers in this process, keeping their stores
// under dir, and waits until the cluster is ready. The caller calls
// Cleanup, also after an error if the cluster is not nil.
func StartEmbedded(dir string, n int) (*Cluster, error) {
	client, err := ports(n)
	if err != nil {
		return nil, err
	}
	route, err := ports(n)
	if err != nil {
		return nil, err
	}
	routes := make([]string, n)
	for i, p := range route {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("n%d", i+1)
		c.nodes = append(c.nodes, &embedded{opts: server.Options{
			ServerName: name,
			Host:       "127.0.0.1",
			Port:       client[i],
			NoLog:      true,
			NoSigs:     true,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, name),
			Cluster: server.ClusterOpts{
				Name: "annals-test",
				Host: "127.0.0.1",
				Port: route[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}})
	}
	return start(c)
}

// embedded is a server in this process. Each start makes a new
// server.Server from the same options: a stopped one cannot start again.
type embedded struct {
	opts server.Options
	mu   sync.Mutex
	srv  *server.Server
}

func (e *embedded) name() string      { return e.opts.ServerName }
func (e *embedded) clientURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", e.opts.Port) }

func (e *embedded) start() error {
	opts := e.opts // NewServer keeps and changes what it is given
	s, err := server.NewServer(&opts)
	if err != nil {
		return fmt.Errorf("natstest: server %s: %w", e.opts.ServerName, err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("natstest: server %s did not start", e.opts.ServerName)
	}
	e.mu.Lock()
	e.srv = s
	e.mu.Unlock()
	return nil
}

func (e *embedded) stop() {
	e.mu.Lock()
	s := e.srv
	e.srv = nil
	e.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// kill cannot be abrupt in process: the server's goroutines share it.
func (e *embedded) kill() { e.stop() }

func (e *embedded) running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.srv != nil
}

func (e *embedded) health() error {
	e.mu.Lock()
	s := e.srv
	e.mu.Unlock()
	if s == nil {
		return errors.New("not running")
	}
	if h := s.Healthz(nil); h.Status != "ok" {
		return fmt.Errorf("%s: %s", h.Status, h.Error)
	}
	return nil
}
