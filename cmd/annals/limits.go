package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"annals.im/annals/eventstore/sqlite"
)

// fdReserve is how many file descriptors serve keeps for everything but
// client connections: every SQLite connection the store's pools can open
// (up to three descriptors each: database, WAL, a temporary file) and a
// margin for the rest (standard streams, the data directory's lock, the
// listener, the runtime's poller, certificate and key files read at start).
// When client connections took these, the store failed to open a file and
// serve exited.
const fdReserve = 3*(2*sqlite.MaxReadConns+3) + 32

// minConnections is the fewest client connections worth serving: below it
// the descriptor limit is a mistake to fix, not a setting to honour.
const minConnections = 32

// openFilesLimit raises the soft limit on open files to the hard limit, as
// most servers do (the soft limit is often 1024 for compatibility with
// select(2), which Go does not use; the runtime does this too since Go
// 1.19, which this keeps visible and independent of), and returns it.
func openFilesLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("read the open files limit: %w", err)
	}
	if rl.Cur < rl.Max {
		raised := syscall.Rlimit{Cur: rl.Max, Max: rl.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			rl = raised
		}
	}
	return rl.Cur, nil
}

// maxConnections returns the global connection cap: the one asked for
// (0: as many as the descriptors allow), never more than nofile minus the
// reserve.
func maxConnections(asked int, nofile uint64, log *slog.Logger) (int, error) {
	room := int(min(nofile, math.MaxInt32)) - fdReserve
	if room < minConnections {
		return 0, fmt.Errorf("%w: the open files limit is %d: serve keeps %d for the store and needs at least %d more for clients; raise it (ulimit -n, LimitNOFILE= in a systemd unit)",
			errUsage, nofile, fdReserve, minConnections)
	}
	if asked == 0 {
		return room, nil
	}
	if asked > room {
		log.Warn("--max-connections is more than the open files limit allows; lowered", "asked", asked, "max", room, "nofile", nofile, "reserved", fdReserve)
		return room, nil
	}
	return asked, nil
}

// setMemoryLimit applies --memory-limit: the Go runtime's soft memory limit
// (debug.SetMemoryLimit). serve runs with GOGC=400, so without a limit the
// heap may grow to five times what is live before a collection; near the
// limit the collector runs sooner instead, trading CPU for staying out of
// the OOM killer's way. "auto" is half of the memory the process may use
// (physical memory, or the cgroup's limit if lower): the rest is for what
// the Go runtime does not count, SQLite's page cache (C memory) and the
// kernel's file cache of the database, and for whatever else runs there.
// GOMEMLIMIT in the environment still decides, as GOGC does.
func setMemoryLimit(flag string, log *slog.Logger) error {
	if v, set := os.LookupEnv("GOMEMLIMIT"); set {
		log.Info("memory limit from GOMEMLIMIT", "memory_limit", v)
		return nil
	}
	limit, err := parseMemoryLimit(flag, availableMemory())
	if err != nil {
		return err
	}
	debug.SetMemoryLimit(limit)
	if limit == math.MaxInt64 {
		log.Info("no memory limit")
	} else {
		log.Info("memory limit", "memory_limit", limit)
	}
	return nil
}

// parseMemoryLimit reads a --memory-limit value: "auto" (half of avail),
// "off", or a size in GOMEMLIMIT's syntax (bytes, or with a B, KiB, MiB,
// GiB or TiB suffix).
func parseMemoryLimit(s string, avail int64) (int64, error) {
	switch s {
	case "auto":
		if avail <= 0 {
			return math.MaxInt64, nil // unknown: as Go's own default
		}
		return avail / 2, nil
	case "off":
		return math.MaxInt64, nil
	}
	n, err := parseBytes(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%w: --memory-limit %q: want auto, off, or a size such as 2GiB or 512MiB", errUsage, s)
	}
	return n, nil
}

// parseBytes reads a size in GOMEMLIMIT's syntax: bytes, or a number with
// a B, KiB, MiB, GiB or TiB suffix; never negative, never past int64.
func parseBytes(s string) (int64, error) {
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is no size", s)
	}
	return n * mult, nil
}

// availableMemory is the memory the process may use: physical memory, or
// the cgroup's limit (v2 or v1) when lower; 0 when unknown.
func availableMemory() int64 {
	var total int64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				if err == nil {
					total = kb << 10
				}
				break
			}
		}
		f.Close()
	}
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// "max" (v2) or a huge number (v1) mean no limit.
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			total = n
		}
		break
	}
	return total
}
