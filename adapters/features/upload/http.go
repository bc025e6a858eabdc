package upload

import (
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"annals.im/annals/domain/upload"
)

// CORS, so that web clients on other origins upload and fetch (XEP-0363
// §impl): no cookies or credentials are involved, so any origin.
const (
	allowMethods = "PUT, GET, HEAD, OPTIONS"
	allowHeaders = "Content-Type, Authorization"
	// csp keeps what was uploaded from running anything when opened
	// (XEP-0363 §security): the listener's origin also serves the
	// WebSocket clients log in through.
	csp = "default-src 'none'; frame-ancestors 'none'; sandbox"
)

// Handler returns the HTTP side, to mount at cfg.Path on the listener
// whose public address is cfg.URL: PUT to a granted slot, GET and HEAD
// of an uploaded file, OPTIONS for CORS preflights.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", allowMethods)
		h.Set("Access-Control-Allow-Headers", allowHeaders)
		h.Set("Access-Control-Max-Age", "86400")
		h.Set("Allow", allowMethods)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		s.put(w, r)
	case http.MethodGet, http.MethodHead:
		s.get(w, r)
	default:
		h.Set("Allow", allowMethods)
		http.Error(w, "PUT, GET, HEAD or OPTIONS", http.StatusMethodNotAllowed)
	}
}

// locate reads a slot's URL path: Path, the token, /, the file name.
// ok is false for anything else, before the token is used.
func (s *Service) locate(r *http.Request) (slot, name string, ok bool) {
	rest, ok := strings.CutPrefix(r.URL.Path, s.cfg.Path)
	if !ok {
		return "", "", false
	}
	token, name, ok := strings.Cut(rest, "/")
	if !ok || len(token) != 2*tokenBytes || !validHex(token) || name == "" {
		return "", "", false
	}
	return SlotID(token), name, true
}

func validHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// put takes the upload of a granted slot: within its window, once,
// exactly the granted size and content type.
func (s *Service) put(w http.ResponseWriter, r *http.Request) {
	slot, name, ok := s.locate(r)
	if !ok {
		http.Error(w, "no such slot", http.StatusForbidden)
		return
	}
	// Counted before the grant is read: a sweep that removed the slot
	// first leaves no grant to read, one after leaves the slot alone.
	defer s.begin(slot)()
	g, err := s.grant(slot)
	if errors.Is(err, fs.ErrNotExist) || err == nil && name != g.Filename {
		http.Error(w, "no such slot", http.StatusForbidden)
		return
	} else if err != nil {
		s.cfg.Log.Error("upload: reading a slot", "slot", slot, "err", err)
		http.Error(w, "the slot cannot be read", http.StatusInternalServerError)
		return
	}
	switch {
	case !s.cfg.Now().Before(g.PutBefore):
		http.Error(w, "the slot's upload window is over: ask for a new slot", http.StatusForbidden)
		return
	case s.stored(slot):
		http.Error(w, "the slot was uploaded to", http.StatusConflict)
		return
	case r.ContentLength > g.Size:
		http.Error(w, "larger than the slot", http.StatusRequestEntityTooLarge)
		return
	case r.ContentLength >= 0 && r.ContentLength != g.Size:
		http.Error(w, "the Content-Length is not the slot's size", http.StatusBadRequest)
		return
	}
	if g.ContentType != "" && !sameType(r.Header.Get("Content-Type"), g.ContentType) {
		// XEP-0363 §6: the type asked for is the type served.
		http.Error(w, "the Content-Type is not the slot's: "+g.ContentType, http.StatusUnsupportedMediaType)
		return
	}
	// The connection's clock, not the service's: a deadline is real time.
	deadline := time.Now().Add(s.cfg.PutGrace + time.Duration(float64(g.Size)/float64(s.cfg.PutMinRate)*float64(time.Second)))
	if err := http.NewResponseController(w).SetReadDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.cfg.Log.Warn("upload: no deadline for a PUT", "err", err)
	}
	d := s.dir(slot)
	tmp, err := os.CreateTemp(d, "put-*")
	if err != nil {
		s.cfg.Log.Error("upload: a file cannot be written", "slot", slot, "err", err)
		http.Error(w, "the file cannot be written", http.StatusInternalServerError)
		return
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, http.MaxBytesReader(w, r.Body, g.Size))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		http.Error(w, "larger than the slot", http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		s.cfg.Log.Warn("upload: an upload failed", "slot", slot, "err", err)
		http.Error(w, "the upload failed", http.StatusBadRequest)
		return
	case n != g.Size:
		http.Error(w, "smaller than the slot", http.StatusBadRequest)
		return
	}
	// A link fails if the file is there: of two uploads at once, one
	// wins whole.
	if err := os.Link(tmp.Name(), filepath.Join(d, dataFile)); errors.Is(err, fs.ErrExist) {
		http.Error(w, "the slot was uploaded to", http.StatusConflict)
		return
	} else if err != nil {
		s.cfg.Log.Error("upload: a file cannot be written", "slot", slot, "err", err)
		http.Error(w, "the file cannot be written", http.StatusInternalServerError)
		return
	}
	s.cfg.Log.Info("upload: file stored", "slot", slot, "size", n)
	s.cfg.Metrics.Uploaded(n)
	w.WriteHeader(http.StatusCreated)
}

// begin counts a PUT to slot in progress until the function it returns
// is called.
func (s *Service) begin(slot string) func() {
	s.mu.Lock()
	s.putting[slot]++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		if s.putting[slot]--; s.putting[slot] == 0 {
			delete(s.putting, slot)
		}
		s.mu.Unlock()
	}
}

// sameType reports whether header names the media type of want, whatever
// the parameters (a browser may add a charset).
func sameType(header, want string) bool {
	got, err := upload.ContentType(header)
	if err != nil || got == "" {
		return false
	}
	a, _, _ := mime.ParseMediaType(got)
	b, _, _ := mime.ParseMediaType(want)
	return a == b
}

// get serves an uploaded file until it expires: 404 for anything else,
// a wrong token included (it tells nothing of which slots exist).
func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	slot, name, ok := s.locate(r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	g, err := s.grant(slot)
	if err != nil || name != g.Filename || expired(g, s.cfg.Now()) {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(filepath.Join(s.dir(slot), dataFile))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct := g.ContentType
	if ct == "" {
		ct = "application/octet-stream" // XEP-0363 §6
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", disposition(ct, g.Filename))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", csp)
	// ServeContent answers HEAD and ranges and sets Content-Length.
	http.ServeContent(w, r, "", info.ModTime(), f)
}

// disposition shows images, video, audio and text in the browser, and
// offers anything else to save, under the uploader's file name.
func disposition(ct, name string) string {
	kind := "attachment"
	switch typ, _, _ := strings.Cut(ct, "/"); typ {
	case "image", "video", "audio", "text":
		kind = "inline"
	}
	if d := mime.FormatMediaType(kind, map[string]string{"filename": name}); d != "" {
		return d
	}
	return kind
}
