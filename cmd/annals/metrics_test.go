package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/projections"
)

// /readyz's check: "starting" until serve has its parts; then not ready
// while a projection is more than --ready-max-lag events behind the log,
// ready once caught up, and not ready once the store is closed. The
// runner's subscriptions are tracked for the subscription lag while they
// last.
func TestReadiness(t *testing.T) {
	ctx := context.Background()
	c := Defaults()
	c.Data = t.TempDir()
	c.server = true
	o, err := openOwner(ctx, c, true, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var f metricsFlags
	if err := (&metricsFlags{maxLag: -1}).validate(); err == nil {
		t.Error("--ready-max-lag -1 accepted")
	}
	f.maxLag = 2
	obs := newObserved(f)
	if err := obs.readyz(ctx); err == nil || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("readiness before serve has started: %v", err)
	}
	ids := event.NewIDs()
	for range 3 {
		e, err := event.New(ids, time.Now(), "TestHappened", 1, "test", struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.store.Append(ctx, "test-x", eventstore.Any, e); err != nil {
			t.Fatal(err)
		}
	}
	obs.watch(o.store, o.runner, o, nil)
	if err := obs.readyz(ctx); err == nil || !strings.Contains(err.Error(), "3 events behind the log") {
		t.Fatalf("readiness with the projections 3 events behind, at most 2: %v", err)
	}
	if _, err := o.runner.CatchUp(ctx, o.store); err != nil {
		t.Fatal(err)
	}
	if err := obs.readyz(ctx); err != nil {
		t.Fatalf("readiness once caught up: %v", err)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- o.runner.Run(runCtx, obs.subscribe(o.store)) }()
	want := len(o.runner.Names())
	for deadline := time.Now().Add(10 * time.Second); len(obs.positions.Lags(3)) != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("subscriptions tracked: %v, want one per projection (%v)", obs.positions.Lags(3), o.runner.Names())
		}
	}
	for consumer, lag := range obs.positions.Lags(3) {
		if !strings.HasPrefix(consumer, "projection:") || lag != 0 {
			t.Errorf("subscription %q is %v behind, want a projection's, 0 behind", consumer, lag)
		}
	}
	stop()
	<-done
	if got := obs.positions.Lags(3); len(got) != 0 {
		t.Errorf("subscriptions still tracked after they closed: %v", got)
	}

	o.store.Close()
	if err := obs.readyz(ctx); err == nil {
		t.Fatal("ready with the store closed")
	}
	if defaultReadyMaxLag != projections.Page {
		t.Errorf("the default --ready-max-lag is %d, want one page of the runner, %d", defaultReadyMaxLag, projections.Page)
	}
}

// serve --metrics prints the URL of /metrics (make run shows it beside
// the demo account), with the port the listener got, and serves it there.
func TestServeMetricsURL(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(bin, "serve", "--demo", "--data", t.TempDir(), "--c2s", "127.0.0.1:0", "--metrics", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		io.Copy(io.Discard, stdout)
		cmd.Wait()
	}()
	// Without the line the scan would wait for serve to end.
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var out strings.Builder
	url := ""
	re := regexp.MustCompile(`^Metrics: (http://127\.0\.0\.1:[1-9][0-9]*/metrics) \(health: /healthz, /readyz\)\.$`)
	for sc := bufio.NewScanner(stdout); url == "" && sc.Scan(); {
		out.WriteString(sc.Text() + "\n")
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
		}
	}
	if url == "" || !strings.Contains(out.String(), "Demo account: ") {
		t.Fatalf("no metrics URL after the demo account in %q", out.String())
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
}
