// Package kurrentdb is the event store on a KurrentDB database, through the
// official Go client (github.com/kurrent-io/KurrentDB-Client-Go). Open takes
// a KurrentDB connection string, e.g. "kurrentdb://host:2113?tls=false".
//
// # Mapping
//
//   - Stream: a KurrentDB stream of the same name. Names starting with "$"
//     (system streams) or "annals-id-" (see Claims) are refused.
//   - Version v: revision v-1 (revisions count from 0, versions from 1).
//   - Expected version: eventstore.NoStream (0) is KurrentDB's NoStream and
//     v > 0 is revision v-1; eventstore.Any is KurrentDB's Any. But Append
//     never sends Any (see Append).
//   - Position: the event's own $all position, Commit and Prepare as
//     KurrentDB gives them; events of one append share a commit position
//     and differ in prepare position.
//   - ID: the ULID's 16 bytes are the KurrentDB event ID (a UUID).
//   - Type: the KurrentDB event type; Data: the event data (JSON content
//     type), stored byte for byte as normalized.
//   - Schema, OccurredAt, Cause and Hash: the user metadata, a flat JSON
//     object of strings: {"annals":"1","schema":"1","occurred_at":RFC 3339
//     in UTC with nanoseconds,"cause":…,"hash":hex}. "annals" names this
//     layout; an event without it is not read as an Annals event but
//     reported as an error.
//
// # Append
//
// Append takes these steps, each a round trip, so an append of n events
// costs n+3 of them:
//
//  1. Check and normalize the events (event.ErrInvalid before anything is
//     written).
//  2. Claim each event ID (see Claims). An ID claimed by another stream is
//     ErrDuplicateID; one claimed by this stream marks a retry.
//  3. Read the stream's last event: its version and hash.
//  4. On a retry, look for the events in the stream, walking back from the
//     head: found all, in order, they are returned as stored and nothing is
//     written; found only some, or in other company, ErrDuplicateID.
//  5. Check the expected version against the head (ErrConflict), set
//     versions and chain hashes from the head's hash.
//  6. Append at the head's revision, never at Any, since the hashes chain
//     from that head. If KurrentDB answers wrong expected version, another
//     writer moved the head: with eventstore.Any, go back to 3 (until ctx
//     ends); with an explicit version, look once above the old head in
//     case that writer was a concurrent retry of this same append, and
//     otherwise fail with ErrConflict.
//  7. Read the events back for their $all positions: the append's result
//     carries only one position for the whole batch.
//
// # Event IDs and retries
//
// KurrentDB itself deduplicates appends by event ID only within a stream
// and only under conditions (its client documentation says "appended to the
// same stream in quick succession"; the server's commit check says how):
//
//   - With an explicit expected revision older than the stream's head, it
//     compares the IDs of the events after that revision with the appended
//     ones. All equal: success, nothing written (in a cluster, if the first
//     write is not yet replicated, the request is dropped and the client
//     times out; a retry then succeeds). Only the first ones equal, or the
//     first one different: wrong expected version.
//   - With Any (or StreamExists), it looks the IDs up in a bounded
//     in-memory cache of recently committed events; an ID no longer cached,
//     or cached for another stream, is written again.
//   - The same ID in another stream is a new event to KurrentDB.
//
// Annals promises more (eventstore.ErrDuplicateID across streams, a retry
// recognised whatever expected version it carries and however late), so
// this store keeps its own record.
//
// # Claims
//
// Before its events are appended, each event ID is claimed by appending one
// small event (type AnnalsEventIDClaimed, data {"stream":…}) to the stream
// "annals-id-<ULID>" with expected state NoStream: KurrentDB lets only one
// such append create the stream, which makes an ID belong to one stream for
// good. Each claim has a fresh KurrentDB event ID, so that KurrentDB's own
// deduplication cannot take a second claim for an idempotent first one.
// A claim whose append never happened (the writer died between the two, or
// the append was refused with ErrConflict) stays; the ID can still be
// appended to its stream, never to another. Claims are one stream per
// event, which KurrentDB's index is built for; ReadAll and subscriptions
// leave them out.
//
// # Reading
//
// ReadAll reads $all forward and leaves out KurrentDB's own events (event
// types or streams starting with "$", which includes links) and the
// claims. Subscribe is a catch-up subscription to $all from the position
// (exclusive, as KurrentDB's are), filtered on the server with the client's
// ExcludeSystemEventsFilter and on the client like ReadAll; it reads ahead
// up to Options.SubscriptionBuffer events and hands out at most
// Options.MaxBatch per Next. The database must hold only Annals events
// besides KurrentDB's own: another application's event in $all stops
// ReadAll, Verify and subscriptions with an error naming it.
//
// # Hash chains and audit verify
//
// Which of the guarantees of `annals audit verify` hold here:
//
//   - Per-stream chains: hold in full. Each hash is computed from the
//     stream's actual previous event, and the append is conditional on that
//     event still being the head, so concurrent writers on several nodes
//     never fork or break a chain. eventstore.Verify reads $all and checks
//     every stream's versions (dense, in log order) and hashes: an edited,
//     inserted or reordered event of a stream is named.
//   - Recorded heads: not kept (no eventstore.HeadRecorder). A stream whose
//     last events were removed (a stream deleted, or truncated through the
//     $tb, $maxCount or $maxAge stream metadata and a scavenge) still
//     verifies as a shorter stream. Annals never writes stream metadata;
//     an operator must not either.
//   - The whole-log chain: not kept (no eventstore.LogVerifier). $all order
//     is assigned by KurrentDB's leader, and events of different streams
//     swapped in it would verify. A whole-log chain could be a projection
//     the auditor keeps with its checkpoints; it is not built.
//   - `annals audit head` works as on any store (eventstore.HeadDigest reads
//     $all), and is what catches both gaps above: a digest recorded outside
//     the server no longer matches once an event at or before its position
//     was removed or moved.
//
// # Sealed content
//
// With Options.Codec (or SetCodec), Append seals its events once, before
// the claims, and every attempt hashes and writes those same bytes; a
// retry with the same IDs is recognized by its IDs (claims, then a search
// of the stream), whatever bytes it was sealed to, and answered with
// what the log keeps, its Data the proposed one (eventstore.Plain).
// ReadStream, ReadAll and subscriptions open what they return, in log
// order; a subscription whose batch fails to open keeps the batch and
// opens it again at the next Next, so an error loses no event. The chains
// cover the sealed bytes, which a store without a codec reads (audits).
//
// # Serving from it
//
// `annals serve --store kurrentdb://… --bus nats://H1,H2,H3 --node NAME`
// (cmd/annals) keeps the node's read models in a local SQLite file fed
// from Subscribe, and waits for them to pass Head (head.go) before an
// archive read. KurrentDB holds events only: the credentials, the
// server's secret and certificate, which every node needs and which must
// never enter the log, are kept in a replicated key-value bucket on the
// NATS servers of --bus (eventstore/jetstream.OpenBucket), which also
// carry what the nodes say to each other. A KurrentDB deployment thus
// runs a small NATS cluster with JetStream beside it; it holds no event.
// None of this has run against a KurrentDB server here (none runs on our
// machines): e2e's TestClusterKurrentDB runs it when ANNALS_KURRENTDB_URL
// is set.
package kurrentdb
