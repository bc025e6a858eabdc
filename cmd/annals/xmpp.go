package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"time"

	peppkg "annals.im/annals/adapters/features/pep"
	"annals.im/annals/adapters/keys"

	"annals.im/annals/adapters/features/disco"
	"annals.im/annals/adapters/features/extdisco"
	lastactivity "annals.im/annals/adapters/features/last"
	"annals.im/annals/adapters/features/mam"
	mirrorfeature "annals.im/annals/adapters/features/mirror"
	"annals.im/annals/adapters/features/muc"
	"annals.im/annals/adapters/features/ping"
	"annals.im/annals/adapters/features/push"
	vcardfeature "annals.im/annals/adapters/features/vcard"
	softwareversion "annals.im/annals/adapters/features/version"
	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/secrets"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/adapters/credentials"
	"annals.im/annals/app/accounts"
	"annals.im/annals/app/archive"
	appmirrors "annals.im/annals/app/mirrors"
	"annals.im/annals/app/pep"
	"annals.im/annals/app/rooms"
	appvcard "annals.im/annals/app/vcard"
	"annals.im/annals/domain/account"
)

// version is reported to clients (XEP-0092).
const version = "0.1.0-dev"

type xmppFlags struct {
	cluster      c2s.Cluster   // the other nodes; nil when alone
	elsewhere    muc.Elsewhere // the other nodes' sessions in rooms; nil when alone
	rooms        *lateRooms    // set by listen to the room service, for the bus; nil: not asked
	c2s          string
	domains      []string
	plaintext    bool
	registration bool
	cert, key    string
	resume       time.Duration
	muc          string // the MUC service's domain; "" none
	lockRooms    bool
	detachedShow string
	maxStanza    int // bytes
	maxDepth     int // elements nested in a stanza
	login        loginFlags
	// connection limits: see c2s.Config
	maxConns, maxConnsPerIP int
	loginTimeout            time.Duration
	quotas                  quotaFlags // per-account quotas: quotas.go
	traffic                 trafficFlags
	s2s                     s2sFlags   // federation.go
	mirrorTrust             stringList // servers whose DMUC3 mirrors may mirror our rooms
	mirrorOf                stringList // MUC services elsewhere whose rooms we mirror
	mirrorService           bool       // serve mirror.<domain> (with --s2s)
	idleLeave               time.Duration
	voiceInterval           time.Duration
	mirrorTimeout           time.Duration
	mirrorResendPage        int
	admins                  stringList // bare JIDs of the administrators (XEP-0133): admin.go
	extdisco                extdiscoFlags
	push                    pushFlags
	web                     webFlags
	upload                  uploadFlags       // upload.go
	external                *extdisco.Service // from extdisco, by validate
	metrics                 c2s.Metrics       // set by serve
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func (x *xmppFlags) validate() error {
	for _, d := range x.domains {
		if _, err := account.ParseJID("a@" + d); err != nil {
			return fmt.Errorf("%w: --domain %q is not a domain", errUsage, d)
		}
	}
	if (x.cert == "") != (x.key == "") {
		return fmt.Errorf("%w: give --tls-cert and --tls-key together", errUsage)
	}
	switch x.detachedShow {
	case "away", "xa", "dnd", "chat":
	default:
		return fmt.Errorf("%w: --muc-detached-show %q: want away, xa, dnd or chat", errUsage, x.detachedShow)
	}
	if x.muc != "" {
		if _, err := account.ParseJID("room@" + x.muc); err != nil || slices.Contains(x.domains, x.muc) {
			return fmt.Errorf("%w: --muc %q is not a domain of its own", errUsage, x.muc)
		}
	}
	if x.maxStanza < 4096 || x.maxStanza > 64<<20 {
		return fmt.Errorf("%w: --max-stanza %d: give bytes between 4096 and 67108864 (RFC 6120 §13.12 asks for at least 10000)", errUsage, x.maxStanza)
	}
	if x.maxDepth < 8 || x.maxDepth > 1024 {
		return fmt.Errorf("%w: --max-stanza-depth %d: give between 8 and 1024 nested elements", errUsage, x.maxDepth)
	}
	if err := x.login.validate(); err != nil {
		return err
	}
	if err := x.quotas.validate(x.maxStanza); err != nil {
		return err
	}
	if err := x.traffic.validate(x.maxStanza); err != nil {
		return err
	}
	if err := x.s2s.validate(); err != nil {
		return err
	}
	for _, d := range append(slices.Clone(x.mirrorTrust), x.mirrorOf...) {
		if _, err := account.ParseJID("a@" + d); err != nil {
			return fmt.Errorf("%w: --mirror-trust and --mirror-of take domains: %q is none", errUsage, d)
		}
	}
	if len(x.mirrorOf) > 0 && (x.s2s.addr == "" || !x.mirrorService) {
		return fmt.Errorf("%w: --mirror-of mirrors rooms of other servers: it needs --s2s and the mirror service (--mirror-service)", errUsage)
	}
	if x.idleLeave < 0 {
		return fmt.Errorf("%w: --muc-idle-leave must be 0 (never) or more", errUsage)
	}
	if x.voiceInterval <= 0 {
		return fmt.Errorf("%w: --muc-voice-request-interval must be more than 0", errUsage)
	}
	if x.mirrorTimeout < 3*time.Millisecond || x.mirrorResendPage < 1 {
		return fmt.Errorf("%w: --mirror-timeout must be more than 3ms, --mirror-resend-page 1 or more", errUsage)
	}
	if err := x.validateAdmins(); err != nil {
		return err
	}
	var err error
	if err := x.web.validate(); err != nil {
		return err
	}
	if err := x.upload.validate(x.domains, x.muc, x.web); err != nil {
		return err
	}
	if err := x.push.validate(); err != nil {
		return err
	}
	if x.external, err = x.extdisco.service(x.domains); err != nil {
		return err
	}
	if x.maxConns < 0 || x.maxConnsPerIP < 1 || x.loginTimeout <= 0 {
		return fmt.Errorf("%w: --max-connections must be 0 or more, --max-connections-per-ip 1 or more, --login-timeout more than 0", errUsage)
	}
	if x.plaintext {
		if err := c2s.CheckPlaintext(x.c2s); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	return nil
}

// features registers the feature packages served on m: one line each.
// Those that need the server itself (the room service) follow in listen.
func features(m *mux.Mux, archives *mam.Service) {
	disco.Register(m, "Annals")
	ping.Register(m)
	softwareversion.Register(m, "Annals", version)
	archives.Register(m)
}

// listen builds the c2s server and opens its listener, and federation's
// unless --s2s is empty (fed is nil then).
func (x xmppFlags) listen(ctx context.Context, c Config, ls *logStore, creds *credentials.Store, accts *accounts.Service, peps *pep.Service, vcards *appvcard.Service, arch *archive.Service, rms *rooms.Service, mirrors *appmirrors.Service, kept *secrets.Store, log *slog.Logger) (_ *c2s.Server, _ net.Listener, fed *federation, web *webServer, err error) {
	var cert tls.Certificate
	if x.cert != "" {
		cert, err = tls.LoadX509KeyPair(x.cert, x.key)
	} else {
		cert, err = ls.selfSigned(ctx, c, x.domains)
	}
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("TLS certificate: %w", err)
	}
	secret, err := ls.serverSecret(ctx, c)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	resume := x.resume
	if resume <= 0 {
		resume = -1 // c2s: no resumption
	}
	cfg := c2s.Config{
		Domains:       x.domains,
		TLS:           c2s.ServerTLS(cert),
		Plaintext:     x.plaintext,
		Credentials:   creds.Get,
		Accounts:      accts,
		Blocking:      accts,
		Registration:  x.registration,
		Registrar:     accts,
		Archive:       arch,
		ResumeTimeout: resume,
		Secret:        secret,
		MaxStanza:     x.maxStanza,
		MaxDepth:      x.maxDepth,
		Mux:           mux.New(),
		Log:           log,
		Metrics:       x.metrics,

		MaxConnections:      x.maxConns,
		MaxConnectionsPerIP: x.maxConnsPerIP,
		LoginTimeout:        x.loginTimeout,
	}
	cfg.Cluster = x.cluster
	x.login.apply(&cfg)
	x.quotas.apply(&cfg)
	x.traffic.apply(&cfg)
	var srv *c2s.Server
	mirrorSvc := &lateMirror{} // the mirror service needs the server, which needs it
	if x.s2s.addr != "" {
		// The room service federates as a domain of its own: remote users
		// join its rooms, and its stanzas go out from it.
		served := slices.Clone(x.domains)
		if x.muc != "" {
			served = append(served, x.muc)
		}
		if x.mirrorService {
			served = append(served, x.mirrorDomain())
			cfg.MirrorOf, cfg.MirrorDomain, cfg.Mirror = x.mirrorOf, x.mirrorDomain(), mirrorSvc
		}
		if fed, err = x.s2s.newFederation(ctx, served, cert, secret, &srv, log); err != nil {
			return nil, nil, nil, nil, err
		}
		defer func() {
			if err != nil {
				fed.ln.Close()
				fed.pool.Close()
			}
		}()
		cfg.Remote = fed
	}
	// Push notifications go to app servers elsewhere: with federation only.
	var pushes *push.Service
	var pushSender *lateSender
	if x.s2s.addr != "" {
		served := append(slices.Clone(x.domains), x.muc)
		if pushes, pushSender = x.push.service(accts, kept, served, log); pushes != nil {
			cfg.Push = pushes
		}
	}
	archives := mam.New(arch, cfg.MAMPageBytes, log)
	features(cfg.Mux, archives)
	srv, err = c2s.NewServer(cfg)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	bookmarks := peppkg.New(peppkg.Config{PEP: peps, Rosters: accts, Limits: x.quotas.pepLimits(), Log: log}, srv)
	bookmarks.Register(cfg.Mux)
	lastactivity.New(accts, srv).Register(cfg.Mux)
	if pushes != nil {
		pushSender.srv = srv
		pushes.Register(cfg.Mux)
		go pushes.Run(ctx)
	}
	if x.external != nil {
		x.external.Register(cfg.Mux)
	}
	vcardfeature.New(vcardfeature.Config{VCards: vcards, MaxBytes: x.quotas.vcardMax(x.maxStanza), Log: log}, srv).Register(cfg.Mux)
	if admin, err := x.adminCommands(srv, accts, log); err != nil {
		return nil, nil, nil, nil, err
	} else if admin != nil {
		admin.Register(cfg.Mux)
	}
	if x.muc != "" {
		key, err := keys.Derive(secret, keys.OccupantID)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		mcfg := muc.Config{Domain: x.muc, Domains: x.domains, Rooms: rms, Archive: arch, RoomArchive: archives, Bookmarks: bookmarks, LockNewRooms: x.lockRooms,
			DetachedShow: x.detachedShow, OccupantKey: key, MirrorTrust: x.mirrorTrust, MirrorTimeout: x.mirrorTimeout,
			MirrorResendPage: x.mirrorResendPage, IdleLeave: x.idleLeave, VoiceRequestInterval: x.voiceInterval, Occupancies: rms, VCardMaxBytes: x.quotas.vcardMax(x.maxStanza), Elsewhere: x.elsewhere, Log: log}
		x.traffic.applyMUC(&mcfg)
		svc, err := muc.New(mcfg, srv)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		svc.Register(cfg.Mux)
		if x.rooms != nil {
			x.rooms.Service = svc
		}
	}
	if x.s2s.addr != "" && x.mirrorService {
		// On with federation (issue 13): it mirrors nothing but the
		// --mirror-of services, and refuses the rest.
		svc, err := mirrorfeature.New(mirrorfeature.Config{Domain: x.mirrorDomain(), MirrorOf: x.mirrorOf, Replicas: mirrors, Send: fed.Send,
			Timeout: x.mirrorTimeout, Log: log}, srv)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		mirrorSvc.Service = svc
		svc.Register(cfg.Mux)
	}
	ln, err := net.Listen("tcp", x.c2s)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("c2s: %w", err)
	}
	uploads, err := x.upload.service(c.Data, x.domains, accts, log)
	if err != nil {
		ln.Close()
		return nil, nil, nil, nil, err
	}
	if uploads != nil {
		uploads.Register(cfg.Mux)
	}
	if uploads != nil {
		x.web.mounts = append(x.web.mounts, uploadRoutes(uploads))
	}
	if web, err = x.web.open(ctx, cert, srv, cfg.MaxStanza, log); err != nil {
		ln.Close()
		return nil, nil, nil, nil, err
	}
	if err := x.upload.settle(uploads, web, x.domains[0]); err != nil {
		ln.Close()
		web.close()
		return nil, nil, nil, nil, err
	}
	return srv, ln, fed, web, nil
}

// secretFile returns the 32 random bytes kept in path, making them on first
// use: the server secret, from which c2s derives a key per purpose. It must
// not change between restarts: the salts made up for unknown users would
// change, telling that those users are unknown, and occupant ids too.
func secretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) == 32 {
		return b, nil
	}
	if err == nil {
		// Never replaced: the content keys are wrapped under a key
		// derived from it, and a new secret would leave every sealed
		// message unreadable.
		return nil, fmt.Errorf("%s is %d bytes, not 32: restore it from a backup", path, len(b))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	return b, nil
}

// lateMirror is the mirror service for the session core, set once both
// exist.
type lateMirror struct{ *mirrorfeature.Service }

// mirrorDomain is this server's DMUC3 mirror service: mirror.<first domain>.
func (x xmppFlags) mirrorDomain() string { return "mirror." + x.domains[0] }
