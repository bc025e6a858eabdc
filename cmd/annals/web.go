package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/adapters/websocket"
)

// The HTTP side (issue 15): one listener with TLS (--http) and one in
// plain text on loopback for a reverse proxy (--http-plaintext), each
// serving XMPP over WebSocket (RFC 7395) and its discovery (XEP-0156);
// features add their handlers to the same mux.
type webFlags struct {
	addr      string // TLS, with the c2s certificate
	plainAddr string // loopback only
	// mounts add the HTTP sides of other parts (upload.go, metrics.go)
	// to each listener's mux, beside the WebSocket.
	mounts []func(mux *http.ServeMux)
}

func (w *webFlags) flags(fs *flag.FlagSet) {
	fs.StringVar(&w.addr, "http", "", "serve HTTPS on ADDR (e.g. :5443), with the c2s certificate: XMPP over WebSocket at "+websocket.Path+" and its discovery (XEP-0156); \"\" for none")
	fs.StringVar(&w.plainAddr, "http-plaintext", "", "serve plain HTTP on a loopback ADDR (e.g. 127.0.0.1:5280), for a reverse proxy that terminates TLS (its X-Forwarded-For and -Proto are trusted); \"\" for none")
}

func (w *webFlags) validate() error {
	if w.plainAddr != "" {
		if err := c2s.CheckPlaintext(w.plainAddr); err != nil {
			return fmt.Errorf("%w: --http-plaintext is only allowed on a loopback address (got %q)", errUsage, w.plainAddr)
		}
	}
	return nil
}

// webServer is the HTTP listeners, open, and what they serve.
type webServer struct {
	servers []*http.Server
	lns     []net.Listener
	log     *slog.Logger
	// notes are what features on these listeners tell the operator
	// (upload.go), printed by announce.
	notes []string
}

// open opens the listeners; serve starts them.
func (w *webFlags) open(ctx context.Context, cert tls.Certificate, sessions websocket.Sessions, maxStanza int, log *slog.Logger) (*webServer, error) {
	ws := &webServer{log: log}
	for _, l := range []struct {
		addr  string
		proxy bool
	}{{w.addr, false}, {w.plainAddr, true}} {
		if l.addr == "" {
			continue
		}
		mux := http.NewServeMux()
		mux.Handle(websocket.Path, websocket.NewHandler(ctx, sessions, maxStanza, l.proxy, log))
		meta := websocket.HostMeta{BehindProxy: l.proxy}
		mux.Handle("/.well-known/host-meta", meta)
		mux.Handle("/.well-known/host-meta.json", meta)
		for _, mount := range w.mounts {
			mount(mux)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			ws.close()
			return nil, fmt.Errorf("http: %w", err)
		}
		if !l.proxy {
			srv.TLSConfig = c2s.ServerTLS(cert)
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
		ws.servers = append(ws.servers, srv)
		ws.lns = append(ws.lns, ln)
	}
	return ws, nil
}

func (ws *webServer) close() {
	for _, ln := range ws.lns {
		ln.Close()
	}
}

// serve serves until ctx ends, then stops taking requests (the
// WebSocket sessions end with the session layer).
func (ws *webServer) serve(ctx context.Context) {
	for i, srv := range ws.servers {
		go func() {
			if err := srv.Serve(ws.lns[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				ws.log.Error("http: serving stopped", "addr", ws.lns[i].Addr().String(), "err", err)
			}
		}()
	}
	<-ctx.Done()
	for _, srv := range ws.servers {
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(shut)
		cancel()
	}
}

// announce tells the operator where the HTTP side is.
func (ws *webServer) announce(stdout io.Writer) {
	for i, ln := range ws.lns {
		scheme := "wss"
		if ws.servers[i].TLSConfig == nil {
			scheme = "ws"
		}
		host := ln.Addr().String()
		fmt.Fprintf(stdout, "XMPP over WebSocket: %s://%s%s (discovery: %s/.well-known/host-meta).\n",
			scheme, host, websocket.Path, map[string]string{"ws": "http", "wss": "https"}[scheme]+"://"+host)
	}
	for _, n := range ws.notes {
		fmt.Fprintln(stdout, n)
	}
}
