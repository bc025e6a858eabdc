package c2s

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/netip"
	"time"

	"annals.im/annals/adapters/credentials"
	"annals.im/annals/adapters/mux"
)

// Config is what a Server needs.
type Config struct {
	Domains   []string
	TLS       *tls.Config // offered with STARTTLS, which is then required
	Plaintext bool        // allow streams without TLS (loopback only: see CheckPlaintext)
	// Credentials returns the keys of the account with the given bare JID.
	Credentials func(ctx context.Context, bareJID string) (credentials.Credentials, error)
	// Secret is the server's one secret, kept stable across restarts.
	// SCRAM's salts made up for unknown users are keyed with it as is
	// (sasl.Start), as before keys per purpose, so that an unknown name's
	// salt does not change on upgrade (a changed salt would tell an observer
	// who asked before that the name is unknown); every other purpose
	// derives its own key from it (keys.go).
	Secret      []byte
	MaxStanza   int // bytes; default 256 KiB
	MaxDepth    int // elements nested in a stanza, the stream's included; default wellformed.DefaultMaxDepth
	IdleTimeout time.Duration
	Accounts    Accounts // rosters; nil: no roster service
	// Registration turns on in-band registration (XEP-0077) through
	// Registrar; off by default.
	Registration bool
	Registrar    Registrar
	// Blocking keeps the accounts' block lists (XEP-0191, blocking.go);
	// nil: blocking is not served.
	Blocking Blocking
	// Archive records and reads 1:1 messages (XEP-0313); nil: messages
	// are routed only.
	Archive Archive
	// Push is told of each message for an account, to notify its clients
	// that sleep (XEP-0357); nil: no push notifications.
	Push Pusher
	// Remote reaches other servers (federation); nil: a stanza to another
	// server is answered remote-server-not-found.
	Remote Remote
	// Cluster is the other nodes serving these domains from the same log
	// (cluster.go); nil: this node is alone.
	Cluster Cluster
	// MirrorOf are the MUC services elsewhere whose rooms this server
	// mirrors (DMUC3, docs/dmuc.md), through its service MirrorDomain: an
	// account's join to one of their rooms says so.
	MirrorOf     []string
	MirrorDomain string
	// Mirror is the mirror service (nil: none): it takes what accounts
	// say in the rooms it mirrors.
	Mirror Mirror
	// ResumeTimeout is how long a session whose connection broke waits to
	// be resumed (XEP-0198); default 300 s, negative: no resumption.
	ResumeTimeout time.Duration
	// Mux holds the features registered by packages of their own
	// (adapters/features); the server adds its built-in ones to it. nil:
	// only the built-in ones.
	Mux *mux.Mux
	Log *slog.Logger
	// Metrics counts connections, logins and stanzas (metrics.go); nil:
	// nothing is counted.
	Metrics Metrics

	// Login throttling (throttle.go): failures per account and per
	// address (IPv6: per /64) answered without delay, defaults 5 and 10;
	// then each attempt waits FailureDelay (1 s), doubling per failure up
	// to FailureDelayMax (20 s). A key quiet for FailureWindow (15 min) is
	// forgotten; at most ThrottleKeys (65,536) keys are held. Clients at
	// TrustedProxies are not throttled by address, only by account.
	FailuresPerAccount, FailuresPerIP int
	FailureDelay, FailureDelayMax     time.Duration
	FailureWindow                     time.Duration
	ThrottleKeys                      int
	TrustedProxies                    []netip.Prefix

	// MaxConnections caps the connections open at once, MaxConnectionsPerIP
	// those from one address (an IPv6 /64); LoginTimeout is how long a
	// connection has from accept to a bound resource. See listen.go.
	MaxConnections, MaxConnectionsPerIP int
	LoginTimeout                        time.Duration

	// Account quotas (quota.go). RegistrationsPerAddress in-band
	// registrations are allowed per address (IPv6: per /64) per
	// RegistrationWindow; MaxResources sessions of one account may be bound
	// at once, detached resumable ones included; MaxRosterItems contacts fit
	// in one roster, MaxBlockedJIDs JIDs in one block list. Zero: the
	// default; negative: no limit.
	RegistrationsPerAddress int
	RegistrationWindow      time.Duration
	MaxResources            int
	MaxRosterItems          int
	MaxBlockedJIDs          int

	// Traffic and storage bounds (traffic.go). MaxUnacked and
	// MaxUnackedBytes bound a stream-management session's unacknowledged
	// stanzas (defaults 5,000 and 8 MiB); OutQueueBytes the bytes waiting
	// for a slow client (8 MiB, besides OutQueue stanzas); MAMPageBytes a
	// MAM page (2 MiB).
	MaxUnacked, MaxUnackedBytes int
	OutQueueBytes               int
	MAMPageBytes                int
}
