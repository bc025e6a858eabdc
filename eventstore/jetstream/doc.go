// Package jetstream is the event store on NATS JetStream: the log of a
// deployment that outgrows one machine, replicated by the servers' RAFT
// groups (three replicas by default), behind the same eventstore.Store as
// the embedded SQLite store and passing the same storetest suite.
//
// # Layout
//
// One JetStream stream (Options.Stream, "ANNALS") holds the whole log, on
// two subject trees under Options.Prefix ("annals"):
//
//	annals.log.<token>.<version>   one event: its envelope as JSON (event.Envelope.MarshalJSON)
//	annals.id.<ULID>               one per event: the subject of the event with that ID
//
// <token> encodes the stream name as one subject token (Token): letters,
// digits and "-_@+=" as they are, every other byte as %XX, so dots,
// wildcards, white space and non-ASCII never reach a subject. A name whose
// encoding passes 200 bytes (names may have 3200) becomes "%%" and the hex
// SHA-256 of the name, which keeps every subject far below the servers' 4
// KiB protocol line; the envelope still carries the real name, and a
// reader refuses an event whose subject does not match it.
//
// The stream is created with DenyDelete and DenyPurge and without limits:
// the servers refuse to remove an event through the API.
//
// # Positions
//
// An event's Position is its stream sequence (Commit = Prepare = seq). The
// sequence is not dense over events: each append of n events takes 2n
// sequences, its events first and then their ID messages. event.Position
// does not need density, only a total order that is the commit order and
// never lets a reader that has seen p later find a new event below p. The
// stream leader assigns sequences in commit order and every replica
// applies them in that order, so that holds. ReadAll and Subscribe filter
// on annals.log.> and skip the ID messages.
//
// # Appends: one winner per version, dense versions
//
// Each version has its own subject. An append to a stream at version v
// reads event v (from the leader, see Reads) to chain from its hash, and
// publishes version v+1 with Nats-Expected-Last-Subject-Sequence: 0 — the
// server refuses it if version v+1 already exists. Since event v exists
// and nothing is ever deleted, versions stay dense and exactly one writer
// wins each version. (The same header on one subject per stream, set to
// the head's sequence, would be equivalent; one subject per version is
// chosen because ReadStream from version v then starts with one lookup,
// where a stream subject would have to be counted from its start.) For
// eventstore.Any the head comes from a small cache (Options.MaxCachedHeads)
// or from the leader (last message on annals.log.<token>.*); a stale guess
// is refused by the server and the append starts over with a fresh head.
//
// Every append, of one event or many, is one atomic batch (ADR-50,
// nats-server 2.12 and later; the stream has allow_atomic): the n event
// messages and the n ID messages are stored together at consecutive
// sequences, or none is. Only the first event message carries the version
// expectation: the server refuses a second expectation on a subject the
// batch already wrote, and none is needed since nothing interleaves a
// batch. Open refuses a stream whose server does not report allow_atomic,
// which is how a server older than 2.12 shows (it ignores the field, and
// would store a batch's messages one by one). There is no fallback for such
// servers here. One would publish each event on its own with its
// expectation, then its ID message: versions would stay dense with one
// winner each, but an append of several events could be cut after any of
// them by a crash, and an event stored without its ID message would be
// written again by a retry beyond the duplicate window. Debian's
// nats-server package is 2.9: it cannot serve this store.
//
// # Idempotent retries
//
// Each event message carries Nats-Msg-Id = its ULID, so within the
// stream's duplicate window (Options.DuplicateWindow, 2 minutes) the server
// itself refuses it again. Beyond the window the ID messages decide: each
// is published with expected last subject sequence 0, in the same batch as
// its event, so an ID is stored at most once for the life of the log and a
// batch reusing one is refused whole. When an append is refused (a version
// or an ID taken), the store looks each ID up: the ID message names the
// event's subject, two requests to the leader per ID. All IDs stored in the
// stream at consecutive versions is a retry and returns the stored events;
// some stored, or stored elsewhere, is ErrDuplicateID; none is a conflict.
// The cost is paid on every append: one more message per event (about 230
// bytes on disk: the batch and expectation headers are stored with it),
// and one more subject per event in each replica's in-memory per-subject
// index, beside the event's own subject: the order of 100 bytes of server
// memory per event in all, as for a KV bucket of that many keys. A scan would cost nothing per append but could
// not be atomic with it, and would read the log since the ID's time on
// every refused append.
//
// # Reads
//
// Direct gets (allow_direct) let any replica serve reads, and a replica
// may not yet have applied what the leader acknowledged. So every lookup
// an append depends on (event v, the head, an ID) asks the leader
// ($JS.API.STREAM.MSG.GET), and range reads take pages from the replicas
// ($JS.API.DIRECT.GET batches) but ask the leader whether a short page was
// the end: ReadStream and ReadAll return everything acknowledged before
// they were called. ReadStream looks up the subject of version from and
// pages on annals.log.<token>.* from its sequence; ReadAll pages on
// annals.log.> after the position. Both stop at max.
//
// # Subscriptions
//
// Subscribe uses an ordered consumer (ephemeral, recreated by the client
// from the last stream sequence it delivered after a gap, a missed
// heartbeat or a server loss) filtered on annals.log.>, from the position
// after. Consumers deliver only committed messages, in sequence order,
// each once.
//
// # Hash chains
//
// Each event's Hash chains its stream (event.Chain), computed by the
// writer from the event it read and guarded by the server's expectation,
// so per-stream chains hold on this store exactly as on SQLite and
// eventstore.Verify (audit verify) checks them through ReadAll.
//
// HeadRecorder is not implemented: the head of a stream here is its
// highest version subject, not a record kept apart from the events, so
// Verify cannot tell a stream whose last event was removed behind the
// servers' back (DenyDelete stops it through the API) from a shorter one.
// LogVerifier is not implemented either: a chain over the whole log needs
// each event to know the hash of the one before it in the log, which
// concurrent writers on different nodes cannot know (the leader assigns
// the sequence at commit), and serialising every append on the stream's
// last sequence would make all concurrent appends conflict. The whole-log
// chain becomes a projection an auditor computes by reading the log in
// order, recording eventstore.HeadDigest checkpoints: an event changed,
// removed or moved before a checkpoint changes its digest.
//
// # Durability
//
// An append returns when its batch is committed by a quorum of the
// stream's replicas (two of three) and applied by the leader. JetStream's
// file store syncs to disk every two minutes by default: an acknowledged
// event survives the loss of any one server and a crash of every process,
// but a power loss of a quorum at once only with sync_interval: always in
// the servers' configuration. The crash test of storetest kills the
// client mid-append (SIGKILL): every event it printed as acknowledged is
// read back from the cluster by a new client.
//
// # Serving from it
//
// `annals serve --store nats://H1,H2,H3 --node NAME` (cmd/annals) opens
// the store with Connect, keeps the node's read models in a SQLite file of
// its own under --data, fed from Subscribe (their checkpoints are
// positions here), and waits for them to pass Head before an archive read.
// The same connection carries a key-value bucket for what is kept beside
// the log (Bucket; kv.go) and the nodes' bus (adapters/cluster). Nothing
// in eventstore/owner changes: it appends with expected versions and
// decides again after ErrConflict, which is what a second node writing
// the same stream causes here.
package jetstream
