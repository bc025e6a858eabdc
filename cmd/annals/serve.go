package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/adapters/cluster"
	"annals.im/annals/adapters/features/muc"
	"annals.im/annals/app/accounts"
	"annals.im/annals/app/archive"
	appmirrors "annals.im/annals/app/mirrors"
	"annals.im/annals/app/pep"
	"annals.im/annals/app/rooms"
	appvcard "annals.im/annals/app/vcard"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/wellformed"
	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/projections"
	accountsproj "annals.im/annals/projections/accounts"
	archiveproj "annals.im/annals/projections/archive"
)

// serveOptions is every option of annals serve: its flags, which a
// configuration file (configfile.go) sets too.
type serveOptions struct {
	c        Config
	demo     bool
	x        xmppFlags
	domains  stringList
	mf       metricsFlags
	memLimit string
	node     string
	bus      cluster.Options
	content  contentFlags
}

// flags registers every serve option on fs.
func (o *serveOptions) flags(fs *flag.FlagSet) {
	o.c.flags(fs, true)
	fs.BoolVar(&o.demo, "demo", false, "create demo@<first domain> with a random password if it does not exist, and print how to log in")
	fs.StringVar(&o.x.c2s, "c2s", envOr("ANNALS_C2S", ":5222"), "client-to-server listen address ($ANNALS_C2S)")
	fs.Var(&o.domains, "domain", "a domain to serve (repeatable; default localhost, or $ANNALS_DOMAIN)")
	fs.BoolVar(&o.x.registration, "registration", envOr("ANNALS_REGISTRATION", "") == "true", "allow in-band registration, XEP-0077 ($ANNALS_REGISTRATION=true)")
	fs.BoolVar(&o.x.plaintext, "allow-plaintext", false, "allow streams without TLS: loopback addresses only (tests, benchmarks)")
	fs.StringVar(&o.x.cert, "tls-cert", envOr("ANNALS_TLS_CERT", ""), "PEM certificate (default: a self-signed one in the data directory)")
	fs.StringVar(&o.x.key, "tls-key", envOr("ANNALS_TLS_KEY", ""), "PEM private key for --tls-cert")
	fs.DurationVar(&o.x.resume, "resume-timeout", 300*time.Second, "how long a broken session waits to be resumed, XEP-0198 (0: no resumption)")
	fs.StringVar(&o.x.muc, "muc", envOr("ANNALS_MUC", "conference.<first domain>"), "domain of the multi-user chat service, XEP-0045 (\"\": none; $ANNALS_MUC)")
	fs.BoolVar(&o.x.lockRooms, "muc-lock-new-rooms", true, "keep a new room closed to others until its owner configures it (XEP-0045 §10.1)")
	fs.DurationVar(&o.x.idleLeave, "muc-idle-leave", muc.DefaultIdleLeave, "an account none of whose clients has been attached to a room for that long leaves it, keeping its bookmark (0: never)")
	fs.DurationVar(&o.x.voiceInterval, "muc-voice-request-interval", muc.DefaultVoiceRequestInterval, "an occupant asks a room's moderators for voice at most this often")
	fs.StringVar(&o.x.detachedShow, "muc-detached-show", "xa", "an account's show in its rooms while none of its clients is attached (away, xa, dnd or chat)")
	fs.IntVar(&o.x.maxStanza, "max-stanza", 256<<10, "largest stanza a client may send, in bytes; larger ones end the stream with policy-violation")
	fs.IntVar(&o.x.maxDepth, "max-stanza-depth", wellformed.DefaultMaxDepth, "deepest element nesting in a stanza, the stream element included; deeper ones end the stream with policy-violation")
	o.x.login.flags(fs)
	fs.IntVar(&o.x.maxConns, "max-connections", 0, "client connections open at once (0: as many as the open files limit allows, less a reserve for the store)")
	fs.IntVar(&o.x.maxConnsPerIP, "max-connections-per-ip", c2s.DefaultMaxConnectionsPerIP, "client connections open at once from one IPv4 address or IPv6 /64")
	fs.DurationVar(&o.x.loginTimeout, "login-timeout", c2s.DefaultLoginTimeout, "time from connecting to a bound resource before the connection is closed")
	o.x.quotas.flags(fs)
	o.x.traffic.flags(fs)
	o.x.s2s.flags(fs)
	fs.BoolVar(&o.x.mirrorService, "mirror-service", true, "DMUC3: serve the mirror service mirror.<first domain> when --s2s is on; it mirrors only the --mirror-of services (docs/dmuc.md)")
	fs.Var(&o.x.mirrorOf, "mirror-of", "a MUC service of another server whose rooms this server mirrors for its users, DMUC3 (repeatable; needs --s2s; docs/dmuc.md)")
	fs.Var(&o.x.mirrorTrust, "mirror-trust", "a server whose DMUC3 mirrors may mirror the rooms here (repeatable; docs/dmuc.md)")
	fs.DurationVar(&o.x.mirrorTimeout, "mirror-timeout", muc.DefaultMirrorTimeout, "DMUC3: how long a link between a master and a mirror may be silent before each side takes it for lost (the mirror pings every third of it)")
	fs.IntVar(&o.x.mirrorResendPage, "mirror-resend-page", muc.DefaultMirrorResendPage, "DMUC3: room events a master resends a mirror per request")
	o.x.extdisco.flags(fs)
	o.x.push.flags(fs)
	o.x.web.flags(fs)
	o.x.upload.flags(fs)
	o.mf.flags(fs)
	fs.Var(&o.x.admins, "admin", "the bare JID of an account here that may administer the server over XMPP: XEP-0133 ad-hoc commands (repeatable)")
	fs.StringVar(&o.node, "node", defaultNode(), "this node's name among the nodes serving one log (--store): unique, letters, digits, '-' and '_' ($ANNALS_NODE; default: the host name)")
	fs.DurationVar(&o.bus.Heartbeat, "cluster-heartbeat", 2*time.Second, "with --store: how often this node tells the others it is alive")
	fs.IntVar(&o.bus.Missed, "cluster-missed", 3, "with --store: heartbeats a node may miss before the others take it for lost (its sessions go unavailable)")
	fs.IntVar(&o.bus.MaxNodes, "cluster-max-nodes", 64, "with --store: other nodes this one follows at most")
	fs.IntVar(&o.bus.MaxSessions, "cluster-max-sessions", 1<<20, "with --store: sessions and room attachments followed per node at most")
	fs.StringVar(&o.memLimit, "memory-limit", "auto", "Go heap soft limit: auto (half the memory available), off, or a size such as 2GiB (GOMEMLIMIT wins)")
	o.content.flags(fs)
}

// resolve fills in the defaults that depend on other options and checks
// every option: serve and config check report the same errors.
func (o *serveOptions) resolve() error {
	if err := o.c.Validate(); err != nil {
		return err
	}
	o.x.domains = o.domains
	if len(o.x.domains) == 0 {
		o.x.domains = strings.Fields(strings.ReplaceAll(envOr("ANNALS_DOMAIN", "localhost"), ",", " "))
	}
	if o.x.muc == "conference.<first domain>" {
		o.x.muc = "conference." + o.x.domains[0]
	}
	if err := o.x.validate(); err != nil {
		return err
	}
	if err := o.mf.validate(); err != nil {
		return err
	}
	if err := o.content.validate(); err != nil {
		return err
	}
	o.c.unsealed = !o.content.seal
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		if _, err := parseMemoryLimit(o.memLimit, 1); err != nil {
			return err
		}
	}
	return checkBus(o.bus)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var opts serveOptions
	fs := newFlagSet("serve", stderr)
	opts.flags(fs)
	if _, err := parseWithConfig(fs, args); err != nil {
		return err
	}
	if err := opts.resolve(); err != nil {
		return err
	}
	c, demo, x, mf, memLimit, node, bus := opts.c, opts.demo, opts.x, opts.mf, opts.memLimit, opts.node, opts.bus
	log := c.logger(stderr)
	// Metrics are always kept (a few atomic adds per stanza and append);
	// --metrics says whether a listener of their own serves them.
	obs := newObserved(mf)
	c.metrics, x.metrics, x.upload.metrics = obs.m, obs.m, obs.m
	x.web.mounts = append(x.web.mounts, obs.mountWeb)
	if mln, err := listenMetrics(mf, log); err != nil {
		return err
	} else if mln != nil {
		defer obs.serveMetrics(mln, log)()
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		// The live heap of a server is small (sessions, caches) while every
		// stanza allocates: at the default GOGC=100 the collector ran every
		// few queries, and MAM answers' p99 latency doubled (measured with
		// BenchmarkChat). GOGC in the environment still decides.
		debug.SetGCPercent(400)
	}
	if err := setMemoryLimit(memLimit, log); err != nil {
		return err
	}
	// Before the store opens its files: a limit too low to serve fails here.
	nofile, err := openFilesLimit()
	if err != nil {
		return err
	}
	if x.maxConns, err = maxConnections(x.maxConns, nofile, log); err != nil {
		return err
	}
	log.Info("connection limits", "nofile", nofile, "reserved", fdReserve, "max_connections", x.maxConns,
		"max_connections_per_ip", x.maxConnsPerIP, "login_timeout", x.loginTimeout)
	c.server = true // holds the data directory's lock: the only lazy writer
	o, err := openOwner(ctx, c, true, log)
	if err != nil {
		return err
	}
	defer o.Close()
	store, runner := o.store, o.runner
	bus.Node, bus.MaxStanza, bus.Log = node, x.maxStanza+4096, log
	nodes, err := newBus(store, bus, runner)
	if err != nil {
		return err
	}
	if nodes != nil {
		x.cluster, x.elsewhere, x.rooms = nodesOf{nodes}, nodes, &lateRooms{}
	}
	creds, pwds, err := store.secrets(ctx, o.db, log)
	if err != nil {
		return err
	}
	// The one owner of the room streams and the one of the account streams
	// in this process; a deletion takes the account out of its rooms.
	ids := event.NewIDs()
	rms := rooms.New(store, ids, o.db, x.muc)
	accts := accounts.New(store, creds, ids, accounts.Options{Rooms: rms, Secrets: pwds})
	if demo {
		if err := demoAccount(event.WithCause(ctx, "cli:serve --demo"), c, store, x.domains[0], accts, stdout); err != nil {
			return err
		}
	}
	if err := checkAdmins(ctx, x, accts, log); err != nil {
		return err
	}
	stats, err := runner.CatchUp(ctx, store)
	if err != nil {
		return err
	}
	for _, s := range stats {
		log.Info("projection caught up", "projection", s.Projection, "events", s.Events, "took", s.Took)
	}
	reader, err := archiveReader(o, log)
	if err != nil {
		return err
	}
	arch := archive.New(accts, store, reader, ids, x.traffic.archiveLimits(), x.domains)
	// Occupants from other servers lived in the process that stopped:
	// they leave their rooms now (their clients join again).
	if n, err := rms.SweepRemoteOccupants(event.WithCause(ctx, "serve:start")); err != nil {
		// Not worth refusing to serve: they are removed as ghosts when
		// their servers answer the room with errors.
		log.Error("rooms: occupants from other servers were not swept", "err", err)
	} else if n > 0 {
		log.Info("occupants from other servers left their rooms at start", "occupants", n)
	}
	// The log is followed from here: room events and account changes of
	// any process from now on reach the sessions they concern.
	reactFrom, err := runner.Checkpoint(ctx, accountsproj.Name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv, ln, fed, web, err := x.listen(ctx, c, store, creds, accts, pep.New(accts, pwds, ids), appvcard.New(accts, ids), arch, rms, appmirrors.New(store, ids, o.db), pwds, log)
	if err != nil {
		return err
	}
	if err := startBus(ctx, nodes, srv, x.rooms); err != nil {
		return err
	}
	obs.watch(store, runner, o, srv)
	follow, err := trackedStore{store, obs, "sessions"}.Subscribe(ctx, reactFrom)
	if err != nil {
		return fmt.Errorf("log follower: %w", err)
	}
	log.Info("serving", "data", c.Data, "store", store.describe(c), "durability", c.Durability, "projections", joinNames(runner.Names()),
		"c2s", ln.Addr().String(), "domains", strings.Join(x.domains, ","))
	if store.cluster() {
		fmt.Fprintf(stdout, "Annals is serving %s on %s (event log on %s, read models in %s). Stop with Ctrl-C.\n",
			strings.Join(x.domains, ", "), ln.Addr(), store.describe(c), store.readModels)
	} else {
		fmt.Fprintf(stdout, "Annals is serving %s on %s (event store %s, durability %s). Stop with Ctrl-C.\n",
			strings.Join(x.domains, ", "), ln.Addr(), c.DBPath(), c.Durability)
	}
	if x.muc != "" {
		fmt.Fprintf(stdout, "Group chat rooms are at <room>@%s.\n", x.muc)
	}
	web.announce(stdout)
	obs.announce(stdout)
	webDone := make(chan struct{})
	go func() {
		defer close(webDone)
		web.serve(ctx)
	}()
	defer func() {
		cancel()
		<-webDone
	}()
	c2sDone, fedDone := make(chan error, 1), make(chan error, 1)
	go func() { c2sDone <- srv.Serve(ctx, ln) }()
	// Federation outlives the client service by the pool's drain: the last
	// presences go out on the streams peers opened (bidi), and a new
	// stream's dialback needs this listener to answer.
	fedCtx, fedStop := context.WithCancel(context.WithoutCancel(ctx))
	defer fedStop()
	if fed != nil {
		log.Info("federation", "s2s", fed.ln.Addr().String())
		fmt.Fprintf(stdout, "Other XMPP servers reach %s on %s.\n", strings.Join(x.domains, ", "), fed.ln.Addr())
		go func() { fedDone <- fed.server.Serve(fedCtx, fed.ln) }()
	}
	var erased func()
	if store.lite != nil {
		sc := newScrubber(store.lite, log)
		go sc.run(ctx)
		erased = sc.Kick
	}
	if opts.content.expiry > 0 {
		go expireEvery(ctx, store, opts.content, obs.m.Registry(), log)
	}
	go func() {
		if err := followLog(ctx, follow, srv, accts, erased, log); err != nil {
			log.Error("the log is no longer followed: room events and account changes reach no session", "err", err)
		}
	}()
	err = runner.Run(ctx, obs.subscribe(store))
	cancel()
	if xerr := <-c2sDone; xerr != nil && err == nil {
		err = xerr
	}
	if nodes != nil {
		// Once every session here said goodbye through it.
		nodes.Close()
	}
	if fed != nil {
		// Once every session ended: their last presences to contacts at
		// other servers are queued, and go out before the streams end.
		fed.pool.Close()
		fedStop()
		if ferr := <-fedDone; ferr != nil && err == nil {
			err = ferr
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	// Events another process appended since the last batch of this one
	// have not reached the inline read model yet: take it back from the
	// writer and catch it up, so that it stops where the log does.
	if store.lite != nil {
		store.lite.SetInline()
	}
	if _, err := runner.CatchUp(context.Background(), store); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// archiveReader returns the archive's reader. On the embedded store the
// archive is kept in the store's write transactions from then on (an
// appended message is archived when its append returns); on a cluster's
// log it follows the log like the other read models, and each read waits
// until it has passed the log's head as the read began: a MAM query after
// an acknowledgement, from this node or another, finds the message.
func archiveReader(o *owner, log *slog.Logger) (*archiveproj.Reader, error) {
	if o.store.lite != nil {
		inline, err := o.runner.Inline(archiveModel().Name())
		if err != nil {
			return nil, err
		}
		o.store.lite.SetInline(inline)
		return archiveModel().Reader(o.db, o.store.lite.Unsynced), nil
	}
	name := archiveModel().Name()
	all := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, readYourWrites)
		defer cancel()
		head, err := o.store.Head(ctx)
		if err != nil {
			return err
		}
		return o.runner.Await(ctx, name, head)
	}
	// The duplicate check of a message being sent: when this node's
	// archive cannot show its own latest appends soon (its subscription
	// is being recreated after a NATS server was lost), the message goes
	// ahead unchecked. A retry archived twice is the lesser harm: failing
	// every message until the archive catches up refused users' messages
	// for the seconds that takes.
	own := func(ctx context.Context) error {
		wctx, cancel := context.WithTimeout(ctx, ownWrites)
		defer cancel()
		if err := o.runner.Await(wctx, name, o.store.lastAppended()); err != nil && ctx.Err() == nil {
			log.Warn("archive: the duplicate check goes ahead without this node's latest appends", "err", err)
		}
		return ctx.Err()
	}
	return archiveModel().Reader(o.db, nil).WithBarriers(all, own), nil
}

// readYourWrites bounds how long an archive read waits for this node's
// archive to catch up with the log; past it the read fails (the client
// gets an error it can retry) rather than answer without what was
// acknowledged.
const readYourWrites = 10 * time.Second

// ownWrites bounds how long a message's duplicate check waits for this
// node's archive to show the node's own appends.
const ownWrites = 2 * time.Second

// owner is what the one process that writes read models holds: the data
// directory's lock, the store and the projection runner.
type owner struct {
	lock   *os.File
	store  *logStore
	db     *sql.DB // read models
	runner *projections.Runner
}

// openOwner takes the data directory's lock first, so that a second serve
// or rebuild fails before it touches anything.
func openOwner(ctx context.Context, c Config, create bool, log *slog.Logger) (_ *owner, err error) {
	o := &owner{}
	defer func() {
		if err != nil {
			o.Close()
		}
	}()
	// A cluster node's directory holds only its read models, made as
	// needed: the log is elsewhere.
	if create || c.Store != "" {
		if err := os.MkdirAll(c.Data, 0o750); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
	}
	if o.lock, err = lockData(c); err != nil {
		return nil, err
	}
	if o.store, err = openStore(ctx, c, create, log); err != nil {
		return nil, err
	}
	if o.db, err = sqlite.OpenDB(o.store.readModels); err != nil {
		return nil, err
	}
	if o.runner, err = projections.NewRunner(ctx, o.db, log, allProjections()...); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *owner) Close() error {
	var errs []error
	if o.db != nil {
		errs = append(errs, o.db.Close())
	}
	if o.store != nil {
		errs = append(errs, o.store.Close())
	}
	if o.lock != nil {
		errs = append(errs, o.lock.Close())
	}
	return errors.Join(errs...)
}

// demoAccount makes sure demo@<first domain> (demo@localhost by default)
// exists and prints its password. The password is kept in
// DATA/demo-password (mode 0600), a secret beside the log, so that every
// start can print it again.
func demoAccount(ctx context.Context, c Config, ls *logStore, domain string, a *accounts.Service, stdout io.Writer) error {
	demoJID := "demo@" + domain
	if ls.cluster() {
		return demoAccountShared(ctx, ls, demoJID, a, stdout)
	}
	pwFile := filepath.Join(c.Data, "demo-password")
	password, err := os.ReadFile(pwFile)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		pw := newPassword()
		if err := a.Register(ctx, demoJID, pw); errors.Is(err, account.ErrExists) {
			fmt.Fprintf(stdout, "Demo account %s exists, but its password is not in %s: set one with\n  annals user passwd %s --data %s\n", demoJID, pwFile, demoJID, c.Data)
			return nil
		} else if err != nil {
			return fmt.Errorf("create the demo account: %w", err)
		}
		if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
			return fmt.Errorf("save the demo password: %w", err)
		}
		password = []byte(pw)
	default:
		return fmt.Errorf("read the demo password: %w", err)
	}
	printDemo(stdout, demoJID, string(password))
	return nil
}

func printDemo(stdout io.Writer, demoJID, password string) {
	fmt.Fprintf(stdout, "Demo account: %s  password: %s\n", demoJID, strings.TrimSpace(password))
	fmt.Fprintf(stdout, "Connect with any XMPP client as %s (self-signed certificate: accept it, or give --tls-cert).\n", demoJID)
}

// demoAccountShared is demoAccount on a cluster: the password is kept in
// the bucket beside the log, and the first node to start makes it.
func demoAccountShared(ctx context.Context, ls *logStore, demoJID string, a *accounts.Service, stdout io.Writer) error {
	const key = "demo-password"
	kv, err := ls.kept(ctx)
	if err != nil {
		return err
	}
	pw, rev, err := kv.Get(ctx, key)
	if err == nil && rev == 0 {
		fresh := newPassword()
		var ok bool
		if _, ok, err = kv.Set(ctx, key, []byte(fresh), 0); err == nil && ok {
			if err := a.Register(ctx, demoJID, fresh); errors.Is(err, account.ErrExists) {
				fmt.Fprintf(stdout, "Demo account %s exists, with a password made before: set one with\n  annals user passwd %s --store …\n", demoJID, demoJID)
				return kv.Delete(ctx, key)
			} else if err != nil {
				return errors.Join(fmt.Errorf("create the demo account: %w", err), kv.Delete(ctx, key))
			}
			pw = []byte(fresh)
		} else if err == nil { // another node came first
			pw, _, err = kv.Get(ctx, key)
		}
	}
	if err != nil {
		return fmt.Errorf("the demo password: %w", err)
	}
	printDemo(stdout, demoJID, string(pw))
	return nil
}
