package upload

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/event"
)

// given is a slot granted earlier: at offset ago from now, of size bytes.
type given struct {
	ago  time.Duration
	size int64
}

// Given the slots granted so far, when a request, then the grant or the
// rule it breaks; and the bytes the quota counts after it.
func TestDecide(t *testing.T) {
	t.Parallel()
	ids := event.NewIDs()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	lim := Limits{MaxSize: 1000, Quota: 2500, MaxOpen: 3, PutWindow: 5 * time.Minute, Expiry: 24 * time.Hour}
	never := lim
	never.Expiry = 0
	req := func(name string, size int64, ct string) Request {
		return Request{Filename: name, Size: size, ContentType: ct, Limits: lim}
	}
	cases := []struct {
		name   string
		given  []given
		stored bool // the given slots were uploaded to
		when   Request
		err    error
		file   string // the granted name
		ct     string
		used   int64
	}{
		{"a slot", nil, false, req("très cool.jpg", 23, "image/jpeg"), nil, "très cool.jpg", "image/jpeg", 23},
		{"no content type", nil, false, req("a.bin", 1, ""), nil, "a.bin", "", 1},
		{"the content type made canonical", nil, false, req("a.txt", 1, "Text/Plain; Charset=UTF-8"), nil, "a.txt", "text/plain; charset=UTF-8", 1},
		{"exactly the largest", nil, false, req("a", 1000, ""), nil, "a", "", 1000},
		{"one byte too large", nil, false, req("a", 1001, ""), ErrTooLarge, "", "", 0},
		{"empty", nil, false, req("a", 0, ""), ErrInvalid, "", "", 0},
		{"negative", nil, false, req("a", -5, ""), ErrInvalid, "", "", 0},
		{"no name", nil, false, req("", 5, ""), ErrInvalid, "", "", 0},
		{"a path for a name", nil, false, req("../../etc/passwd", 5, ""), nil, "passwd", "", 5},
		{"not a MIME type", nil, false, req("a", 5, "jpeg"), ErrInvalid, "", "", 0},
		{"a MIME type with a wildcard", nil, false, req("a", 5, "image/*"), ErrInvalid, "", "", 0},
		{"a header injection", nil, false, req("a", 5, "text/plain\r\nX-Evil: 1"), ErrInvalid, "", "", 0},
		{"up to the quota", []given{{time.Hour, 1000}, {time.Hour, 1000}}, true, req("a", 500, ""), nil, "a", "", 2500},
		{"over the quota", []given{{time.Hour, 1000}, {time.Hour, 1000}}, true, req("a", 501, ""), ErrQuota, "", "", 2000},
		{"expired slots free the quota", []given{{25 * time.Hour, 1000}, {time.Hour, 1000}}, true, req("a", 1000, ""), nil, "a", "", 2000},
		{"files kept for ever count for ever", []given{{1000 * time.Hour, 1000}, {1000 * time.Hour, 1000}}, true,
			Request{Filename: "a", Size: 1000, Limits: never}, ErrQuota, "", "", 2000},
		{"open slots bounded", []given{{time.Minute, 1}, {time.Minute, 1}, {time.Minute, 1}}, false, req("a", 1, ""), ErrOpen, "", "", 3},
		{"uploaded slots are not open", []given{{time.Minute, 1}, {time.Minute, 1}, {time.Minute, 1}}, true, req("a", 1, ""), nil, "a", "", 4},
		{"slots past their window are not open", []given{{6 * time.Minute, 1}, {6 * time.Minute, 1}, {6 * time.Minute, 1}}, false,
			req("a", 1, ""), nil, "a", "", 4},
		{"no limits is a programming error", nil, false, Request{Filename: "a", Size: 1}, errCommand, "", "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var s State
			n := 0
			newID := func() string { n++; return fmt.Sprintf("%032x", n) }
			for _, g := range c.given {
				l := lim
				if c.when.Limits.Expiry == 0 && c.when.Limits.MaxSize != 0 {
					l = never
				}
				evs, err := Decide(s, Request{Slot: newID(), Filename: "x", Size: g.size, Limits: l}, ids, now.Add(-g.ago), "c2s:1/a")
				if err != nil {
					t.Fatal(err)
				}
				if s, err = Evolve(s, evs[0]); err != nil {
					t.Fatal(err)
				}
			}
			r := c.when
			r.Slot = newID()
			if c.stored {
				r.Stored = func(string) bool { return true }
			}
			evs, err := Decide(s, r, ids, now, "c2s:1/b")
			if !errors.Is(err, c.err) || (err == nil) != (len(evs) == 1) {
				t.Fatalf("got %d events, %v; want %v", len(evs), err, c.err)
			}
			for _, e := range evs {
				var g Granted
				if err := e.Decode(Schema, &g); err != nil {
					t.Fatal(err)
				}
				if e.Type != TypeSlotGranted || e.Cause != "c2s:1/b" || g.Slot != r.Slot || g.Filename != c.file || g.ContentType != c.ct || g.Size != r.Size ||
					!g.PutBefore.Equal(now.Add(lim.PutWindow)) {
					t.Fatalf("granted %+v (%s, cause %s)", g, e.Type, e.Cause)
				}
				if wantExp := now.Add(r.Limits.Expiry); r.Limits.Expiry > 0 && !g.Expires.Equal(wantExp) || r.Limits.Expiry == 0 && !g.Expires.IsZero() {
					t.Fatalf("expires %v", g.Expires)
				}
				if s, err = Evolve(s, e); err != nil {
					t.Fatal(err)
				}
			}
			if u := s.Used(now); u != c.used {
				t.Fatalf("used %d bytes, want %d", u, c.used)
			}
		})
	}
}

// A slot id must be fresh and well formed: it names a directory.
func TestDecideSlotIDs(t *testing.T) {
	t.Parallel()
	ids, now := event.NewIDs(), time.Now()
	id := strings.Repeat("ab", 16)
	evs, err := Decide(State{}, Request{Slot: id, Filename: "a", Size: 1, Limits: Defaults()}, ids, now, "c")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := Evolve(State{}, evs[0])
	for _, bad := range []string{id, "../" + id[3:], strings.ToUpper(id), id[:31], id + "0", ""} {
		if _, err := Decide(s, Request{Slot: bad, Filename: "a", Size: 1, Limits: Defaults()}, ids, now, "c"); !errors.Is(err, ErrInvalid) {
			t.Errorf("slot id %q: %v", bad, err)
		}
	}
}

// Evolve keeps the live slots only: an account that uploads for years
// does not fold a state of every file it ever sent.
func TestEvolveDropsExpired(t *testing.T) {
	t.Parallel()
	ids, t0 := event.NewIDs(), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lim := Defaults()
	lim.Expiry = time.Hour
	var s State
	for i := range 100 {
		at := t0.Add(time.Duration(i) * 10 * time.Minute)
		evs, err := Decide(s, Request{Slot: fmt.Sprintf("%032x", i+1), Filename: "a", Size: 1, Limits: lim, Stored: func(string) bool { return true }}, ids, at, "c")
		if err != nil {
			t.Fatal(i, err)
		}
		if s, err = Evolve(s, evs[0]); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.Slots) > 7 {
		t.Fatalf("%d slots kept, want the 6 or 7 live ones", len(s.Slots))
	}
}

func TestSanitizeFilename(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 100) // 200 bytes
	for _, c := range []struct{ in, want string }{
		{"très cool.jpg", "très cool.jpg"},
		{"../../etc/passwd", "passwd"},
		{`..\..\windows\system.ini`, "system.ini"},
		{"..", "file"},
		{"/", "file"},
		{"", "file"},
		{".hidden", "hidden"},
		{"a\x00b\nc.txt", "a_b_c.txt"},
		{"invoice\u202egpj.exe", "invoice_gpj.exe"},
		{"what?.txt", "what_.txt"},
		{"trailing. . ", "trailing"},
		{"\xff\xfe.png", "_.png"},
		{long + ".jpeg", strings.Repeat("é", 61) + ".jpeg"},
		{long, strings.Repeat("é", 64)},
	} {
		if got := SanitizeFilename(c.in); got != c.want {
			t.Errorf("SanitizeFilename(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestContentType(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"image/jpeg", "image/jpeg"},
		{"IMAGE/PNG", "image/png"},
		{"text/plain;charset=utf-8", "text/plain; charset=utf-8"},
		{"application/vnd.openxmlformats-officedocument.wordprocessingml.document", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
	} {
		if got, err := ContentType(c.in); err != nil || got != c.want {
			t.Errorf("ContentType(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"jpeg", "image/", "/jpeg", "*/*", "image/*", "a/b/c", "text/plain; charset", "text/plain\nX: y", "image/" + strings.Repeat("x", 300)} {
		if got, err := ContentType(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ContentType(%q) = %q, %v; want ErrInvalid", bad, got, err)
		}
	}
}
