package main

import (
	"flag"
	"fmt"
	"time"
)

// contentFlags are serve's options on users' content in the log: whether
// it is sealed under keys beside the log (adapters/sealing), and how long
// the archives keep it.
type contentFlags struct {
	seal        bool
	expiry      time.Duration
	expiryEvery time.Duration
}

// minExpiry: message keys are per day, so a shorter expiry would destroy
// keys still sealing what the archives must keep.
const minExpiry = 48 * time.Hour

func (f *contentFlags) flags(fs *flag.FlagSet) {
	fs.BoolVar(&f.seal, "seal-content", true, "seal message bodies, PEP items and vCards in the log under keys kept beside it, so that `annals user erase` and --archive-expiry can erase them (false: new content goes into the log as it is, and stays there)")
	fs.DurationVar(&f.expiry, "archive-expiry", 0, "delete archived messages older than this, and destroy the keys of the days before it (at least 48h; 0: keep them)")
	fs.DurationVar(&f.expiryEvery, "archive-expiry-every", time.Hour, "with --archive-expiry: how often what has become too old is expired")
}

func (f *contentFlags) validate() error {
	if f.expiry < 0 || (f.expiry > 0 && f.expiry < minExpiry) {
		return fmt.Errorf("%w: --archive-expiry %v: give 0 (keep everything) or at least %v: message keys are per day", errUsage, f.expiry, minExpiry)
	}
	if f.expiry > 0 && !f.seal {
		return fmt.Errorf("%w: --archive-expiry needs --seal-content: the log's copies are erased by destroying their keys", errUsage)
	}
	if f.expiryEvery < time.Minute || f.expiryEvery > 24*time.Hour {
		return fmt.Errorf("%w: --archive-expiry-every %v: give 1m to 24h", errUsage, f.expiryEvery)
	}
	return nil
}
