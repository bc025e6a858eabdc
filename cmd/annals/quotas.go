package main

import (
	"flag"
	"fmt"
	"time"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/domain/blocking"
	"annals.im/annals/domain/pep"
)

// quotaFlags are the serve flags of the per-account quotas (adapters/c2s
// quota.go, domain/roster, domain/pep, domain/vcard, domain/blocking):
// what one address may register and what one account (or room) may hold.
type quotaFlags struct {
	registrations      int // per address per registrationWindow; 0: no limit
	registrationWindow time.Duration
	resources          int
	rosterItems        int
	blockedJIDs        int
	pepPayload         int
	pepItems           int
	pepNodes           int
	pepBytes           int
	vcardBytes         int
}

// Defaults of the PEP quotas.
const (
	// defaultPEPPayload is ejabberd's long-standing limit on an item's
	// payload (60,000 bytes) rounded up: room for an avatar or an OMEMO
	// bundle, not for files (HTTP upload is for those).
	defaultPEPPayload = 64 << 10
	// defaultPEPNodes: an account uses a node per kind of data (bookmarks,
	// avatar data and metadata, nickname, OMEMO device list) and one per
	// OMEMO device; a hundred leaves room for many devices.
	defaultPEPNodes = 100
	// defaultPEPBytes is what one account's nodes may hold in all: their
	// state is held in memory while the account is in use.
	defaultPEPBytes = 1 << 20
	// defaultVCardBytes bounds an account's or a room's vCard: room for a
	// photo of some 90 KiB (base64 grows it by a third), far above the
	// 8 KiB XEP-0153 §4.6 asks of avatars. It stays well under the default
	// --max-stanza (256 KiB), so that a vCard past it gets a clean
	// not-acceptable instead of a stream ended for its size, and so that
	// the answer that carries it reaches servers with a smaller stanza
	// limit. It is held in memory with the account's state.
	defaultVCardBytes = 128 << 10
)

func (q *quotaFlags) flags(fs *flag.FlagSet) {
	fs.IntVar(&q.registrations, "registrations-per-address", c2s.DefaultRegistrationsPerAddress, "in-band registrations allowed per client address (IPv6: per /64) per --registration-window, loopback included (0: no limit, for benchmarks)")
	fs.DurationVar(&q.registrationWindow, "registration-window", c2s.DefaultRegistrationWindow, "the window --registrations-per-address counts over")
	fs.IntVar(&q.resources, "max-resources", c2s.DefaultMaxResources, "sessions one account may have bound at once, detached resumable ones included; the next bind gets resource-constraint")
	fs.IntVar(&q.rosterItems, "max-roster-items", c2s.DefaultMaxRosterItems, "contacts one roster may hold; adding another gets resource-constraint")
	fs.IntVar(&q.blockedJIDs, "max-blocked-jids", blocking.DefaultMaxJIDs, "JIDs one block list (XEP-0191) may hold; blocking another gets resource-constraint")
	fs.IntVar(&q.pepPayload, "pep-max-payload", defaultPEPPayload, "bytes of one PEP item's payload; a larger one gets not-acceptable with payload-too-big")
	fs.IntVar(&q.pepItems, "pep-max-items", pep.MaxItems, "the highest pubsub#max_items of a PEP node (\"max\" means this)")
	fs.IntVar(&q.pepNodes, "pep-max-nodes", defaultPEPNodes, "PEP nodes one account may have; a publication creating another gets resource-constraint")
	fs.IntVar(&q.pepBytes, "pep-max-bytes", defaultPEPBytes, "bytes of all one account's PEP node names, item IDs and payloads; a publication growing past it gets resource-constraint")
	fs.IntVar(&q.vcardBytes, "vcard-max-bytes", defaultVCardBytes, "bytes of one account's or room's vCard (vcard-temp), its photo included; a larger one gets not-acceptable")
}

// validate checks the quotas; maxStanza is --max-stanza, which a vCard
// must fit in.
func (q quotaFlags) validate(maxStanza int) error {
	switch {
	case q.registrations < 0 || q.registrations > 10000:
		return fmt.Errorf("%w: --registrations-per-address %d: give 0 (no limit) to 10000", errUsage, q.registrations)
	case q.registrationWindow < time.Second || q.registrationWindow > 7*24*time.Hour:
		return fmt.Errorf("%w: --registration-window %v: give between 1s and 168h", errUsage, q.registrationWindow)
	case q.resources < 1:
		return fmt.Errorf("%w: --max-resources %d: give 1 or more", errUsage, q.resources)
	case q.rosterItems < 1:
		return fmt.Errorf("%w: --max-roster-items %d: give 1 or more", errUsage, q.rosterItems)
	case q.blockedJIDs < 1:
		return fmt.Errorf("%w: --max-blocked-jids %d: give 1 or more", errUsage, q.blockedJIDs)
	case q.pepPayload < 1024:
		return fmt.Errorf("%w: --pep-max-payload %d: give 1024 bytes or more (a bookmark or an avatar's metadata needs a few hundred)", errUsage, q.pepPayload)
	case q.pepItems < 1:
		return fmt.Errorf("%w: --pep-max-items %d: give 1 or more", errUsage, q.pepItems)
	case q.pepNodes < 1:
		return fmt.Errorf("%w: --pep-max-nodes %d: give 1 or more", errUsage, q.pepNodes)
	case q.pepBytes < q.pepPayload:
		return fmt.Errorf("%w: --pep-max-bytes %d: give at least --pep-max-payload (%d)", errUsage, q.pepBytes, q.pepPayload)
	case q.vcardBytes < 1024 || q.vcardBytes != defaultVCardBytes && q.vcardBytes > maxStanza-1024:
		return fmt.Errorf("%w: --vcard-max-bytes %d: give from 1024 bytes to --max-stanza less 1024 (%d): the IQ that sets a vCard must fit in a stanza", errUsage, q.vcardBytes, maxStanza-1024)
	}
	return nil
}

// vcardMax is the vCard bound in force: the flag's, or, left at its
// default with a --max-stanza too small for it, what fits in a stanza.
func (q quotaFlags) vcardMax(maxStanza int) int {
	if q.vcardBytes == defaultVCardBytes && q.vcardBytes > maxStanza-1024 {
		return max(maxStanza-1024, 1024)
	}
	return q.vcardBytes
}

// apply sets the quotas' part of cfg.
func (q quotaFlags) apply(cfg *c2s.Config) {
	cfg.RegistrationsPerAddress = q.registrations
	if q.registrations == 0 {
		cfg.RegistrationsPerAddress = -1 // c2s: no limit
	}
	cfg.RegistrationWindow = q.registrationWindow
	cfg.MaxResources = q.resources
	cfg.MaxRosterItems = q.rosterItems
	cfg.MaxBlockedJIDs = q.blockedJIDs
}

// pepLimits bound each account's PEP nodes.
func (q quotaFlags) pepLimits() pep.Limits {
	return pep.Limits{MaxPayload: q.pepPayload, MaxItems: q.pepItems, MaxNodes: q.pepNodes, MaxBytes: q.pepBytes}
}
