// Package jetstream is the event store on NATS JetStream: the log of a
// deployment that outgrows one machine, replicated by the servers' RAFT
// groups (three replicas by default), behind the same eventstore.Store as
// the embedded SQLite store and passing the same storetest suite. One
// design serves nats-server 2.9 (Debian 12's package) and every later
// version: it uses only what 2.9 has (see Server versions).
//
// # Layout
//
// Two JetStream streams, both under Options.Prefix ("annals"):
//
//	ANNALS       annals.log.<token>.<first>   one append: its events' envelopes, a JSON array
//	ANNALS-IDS   annals.id.<ULID>.<gen>       a claim: the subject of the append holding that event
//
// An append of n events is one message, on the subject of its first
// version. <token> encodes the stream name as one subject token (Token):
// letters, digits and "-_@+=" as they are, every other byte as %XX, so
// dots, wildcards, white space and non-ASCII never reach a subject. A name
// whose encoding passes 200 bytes (names may have 3200) becomes "%%" and
// the hex SHA-256 of the name, which keeps every subject far below the
// servers' 4 KiB protocol line; the envelopes still carry the real name,
// and a reader refuses an append whose subject does not match them.
//
// Both streams are created with DenyDelete and DenyPurge and without
// limits: the servers refuse to remove a message through the API.
//
// # Positions
//
// Event i (from 0) of the append stored at sequence s of the log stream
// has Commit = Prepare = s<<10 | i (position.go): Commit is unique per
// event, which the read models key on (the archive orders and pages by
// it), and event.Position orders as the log does, by append and then
// within it: the stream leader assigns sequences in commit order, every
// replica applies them in that order, and an append's events are stored
// together. A reader that has seen p never finds a new event below p.
// Readers resume after p from the append at p.Commit>>10, skipping its
// events up to p. MaxAppend is at most 1024. The log stream holds only
// appends, and nothing is deleted, so its sequences are dense; the last
// one is one get whatever the log's length (Head).
//
// # Appends: one winner per version, dense versions
//
// Every append is published with Nats-Expected-Last-Subject-Sequence: 0,
// so each subject holds one append at most. The appends of a stream tile
// its versions: the first is on version 1's subject, and each next one on
// the subject of the version after the previous one's last event. An
// append at expected version v therefore first finds the append holding
// event v and is a conflict unless v is its last event (a head is always
// the last event of an append); it then goes on subject v+1, chained from
// event v's hash. By induction the tiling holds: if subject v+1 is free
// when the server applies the append, and v ends an append, then no append
// follows that one (it would be on subject v+1), so v was the head and
// the new append extends the tiling. Versions stay dense and exactly one
// writer wins each version. For eventstore.Any the head comes from a small
// cache (Options.MaxCachedHeads, which only ever holds appends' last
// events) or from the leader (the last message on annals.log.<token>.*);
// a stale guess is refused by the server and the append starts over. An
// append must fit one message: at most Options.MaxAppend events (400) and
// the servers' max_payload (1 MiB by default) in all, or Append refuses it
// (event.ErrInvalid) before writing anything.
//
// # Idempotent retries
//
// A retry (the same event IDs) must be written once however late it
// comes, and an ID may be stored once in the whole log, which two writes
// to two streams cannot do atomically on 2.9. So each ID is claimed
// before its append is written: Append publishes annals.id.<ULID>.1,
// naming the append's subject, with expected last subject sequence 0, for
// every event at once, waits for all, then publishes the append. An ID is
// stored exactly when the append its last claim names holds it. A claim
// whose generation exists already is read:
//
//   - it names this append's subject: the claim is this append's already
//     (a writer that stopped after its claims, or this one retrying);
//   - the append it names holds the ID: the ID is stored. All of an
//     append's IDs stored in the stream at consecutive versions is a
//     retry, which returns the stored events; some stored, or stored
//     elsewhere, is ErrDuplicateID;
//   - that subject holds another append: the claim's append was refused,
//     and a subject never changes once written, so the next generation
//     (.2, .3, …), again with expected sequence 0, takes the ID over;
//   - that subject holds nothing yet: the append may still be on its way.
//     It is never taken over. In another stream the ID is refused
//     (ErrDuplicateID) until that stream moves past the claimed version
//     (then the third case applies). In this stream it can only be a later
//     version than this append's if this store read a stale head: with an
//     expected version that is a conflict; under Any, Append reads the
//     head again, waits a little, and gives up (ErrConflict) after ten
//     tries.
//
// Why each ID is stored once at most, with no timing assumption: a
// generation is only added after the append named by the one before is
// on its subject without the ID, and that never changes. So an append
// holding the ID can land only on the subject the last generation names,
// and once one has landed there no generation follows. Two appends
// holding one ID would each have landed on the subject of the last
// generation, which is one subject, which holds one append. No duplicate
// window (Nats-Msg-Id) is used: a retry after a lost acknowledgement
// finds its claims taken, by itself, and its append in place.
//
// The cost: one more replicated write before each append (the claims, all
// at once, on the ID stream's leader), one message per event in the ID
// stream, and one more subject per event in each replica's in-memory
// index (about 100 bytes of server memory per event, as for a KV bucket of
// that many keys). An append refused at its version leaves its claims
// behind; the next append of those IDs takes them over. A scan instead of
// claims would cost nothing per append but could not be made atomic with
// it.
//
// # Reads
//
// 2.9 answers a get with one message. So reads send bursts of gets at
// once (8, then four times as many while all are found, up to 128, fewer
// when messages are large) and take the answers in order. Direct gets
// (allow_direct) let any replica answer, and a replica may not yet have
// applied what the leader acknowledged; so everything an append depends
// on (the head, event v, a claim and the append it names) is asked of the
// leader ($JS.API.STREAM.MSG.GET), and the range reads ask replicas
// ($JS.API.DIRECT.GET) and the leader only for what a replica did not
// have: the leader not having it either is the end. ReadStream finds the
// append holding version from by asking the leader for the subjects at and
// below from (the highest one present is it), then asks for the subjects
// the next appends may start at. ReadAll asks for the sequences after the
// position. Both return everything the leader acknowledged before they
// were called, up to max. Writes never depend on a read being fresh: the
// checks that matter are the server's, made as it applies each message; a
// read that misses something only makes an append try again.
//
// # Subscriptions
//
// A subscription keeps nothing on the servers. Next reads the log after
// the last event it returned, as ReadAll does, and when there is nothing
// new waits for a tick (a core NATS message on annals.tick that Append
// publishes once its append is acknowledged) or for Options.PollInterval
// (1s), whichever comes first. A tick lost (a writer that died before
// sending it, a reconnection) costs at most that interval. Events arrive
// once each, in log order, without gap, and losing a server costs no more
// than the reads' retries. (Ordered consumers, tried first, stopped
// delivering in these tests on 2.9: nats.go's pull one after the
// conflicting writes of storetest, its push one for good when the server
// holding it was killed and recreating it failed.)
//
// # Server versions
//
// Everything above is in nats-server 2.9: subject expectations, direct
// gets, sequence and subject gets. Of the expectations only
// sequence 0 is used, because 2.9 checks it when it applies a message (on
// every replica, in log order) but checks other values only before
// proposing, so two writes in flight could both pass. nats-server 2.12
// added atomic batches (ADR-50); an earlier version of this store wrote
// each append's events and IDs as one batch, one replicated write instead
// of two. Measured on three embedded 2.15 servers sharing this machine's
// two cores (BenchmarkAppend, one event per Append, medians of three runs
// each, alternating), the batch design appended 4715 / 11860 / 15308
// events/s with 1 / 16 / 64 writers, this one 3309 / 10544 / 15717: 30%
// less for one writer (one more round trip per append), 11% less with 16,
// the same with 64, where the servers' CPU bounds both. (A busier hour
// gave 3838 / 8706 / 13313 against 2849 / 7118 / 12277.) One design is
// kept: the store tested on embedded servers is the one Debian's servers
// run, a stream never changes layout when its servers are upgraded, and
// an append of n events takes n+1 messages rather than 2n.
//
// # Hash chains
//
// Each event's Hash chains its stream (event.Chain), computed by the
// writer from the event it read and guarded by the server's expectation,
// so per-stream chains hold on this store exactly as on SQLite and
// eventstore.Verify (audit verify) checks them through ReadAll.
//
// HeadRecorder is not implemented: the head of a stream here is its last
// append, not a record kept apart from the events, so Verify cannot tell
// a stream whose last append was removed behind the servers' back
// (DenyDelete stops it through the API) from a shorter one. LogVerifier is
// not implemented either: a chain over the whole log needs each event to
// know the hash of the one before it in the log, which concurrent writers
// on different nodes cannot know (the leader assigns the sequence at
// commit), and serialising every append on the stream's last sequence
// would make all concurrent appends conflict. The whole-log chain becomes
// a projection an auditor computes by reading the log in order, recording
// eventstore.HeadDigest checkpoints: an event changed, removed or moved
// before a checkpoint changes its digest.
//
// # Sealed content
//
// With Options.Codec (or SetCodec), Append seals its events once, before
// the first attempt, and every attempt claims, hashes and publishes those
// same bytes; a retry, by this call or a later one with the same IDs, is
// recognized by its IDs (claims) whatever bytes it was sealed to, and
// answered with what the log keeps, its Data the proposed one
// (eventstore.Plain). ReadStream and ReadAll, and so subscriptions, open
// what they return, in log order; a failure to open is the read's error
// and a subscription reads the same events again at its next Next. The
// chains cover the sealed bytes, which a store without a codec reads
// (audit commands). Sealing is what lets content be erased from a log no
// one can rewrite: its keys are kept beside it (adapters/sealing).
//
// # Durability
//
// An append returns when its message is committed by a quorum of the log
// stream's replicas (two of three) and applied by the leader. JetStream's
// file store syncs to disk every two minutes by default: an acknowledged
// event survives the loss of any one server and a crash of every process,
// but a power loss of a quorum at once only with sync_interval: always in
// the servers' configuration. The crash test of storetest kills the
// client mid-append (SIGKILL): every event it printed as acknowledged is
// read back from the cluster by a new client. TestLeaderLoss kills the
// log stream's leader (SIGKILL, for Debian's servers) mid-traffic.
//
// # Serving from it
//
// `annals serve --store nats://H1,H2,H3 --node NAME` (cmd/annals) opens
// the store with Connect, keeps the node's read models in a SQLite file of
// its own under --data, fed from Subscribe (their checkpoints are
// positions here), and waits for them to pass Head before an archive read.
// The same connection carries a key-value bucket for what is kept beside
// the log (Bucket, kv.go) and the nodes' bus (adapters/cluster). Nothing
// in eventstore/owner changes: it appends with expected versions and
// decides again after ErrConflict, which is what a second node writing
// the same stream causes here (after a short random wait: a node that
// keeps losing races to one busy room otherwise gives up).
//
// Tests start clusters with package natstest: embedded servers, or
// processes of Debian's nats-server from a generated configuration.
package jetstream
