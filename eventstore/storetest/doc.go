// Package storetest is the conformance suite every eventstore.Store runs:
// one Run(t, open) that checks ordering, dense versions, optimistic
// concurrency, idempotent retries, paging, live subscriptions and survival
// of a SIGKILL; and RunCodec(t, open), which checks the same store sealing
// and opening with an eventstore.Codec.
//
// Tests work in streams with a prefix of their own, so the suite can run
// against a shared server whose log already holds other events.
package storetest
