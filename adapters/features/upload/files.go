package upload

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"annals.im/annals/domain/upload"
)

// The files of a slot's directory.
const (
	slotFile = "slot.json" // the grant, as the log has it
	dataFile = "file"      // the upload, once complete
	// maxSlotFile bounds what is read of a slot.json: a grant is some
	// hundreds of bytes.
	maxSlotFile = 4096
	// strayAge: a directory without a readable grant this old is a
	// grant that failed half way, and is removed.
	strayAge = time.Hour
)

// Names on disk are the service's own: the slot id (hex, checked before
// use) and fixed file names, never the client's file name, which is kept
// in the grant only.
func (s *Service) dir(slot string) string { return filepath.Join(s.cfg.Dir, slot) }

// keep writes the grant into its slot's directory, for the HTTP side.
func (s *Service) keep(g upload.Granted) error {
	d := s.dir(g.Slot)
	if err := os.MkdirAll(d, 0o750); err != nil {
		return err
	}
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	tmp := filepath.Join(d, slotFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(d, slotFile))
}

// grant reads the grant of slot, which must be a well-formed slot id.
func (s *Service) grant(slot string) (upload.Granted, error) {
	var g upload.Granted
	f, err := os.Open(filepath.Join(s.dir(slot), slotFile))
	if err != nil {
		return g, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSlotFile+1))
	if err != nil {
		return g, err
	}
	if len(b) > maxSlotFile {
		return g, errors.New("upload: a slot.json too large")
	}
	if err := json.Unmarshal(b, &g); err != nil {
		return g, err
	}
	if g.Slot != slot {
		return g, errors.New("upload: a slot.json of another slot")
	}
	return g, nil
}

// stored reports whether slot's file was uploaded.
func (s *Service) stored(slot string) bool {
	_, err := os.Stat(filepath.Join(s.dir(slot), dataFile))
	return err == nil
}

// Run deletes the expired files every SweepEvery until ctx ends (a
// mux.Runner: the session core starts it).
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepEvery)
	defer t.Stop()
	for {
		if n, err := s.Sweep(s.cfg.Now()); err != nil {
			s.cfg.Log.Error("upload: sweeping expired files", "err", err)
		} else if n > 0 {
			s.cfg.Log.Info("upload: expired slots deleted", "slots", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep deletes what is over at now: the files past their expiry, and
// the slots past their upload window that were never uploaded to. It
// returns how many slots it deleted.
func (s *Service) Sweep(now time.Time) (int, error) {
	ents, err := os.ReadDir(s.cfg.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, ent := range ents {
		slot := ent.Name()
		if !ent.IsDir() || !validSlot(slot) {
			continue // not ours: left alone
		}
		g, err := s.grant(slot)
		switch {
		case err != nil:
			if info, serr := ent.Info(); serr != nil || now.Sub(info.ModTime()) < strayAge {
				continue
			}
		case expired(g, now):
		case now.After(g.PutBefore) && !s.stored(slot):
		default:
			continue
		}
		removed, err := s.remove(slot)
		if err != nil {
			errs = append(errs, err)
		} else if removed {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// remove deletes slot's directory unless a PUT to it is in progress.
func (s *Service) remove(slot string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.putting[slot] > 0 {
		return false, nil
	}
	return true, os.RemoveAll(s.dir(slot))
}

// expired reports whether g's file is gone at now.
func expired(g upload.Granted, now time.Time) bool {
	return !g.Expires.IsZero() && !now.Before(g.Expires)
}

func validSlot(s string) bool {
	if len(s) != upload.SlotIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
