// Command annals is the Annals server and its operator tools: serve,
// rebuild and audit. It is the only package that wires stores, projections
// and adapters together; everything it decides lives in the packages it
// wires, so that commands stay thin.
//
// Invariants: only serve and rebuild write read models, and they hold the
// data directory's lock while they do; the audit commands only read, and
// refuse to create a store where none exists.
package main
