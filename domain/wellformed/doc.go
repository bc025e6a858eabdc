// Package wellformed reads XML strictly and writes it back canonically, so
// that what Annals relays, stores or replays is namespace-well-formed XML
// that any conforming client parses.
//
// encoding/xml is lenient where a client's parser is not: inside an
// element it accepts undeclared prefixes, duplicate attributes, prefixes
// bound to nothing, comments, processing instructions and DOCTYPEs. A
// server that forwards such bytes as they came lets one user disconnect
// another, and keeps the poison in its archive. Decoder does what
// encoding/xml leaves out (tag matching against the raw names, namespace
// resolution with an error for what is undeclared, duplicate and reserved
// attributes, nesting depth), and WriteInner re-serializes from tokens:
// every element declares its default namespace where it differs from its
// parent's, and namespaced attributes get prefixes declared on the
// element itself, so a canonical fragment never depends on declarations
// outside it.
//
// Invariants: whatever WriteInner or Canonical return parses, with a
// strict namespace-aware parser, to the same names, attributes and text as
// the input (FuzzCanonical checks it against a second, independent
// parse); anything this package cannot write that way is an *Error.
package wellformed
