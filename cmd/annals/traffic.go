package main

import (
	"flag"
	"fmt"
	"time"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/adapters/features/muc"
	"annals.im/annals/app/archive"
)

// trafficFlags are the serve flags that bound what one session or one
// account makes the server hold or store (docs/security.md, "Traffic and
// storage bounds").
type trafficFlags struct {
	maxUnacked, maxUnackedBytes int
	outQueueBytes               int
	mamPageBytes                int
	offlineMax                  int64
	archiveQuotaBytes           int64
	roomCreations               int
	roomCreationWindow          time.Duration
}

// Defaults of the storage quotas. 5,000 offline messages is ejabberd's
// max_user_offline_messages; 1 GiB of sent messages is some 3 million
// messages of 300 bytes, years of a heavy user, and 4,096 messages of the
// largest size.
const (
	defaultOfflineMax        = 5000
	defaultArchiveQuotaBytes = 1 << 30
)

func (t *trafficFlags) flags(fs *flag.FlagSet) {
	fs.IntVar(&t.maxUnacked, "sm-max-unacked", c2s.DefaultMaxUnacked, "stanzas kept for a stream-management client that has not acknowledged them; past it the session ends (XEP-0198)")
	fs.IntVar(&t.maxUnackedBytes, "sm-max-unacked-bytes", c2s.DefaultMaxUnackedBytes, "bytes of stanzas kept for a stream-management client that has not acknowledged them; past it the session ends")
	fs.IntVar(&t.outQueueBytes, "out-queue-bytes", c2s.DefaultOutQueueBytes, "bytes waiting for a client that reads slowly; past it its connection is dropped")
	fs.IntVar(&t.mamPageBytes, "mam-page-bytes", c2s.DefaultMAMPageBytes, "bytes of messages in one archive page (XEP-0313) or room join history; a fuller page stops early and paging goes on")
	fs.Int64Var(&t.offlineMax, "offline-max", defaultOfflineMax, "messages waiting for an offline account; more are refused with service-unavailable (0: no limit)")
	fs.Int64Var(&t.archiveQuotaBytes, "archive-quota-bytes", defaultArchiveQuotaBytes, "bytes of 1:1 messages an account may have stored by sending them; past it they are refused with resource-constraint (0: no limit)")
	fs.IntVar(&t.roomCreations, "room-creations", muc.DefaultRoomCreations, "new rooms an account may create per --room-creation-window; more joins that would create one get not-allowed (0: no limit)")
	fs.DurationVar(&t.roomCreationWindow, "room-creation-window", muc.DefaultRoomCreationWindow, "the window of --room-creations")
}

func (t trafficFlags) validate(maxStanza int) error {
	switch {
	case t.maxUnacked < 1:
		return fmt.Errorf("%w: --sm-max-unacked must be at least 1", errUsage)
	case t.maxUnackedBytes < maxStanza || t.outQueueBytes < maxStanza:
		return fmt.Errorf("%w: --sm-max-unacked-bytes and --out-queue-bytes must be at least --max-stanza (%d)", errUsage, maxStanza)
	case t.mamPageBytes < 1 || t.mamPageBytes > t.maxUnackedBytes || t.mamPageBytes > t.outQueueBytes:
		// A page is written at once: one larger than the queues would end
		// or drop the session of whoever asks for it.
		return fmt.Errorf("%w: --mam-page-bytes must be positive and at most --sm-max-unacked-bytes and --out-queue-bytes", errUsage)
	case t.offlineMax < 0 || t.archiveQuotaBytes < 0 || t.roomCreations < 0:
		return fmt.Errorf("%w: --offline-max, --archive-quota-bytes and --room-creations must be 0 (no limit) or more", errUsage)
	case t.roomCreationWindow <= 0:
		return fmt.Errorf("%w: --room-creation-window must be positive", errUsage)
	}
	return nil
}

// apply sets the session bounds of cfg.
func (t trafficFlags) apply(cfg *c2s.Config) {
	cfg.MaxUnacked, cfg.MaxUnackedBytes = t.maxUnacked, t.maxUnackedBytes
	cfg.OutQueueBytes, cfg.MAMPageBytes = t.outQueueBytes, t.mamPageBytes
}

// applyMUC sets the room service's join history bound and room-creation
// rate.
func (t trafficFlags) applyMUC(cfg *muc.Config) {
	cfg.HistoryBytes = t.mamPageBytes
	cfg.RoomCreations, cfg.RoomCreationWindow = t.roomCreations, t.roomCreationWindow
	if t.roomCreations == 0 {
		cfg.RoomCreations = -1 // muc: no limit
	}
}

// archiveLimits are the storage quotas of the archive service.
func (t trafficFlags) archiveLimits() archive.Limits {
	return archive.Limits{QuotaBytes: t.archiveQuotaBytes, OfflineMax: t.offlineMax}
}
