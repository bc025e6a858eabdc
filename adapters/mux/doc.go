// Package mux is how features plug into the server: a feature package
// registers handlers for IQ payload namespaces on a destination (the
// server itself, or the sender's own account, on whose behalf the server
// answers), with the disco features, identities and items that go with
// them; service discovery (XEP-0030) is then built from what is
// registered, never from a list kept by hand.
//
// The session core (adapters/c2s) dispatches to a Mux and imports no
// feature; features import this package and adapters/stanza, not the core
// and not each other. Registration happens before serving: a Mux is not
// changed once the server runs, so it needs no lock.
package mux
