// Package projections runs read models: each Projection folds the log, in
// log order, into tables of its own in a SQL database.
//
// Invariants:
//   - A projection's checkpoint (the position of the last event it applied)
//     is written in the same transaction as the read-model rows that event
//     produced, so a crash never leaves a half-applied event, and restarting
//     resumes exactly after the checkpoint.
//   - Apply reads nothing but the event and the read model: no clock, no
//     random, no configuration. Replaying the log therefore rebuilds the
//     same rows, which is what `annals rebuild` relies on.
//   - A projection that cannot apply an event (unknown schema, bad data)
//     stops with an error naming the event; it never skips it.
//   - A projection's Name carries a version ("accounts/v1"). When the stored
//     checkpoint has another version of the same name, the read model is
//     dropped and rebuilt from the start of the log.
package projections
