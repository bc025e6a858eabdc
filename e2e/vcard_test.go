package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// slixVCard runs clients/slix_vcard.py (slixmpp's xep_0054 and xep_0153
// plugins) against s.
func slixVCard(t *testing.T, s *server, args ...string) []result {
	t.Helper()
	return runDriver(t, "/usr/bin/python3", append([]string{"clients/slix_vcard.py", strconv.Itoa(s.port)}, args...)...)
}

// whose is the fact event by who.
func whose(t *testing.T, rs []result, event, who string) result {
	t.Helper()
	for _, r := range rs {
		if r["event"] == event && r["who"] == who {
			return r
		}
	}
	t.Fatalf("no %q by %q in %v", event, who, rs)
	return nil
}

// avatarPNG is a 48x48 PNG, as an avatar is, and the SHA-1 of its bytes.
func avatarPNG(t *testing.T) ([]byte, string) {
	img := image.NewRGBA(image.Rect(0, 0, 48, 48))
	for x := range 48 {
		for y := range 48 {
			img.Set(x, y, color.RGBA{uint8(x * 5), uint8(y * 5), 200, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(b.Bytes())
	return b.Bytes(), hex.EncodeToString(sum[:])
}

// vCards and avatars with slixmpp's own plugins: Romeo (a client that
// knows nothing of XEP-0153) publishes a vCard with a photo; Juliet, his
// contact, sees his presence carry the photo's SHA-1 without Romeo sending
// one, and her xep_0153 plugin takes it for an avatar update; she and
// Tybalt, a stranger, fetch his vCard and get the photo's bytes; Tybalt
// cannot set it and Romeo cannot set one over --vcard-max-bytes. Romeo's
// room gets his vCard with the photo, Juliet (a participant) is told with
// status 104 and cannot set it; she and Tybalt read it, and its hash is
// in the room's disco#info. Then the server stops, `annals rebuild` runs,
// and a new server shows the same: the state is in the log.
func TestVCardAvatars(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUsers(t, data, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet", "tybalt@localhost": "prince-of-cats"})
	const limit = 20000
	s, cmd := serveOn(t, data, "--vcard-max-bytes", strconv.Itoa(limit))
	img, imgSHA1 := avatarPNG(t)
	dir := t.TempDir()
	photo, big := filepath.Join(dir, "avatar.png"), filepath.Join(dir, "big.bin")
	large := make([]byte, limit) // base64 makes it 4/3 of the limit
	rand.Read(large)
	if err := os.WriteFile(photo, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, large, 0o644); err != nil {
		t.Fatal(err)
	}
	const room = "orchard@conference.localhost"
	rs := slixVCard(t, s, "avatars", "romeo@localhost", "montague", "juliet@localhost", "capulet", "tybalt@localhost", "prince-of-cats",
		room, photo, big)

	// XEP-0054: the own vCard before there is one is an empty one.
	if own := whose(t, rs, "fetched", "a-own-before"); own["ok"] != true || own["empty"] != true {
		t.Errorf("romeo's own vCard before he set one: %v", own)
	}
	if set := whose(t, rs, "set", "a"); set["ok"] != true {
		t.Fatalf("romeo's vCard: %v", set)
	}
	// XEP-0153: the server's hash, in a presence Romeo did not send again.
	p := whose(t, rs, "presence", "b")
	if p["photo"] != imgSHA1 {
		t.Errorf("romeo's presence says photo %v, want the image's SHA-1 %s (seen %v)", p["photo"], imgSHA1, p["seen"])
	}
	if u := strs(whose(t, rs, "avatar-update", "b")["updates"]); len(u) == 0 {
		t.Errorf("juliet's xep_0153 plugin saw no avatar update")
	}
	for _, who := range []string{"b", "c", "b-after"} {
		f := whose(t, rs, "fetched", who)
		if f["ok"] != true || f["sha1"] != imgSHA1 || f["size"] != float64(len(img)) || f["type"] != "image/png" || f["fn"] != "Romeo Montague" {
			t.Errorf("%s fetched romeo's vCard as %v, want the photo of %d bytes, SHA-1 %s", who, f, len(img), imgSHA1)
		}
	}
	if f := whose(t, rs, "set-other", "c"); f["ok"] != false || f["error"] != "forbidden" {
		t.Errorf("tybalt setting romeo's vCard: %v", f)
	}
	if f := whose(t, rs, "set-big", "a"); f["ok"] != false || f["error"] != "not-acceptable" {
		t.Errorf("a vCard over the limit: %v", f)
	}
	for _, r := range all(rs, "disco") {
		if !slices.Contains(strs(r["features"]), "vcard-temp") {
			t.Errorf("disco#info of %v lacks vcard-temp: %v", r["of"], r)
		}
	}
	if len(all(rs, "disco")) != 3 {
		t.Errorf("disco answers: %v", all(rs, "disco"))
	}
	// XEP-0486: the room's.
	if f := whose(t, rs, "room-set", "a"); f["ok"] != true {
		t.Errorf("the owner's room vCard: %v", f)
	}
	if f := whose(t, rs, "room-104", "b"); f["seen"] != true {
		t.Errorf("juliet was not told of the room's new vCard (104)")
	}
	if f := whose(t, rs, "room-set-other", "b"); f["ok"] != false || f["error"] != "forbidden" {
		t.Errorf("a participant setting the room's vCard: %v", f)
	}
	for _, who := range []string{"b-room", "c-room"} {
		if f := whose(t, rs, "fetched", who); f["ok"] != true || f["sha1"] != imgSHA1 || f["fn"] != "The orchard" {
			t.Errorf("%s read the room's vCard as %v", who, f)
		}
	}
	if h := strs(whose(t, rs, "room-info", "b")["avatarhash"]); !slices.Equal(h, []string{imgSHA1}) {
		t.Errorf("the room's muc#roominfo_avatarhash is %v, want [%s]", h, imgSHA1)
	}

	// The same after a restart and a rebuild of every read model.
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if out, err := exec.Command(bin, "rebuild", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
	s2, _ := serveOn(t, data, "--vcard-max-bytes", strconv.Itoa(limit))
	rs = slixVCard(t, s2, "check", "romeo@localhost", "montague", "juliet@localhost", "capulet", room)
	if p := whose(t, rs, "presence", "b"); p["photo"] != imgSHA1 {
		t.Errorf("after the rebuild romeo's presence says %v, want %s", p["photo"], imgSHA1)
	}
	for _, who := range []string{"b", "b-room"} {
		if f := whose(t, rs, "fetched", who); f["ok"] != true || f["sha1"] != imgSHA1 {
			t.Errorf("after the rebuild %s fetched %v", who, f)
		}
	}
}

// A vCard is public across servers too (XEP-0054 §5): a user at another
// Annals, no contact, fetches an account's vCard with its photo through
// federation, and cannot set it.
func TestVCardFederated(t *testing.T) {
	t.Parallel()
	a, b := startFederated(t, dialback)
	img, imgSHA1 := avatarPNG(t)
	photo := filepath.Join(t.TempDir(), "avatar.png")
	if err := os.WriteFile(photo, img, 0o644); err != nil {
		t.Fatal(err)
	}
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_vcard.py", "0", "remote",
		a.c2s(), "romeo@"+a.domain, "pw-"+a.domain, b.c2s(), "juliet@"+b.domain, "pw-"+b.domain, photo)
	if f := whose(t, rs, "set", "b"); f["ok"] != true {
		t.Fatalf("juliet's vCard: %v", f)
	}
	if f := whose(t, rs, "fetched", "a"); f["ok"] != true || f["sha1"] != imgSHA1 || f["fn"] != "Juliet Capulet" {
		t.Errorf("romeo fetched juliet's vCard across servers as %v, want the photo with SHA-1 %s", f, imgSHA1)
	}
	if f := whose(t, rs, "set-other", "a"); f["ok"] != false || f["error"] != "forbidden" {
		t.Errorf("romeo setting juliet's vCard across servers: %v", f)
	}
}
