package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Options configure a Bus. Node is required; every other field has a
// default.
type Options struct {
	// Node names this node among the others: letters, digits, '-' and '_'.
	Node string
	// Prefix of every subject; default "annals.bus".
	Prefix string
	// Heartbeat is how often a node says it is alive; default 2s.
	Heartbeat time.Duration
	// Missed heartbeats make a node count as gone; default 3.
	Missed int
	// MaxNodes bounds the other nodes tracked; default 64.
	MaxNodes int
	// MaxSessions bounds the sessions tracked per node, this one's
	// included; default 1<<20.
	MaxSessions int
	// MaxStanza bounds a forwarded stanza in bytes; default 1 MiB less a
	// margin for the headers (NATS's default max_payload is 1 MiB).
	MaxStanza int
	// MaxPresence bounds a session's presence kept in the tables, in
	// bytes; default 16 KiB. A larger one is kept as a bare available
	// presence (the session is still known to be available).
	MaxPresence int
	// Position, when set, says how far this node's read models have
	// followed the log; heartbeats carry it, for `annals node list`.
	Position func() uint64
	// Log is where dropped messages and lost nodes are reported.
	Log *slog.Logger
}

func (o *Options) defaults() error {
	if o.Node == "" || strings.Trim(o.Node, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" || len(o.Node) > 64 {
		return fmt.Errorf("cluster: node name %q: use 1 to 64 letters, digits, '-' or '_'", o.Node)
	}
	if o.Prefix == "" {
		o.Prefix = "annals.bus"
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 2 * time.Second
	}
	if o.Missed <= 0 {
		o.Missed = 3
	}
	if o.MaxNodes <= 0 {
		o.MaxNodes = 64
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 1 << 20
	}
	if o.MaxStanza <= 0 {
		o.MaxStanza = 1<<20 - 4096
	}
	if o.MaxPresence <= 0 {
		o.MaxPresence = 16 << 10
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return nil
}

// Session is a client session on another node.
type Session struct {
	JID  string // full JID
	Node string
	// Presence is the session's available presence as broadcast (from
	// set, no to); "" while it has sent none (bound only).
	Presence string
}

// Handler is what the bus hands to this node's client service.
type Handler interface {
	// FromPeer delivers wire, a stanza from another node, to the session
	// `to` (a full JID) or to every available session of `to` (a bare
	// JID) held here.
	FromPeer(to, wire string)
	// PeerGone reports that a session of another node that was available
	// with presence is gone without saying so: its node stopped answering.
	PeerGone(full, presence string)
	// AttachmentGone reports that acct's sessions attached to room on
	// another node are gone with their node.
	AttachmentGone(room, acct string)
	// Replaced ends the session here bound to full: a client bound the
	// same full JID on another node.
	Replaced(full string)
}

// Bus connects this node to the others. Its methods are safe for
// concurrent use.
type Bus struct {
	nc   *nats.Conn
	opts Options
	inc  string // this incarnation: a fresh random ID per start

	mu     sync.Mutex
	seq    uint64                    // of this node's last announcement
	own    map[string]string         // this node's bound sessions: full JID -> presence
	peers  map[string]*peer          // other nodes by name
	byBare map[string]map[string]int // bare JID -> node -> sessions there (to find peers fast)
	// attached: room+" "+account -> node -> the account's show there
	// (rooms.go); the entries ride in the same tables as the sessions,
	// under keys that start with '@', which no JID does.
	attached map[string]map[string]string
	handler  Handler
	subs     []*nats.Subscription
	done     chan struct{}
	stopped  sync.WaitGroup
}

// peer is what this node knows of another.
type peer struct {
	name     string
	inc      string
	seq      uint64
	seen     time.Time
	sessions map[string]string // full JID -> presence
	syncing  bool
}

// New returns a bus for this node over nc; Start joins it.
func New(nc *nats.Conn, opts Options) (*Bus, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	b := make([]byte, 8)
	rand.Read(b)
	return &Bus{nc: nc, opts: opts, inc: hex.EncodeToString(b), own: make(map[string]string),
		peers: make(map[string]*peer), byBare: make(map[string]map[string]int),
		attached: make(map[string]map[string]string), done: make(chan struct{})}, nil
}

// Node is this node's name.
func (b *Bus) Node() string { return b.opts.Node }

func (b *Bus) subject(parts ...string) string {
	return b.opts.Prefix + "." + strings.Join(parts, ".")
}

// announcement is a message on <prefix>.sessions: one session's change,
// a heartbeat (Count set, JID empty) or a goodbye.
type announcement struct {
	Node     string `json:"node"`
	Inc      string `json:"inc"`
	Seq      uint64 `json:"seq"`
	JID      string `json:"jid,omitempty"`
	Bound    bool   `json:"bound,omitempty"`
	Presence string `json:"presence,omitempty"`
	Beat     bool   `json:"beat,omitempty"`
	Count    int    `json:"count,omitempty"`   // entries of the node's table
	Clients  int    `json:"clients,omitempty"` // its sessions among them
	Position uint64 `json:"position,omitempty"`
	Bye      bool   `json:"bye,omitempty"`
}

// Start refuses a node name another live node answers to, then follows the
// other nodes and hands h what they send this node, until Close.
func (b *Bus) Start(ctx context.Context, h Handler) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Heartbeat*time.Duration(b.opts.Missed))
	defer cancel()
	if _, err := b.nc.RequestWithContext(ctx, b.subject("node", b.opts.Node, "sync"), []byte(`{}`)); err == nil {
		return fmt.Errorf("cluster: another node is serving as %q: give each node its own --node", b.opts.Node)
	} else if !errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("cluster: %w", err)
	}
	b.mu.Lock()
	b.handler = h
	b.mu.Unlock()
	for subj, f := range map[string]nats.MsgHandler{
		b.subject("sessions"):                     b.onAnnouncement,
		b.subject("node", b.opts.Node, "deliver"): b.onDeliver,
		b.subject("node", b.opts.Node, "sync"):    b.onSync,
	} {
		sub, err := b.nc.Subscribe(subj, f)
		if err != nil {
			b.Close()
			return fmt.Errorf("cluster: subscribe %s: %w", subj, err)
		}
		// Presence for thousands of sessions at once must not be cut
		// by the client's default pending limits.
		sub.SetPendingLimits(1<<20, 256<<20)
		b.subs = append(b.subs, sub)
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		b.Close()
		return fmt.Errorf("cluster: %w", err)
	}
	b.stopped.Add(1)
	go b.beat()
	b.opts.Log.Info("cluster: joined", "node", b.opts.Node, "heartbeat", b.opts.Heartbeat)
	return nil
}

// Close says goodbye to the other nodes and stops following them.
func (b *Bus) Close() {
	b.mu.Lock()
	select {
	case <-b.done:
		b.mu.Unlock()
		return
	default:
	}
	close(b.done)
	subs := b.subs
	b.seq++
	bye := announcement{Node: b.opts.Node, Inc: b.inc, Seq: b.seq, Bye: true}
	b.mu.Unlock()
	b.stopped.Wait()
	for _, s := range subs {
		s.Unsubscribe()
	}
	b.publish(bye)
	b.nc.Flush()
}

func (b *Bus) publish(a announcement) {
	data, _ := json.Marshal(a)
	if err := b.nc.Publish(b.subject("sessions"), data); err != nil {
		b.opts.Log.Warn("cluster: announcement not sent", "err", err)
	}
}

// Announce tells the other nodes about a session of this node: bound
// (false: it ended) and its available presence ("" when none).
func (b *Bus) Announce(full string, bound bool, presence string) {
	if len(presence) > b.opts.MaxPresence {
		presence = bareAvailable(full)
	}
	b.announce(full, bound, presence)
}

// announce records and sends one entry of this node's table.
func (b *Bus) announce(full string, bound bool, presence string) {
	b.mu.Lock()
	if bound {
		if _, ok := b.own[full]; !ok && len(b.own) >= b.opts.MaxSessions {
			b.mu.Unlock()
			b.opts.Log.Warn("cluster: too many sessions on this node to announce", "max", b.opts.MaxSessions, "session", full)
			return
		}
		b.own[full] = presence
	} else {
		delete(b.own, full)
	}
	b.seq++
	a := announcement{Node: b.opts.Node, Inc: b.inc, Seq: b.seq, JID: full, Bound: bound, Presence: presence}
	// Published under the lock: the sequence numbers go out in order.
	b.publish(a)
	b.mu.Unlock()
}

// bareAvailable stands for a presence too large to keep.
func bareAvailable(full string) string {
	return "<presence from='" + escape(full) + "'/>"
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;").Replace(s)
}

// Sessions returns the sessions of the account bare on other nodes.
func (b *Bus) Sessions(bare string) []Session {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Session
	for node := range b.byBare[bare] {
		p := b.peers[node]
		for full, pres := range p.sessions {
			if bareOf(full) == bare {
				out = append(out, Session{JID: full, Node: node, Presence: pres})
			}
		}
	}
	slices.SortFunc(out, func(x, y Session) int { return strings.Compare(x.JID, y.JID) })
	return out
}

// Nodes returns the other live nodes and how many sessions each holds.
func (b *Bus) Nodes() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.peers))
	for name, p := range b.peers {
		out[name] = len(p.sessions)
	}
	return out
}

// Send hands wire to node for the session to (a full JID), or for every
// available session of to (a bare JID) there.
func (b *Bus) Send(node, to, wire string) {
	if len(wire) > b.opts.MaxStanza {
		b.opts.Log.Warn("cluster: stanza too large to forward", "node", node, "to", to, "bytes", len(wire))
		return
	}
	m := nats.NewMsg(b.subject("node", node, "deliver"))
	m.Header.Set("To", to)
	m.Data = []byte(wire)
	if err := b.nc.PublishMsg(m); err != nil {
		b.opts.Log.Warn("cluster: stanza not forwarded", "node", node, "to", to, "err", err)
	}
}

// Replace asks node to end its session bound to full, which a client
// just bound here (RFC 6120 §7.7.2.2: the newer session wins).
func (b *Bus) Replace(node, full string) {
	m := nats.NewMsg(b.subject("node", node, "deliver"))
	m.Header.Set("Replace", full)
	if err := b.nc.PublishMsg(m); err != nil {
		b.opts.Log.Warn("cluster: a replaced session not ended", "node", node, "session", full, "err", err)
	}
}

func (b *Bus) onDeliver(m *nats.Msg) {
	if full := m.Header.Get("Replace"); full != "" {
		b.mu.Lock()
		h := b.handler
		b.mu.Unlock()
		h.Replaced(full)
		return
	}
	to := m.Header.Get("To")
	if to == "" || len(m.Data) > b.opts.MaxStanza {
		b.opts.Log.Warn("cluster: dropped a forwarded stanza", "to", to, "bytes", len(m.Data))
		return
	}
	b.mu.Lock()
	h := b.handler
	b.mu.Unlock()
	h.FromPeer(to, string(m.Data))
}

func bareOf(full string) string {
	bare, _, _ := strings.Cut(full, "/")
	return bare
}
