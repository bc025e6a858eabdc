package upload

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux/muxtest"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/upload"
)

// Whatever a client puts in a slot request, the service answers with one
// well-formed IQ; a slot it grants has URLs under its base with one
// segment for the token and one for the name, which decodes to the
// sanitized name, and its directory is in the uploads directory. Seeds:
// testdata/fuzz/FuzzSlotRequest.
func FuzzSlotRequest(f *testing.F) {
	f.Add("très cool.jpg", "23456", "image/jpeg")
	f.Add("../../etc/passwd", "1", "")
	f.Add("a/b\\c", "0100", "text/plain; charset=utf-8")
	f.Add("%2e%2e", "99999999999999999999", "x/y")
	f.Add("", "-1", "*/*")
	f.Fuzz(func(t *testing.T, name, size, ct string) {
		fx := newFuzzService(t)
		iq := "<iq type='get' id='f' to='upload.localhost'><request xmlns='" + NS + "' filename='" + stanza.Escape(name) + "' size='" +
			stanza.Escape(size) + "' content-type='" + stanza.Escape(ct) + "'/></iq>"
		e, err := muxtest.Parse(iq)
		if err != nil {
			return // not XML a client can send: no character data for it
		}
		q, _ := e.Child()
		r, perr := ParseRequest(q)
		s := &muxtest.Session{Full: romeo}
		if err := fx.Handle(context.Background(), s, e, jid.MustParse("upload.localhost")); err != nil || len(s.Sent) != 1 {
			t.Fatalf("%v, %q", err, s.Sent)
		}
		a, err := muxtest.Parse(s.Sent[0])
		if err != nil {
			t.Fatalf("the answer does not parse: %v: %s", err, s.Sent[0])
		}
		if a.Attr("type") != "result" {
			return
		}
		if perr != nil {
			t.Fatalf("a slot for a request that does not parse: %v", perr)
		}
		sl, _ := a.Named(NS, "slot")
		put, _ := sl.Named(NS, "put")
		u, err := url.Parse(put.Attr("url"))
		if err != nil || !strings.HasPrefix(put.Attr("url"), fx.base) {
			t.Fatalf("URL %q: %v", put.Attr("url"), err)
		}
		segs := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/upload/"), "/")
		dec, _ := url.PathUnescape(segs[len(segs)-1])
		if len(segs) != 2 || dec != upload.SanitizeFilename(r.Filename) {
			t.Fatalf("URL %q for %q", u, r.Filename)
		}
		d := fx.dir(SlotID(segs[0]))
		if rel, err := filepath.Rel(fx.cfg.Dir, d); err != nil || strings.Contains(rel, "..") || strings.ContainsRune(rel, filepath.Separator) {
			t.Fatalf("slot directory %s", d)
		}
	})
}

func newFuzzService(t *testing.T) *Service {
	svc, err := New(Config{Domain: "upload.localhost", Domains: []string{"localhost"}, Dir: filepath.Join(t.TempDir(), "uploads"),
		Slots: &accounts{st: map[string]upload.State{}, ids: event.NewIDs()}, URL: "https://localhost:5443"})
	if err != nil {
		t.Fatal(err)
	}
	svc.cfg.Log = discard
	return svc
}
