// Package features holds nothing itself: each directory below it is one
// feature, a package that registers its handlers on an adapters/mux.Mux
// and imports adapters/stanza and adapters/mux, never the session core
// (adapters/c2s) or another feature (make depcheck). Adding a feature is a
// new package here and one registration line in cmd/annals.
package features
