package push

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	pushdomain "annals.im/annals/domain/push"
)

// Accounts keeps the registrations, in the account streams
// (app/accounts).
type Accounts interface {
	Push(ctx context.Context, acct string) (pushdomain.State, error)
	PushDo(ctx context.Context, acct string, cmd pushdomain.Command) (pushdomain.State, bool, error)
}

// Options keeps the publish-options beside the log (adapters/secrets).
type Options interface {
	Put(ctx context.Context, acct, node, item string, values []string) error
	Node(ctx context.Context, acct, node string) (map[string][]string, error)
	Delete(ctx context.Context, acct, node, item string) error
}

// Sender sends an IQ from an account's bare JID to another server and
// returns the answer (c2s.Server.AccountIQ).
type Sender interface {
	AccountIQ(ctx context.Context, from, to jid.JID, typ, payload string) (*stanza.Element, error)
}

// Defaults of Limits.
const (
	DefaultQueue     = 1024
	DefaultWorkers   = 4
	DefaultMaxErrors = 3
	DefaultTimeout   = 30 * time.Second
	// maxKnown bounds the accounts whose registrations are held; past it
	// the table starts over, and each account costs one read again.
	maxKnown = 1 << 16
)

// Limits bound the service; a zero field takes its default.
type Limits struct {
	Registrations int           // per account (--push-max-registrations)
	Queue         int           // messages awaiting a worker; past it, dropped
	Workers       int           // notifications in progress at once
	MaxErrors     int           // errors in a row that disable a node
	Timeout       time.Duration // for the app server's answer
}

// Config is what the service needs.
type Config struct {
	Accounts Accounts
	Options  Options
	Sender   Sender
	// Local reports whether a domain is served here: no push service is.
	Local func(domain string) bool
	// WithSender and WithBody put the message's sender and body in the
	// notification (they go to the app server, a third party).
	WithSender, WithBody bool
	Limits               Limits
	Log                  *slog.Logger
}

// Service is the push notification service.
type Service struct {
	cfg   Config
	queue chan job
	known known

	errMu  sync.Mutex
	errors map[[3]string]int // errors in a row by (account, service, node)
}

// job is one message for an account.
type job struct {
	acct, sender, body string
	awake              []string
}

// New returns the service; Run starts its workers.
func New(cfg Config) *Service {
	cfg.Limits.Registrations = cmp.Or(cfg.Limits.Registrations, pushdomain.DefaultMaxRegistrations)
	cfg.Limits.Queue = cmp.Or(cfg.Limits.Queue, DefaultQueue)
	cfg.Limits.Workers = cmp.Or(cfg.Limits.Workers, DefaultWorkers)
	cfg.Limits.MaxErrors = cmp.Or(cfg.Limits.MaxErrors, DefaultMaxErrors)
	cfg.Limits.Timeout = cmp.Or(cfg.Limits.Timeout, DefaultTimeout)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Local == nil {
		cfg.Local = func(string) bool { return false }
	}
	return &Service{cfg: cfg, queue: make(chan job, cfg.Limits.Queue), known: known{m: make(map[string]bool)},
		errors: make(map[[3]string]int)}
}

// known remembers, per account, whether it has registrations: one that
// has none costs the session core a lookup and no more. Only this
// service adds registrations, and it notes each, so "none" stays true
// until it does; "some" is read again for each message (an account
// deleted and made again has none).
type known struct {
	mu sync.Mutex
	m  map[string]bool // account -> has registrations
}

func (k *known) set(acct string, st pushdomain.State) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.m) >= maxKnown {
		clear(k.m)
	}
	k.m[acct] = len(st.Registrations) > 0
}

// none reports whether acct is known to have no registrations.
func (k *known) none(acct string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	has, ok := k.m[acct]
	return ok && !has
}
