package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"annals.im/annals/eventstore/jetstream/natstest"
)

// Both kinds of cluster replicate a stream three times, survive the loss
// of the stream's leader, and take the server back.
func TestCluster(t *testing.T) {
	for _, kind := range []struct {
		name  string
		start func(testing.TB, int) *natstest.Cluster
	}{{"embedded", natstest.Embedded}, {"debian", natstest.Debian}} {
		t.Run(kind.name, func(t *testing.T) {
			began := time.Now()
			c := kind.start(t, 3)
			t.Logf("3 servers ready in %v", time.Since(began))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			nc, err := nats.Connect(c.URLs())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3}); err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, "t.1", []byte("one")); err != nil {
				t.Fatal(err)
			}
			leader, err := c.StreamLeader(ctx, "T")
			if err != nil {
				t.Fatal(err)
			}
			c.Kill(leader)
			killed := time.Now()
			// A publish sent while the others elect a leader is dropped
			// unanswered: each attempt waits a second, with one Msg-Id.
			for {
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				_, err := js.Publish(pctx, "t.2", []byte("two"), jetstream.WithMsgID("two"))
				cancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("after killing %s: %v", c.Name(leader), err)
				}
			}
			t.Logf("stored again %v after killing the leader", time.Since(killed))
			if now, err := c.StreamLeader(ctx, "T"); err != nil || now == leader {
				t.Fatalf("leader after killing %s: %d, %v", c.Name(leader), now, err)
			}
			restarted := time.Now()
			if err := c.Restart(leader); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s current again %v after restarting it", c.Name(leader), time.Since(restarted))
			st, err := js.Stream(ctx, "T")
			if err != nil {
				t.Fatal(err)
			}
			info := st.CachedInfo()
			if info.State.Msgs != 2 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
				t.Fatalf("stream state %+v cluster %+v", info.State, info.Cluster)
			}
		})
	}
}
