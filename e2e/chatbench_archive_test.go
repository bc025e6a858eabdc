package e2e

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

// The message sendTemplate sends: the loaders find the rows it left in a
// peer's archive tables by its id, and vary id, body, sender and time.
const (
	templateID   = "bm-1-tmpl"
	templateBody = "template body 0001"
)

// archiveStep is the time between two loaded messages: 1M messages span
// about 17 minutes, ending when the template message was sent.
const archiveStep = time.Millisecond

// templateReplacer turns the template message into loaded message i, sent
// by mamsrc(i%8) like loadAnnalsArchive's.
func templateReplacer(i int) *strings.Replacer {
	return strings.NewReplacer(templateID, fmt.Sprintf("bm-load-%d", i),
		templateBody, fmt.Sprintf("archived message %d of the MAM benchmark load", i),
		"mamsrc0", "mamsrc"+strconv.Itoa(i%8))
}

// loadProsodyArchive writes n messages from mamsrc0..7 to mam0 into the
// stopped Prosody's SQLite database at db, as rows of prosodyarchive shaped
// like the two the template message made (the sender's and the recipient's
// archive: Prosody archives both sides), then drops the template rows.
// Each copy gets a new key (Prosody's archive id, a UUID), its own id,
// body and sender, and a time archiveStep after the one before.
func loadProsodyArchive(db string, n int) error {
	d, err := sql.Open("sqlite3", db)
	if err != nil {
		return err
	}
	defer d.Close()
	type row struct {
		host, user, store, with, typ, value string
		when                                int64
	}
	var tmpl []row
	rs, err := d.Query(`SELECT "host", "user", "store", "with", "type", "value", "when" FROM "prosodyarchive" WHERE "value" LIKE ? ORDER BY "sort_id"`, "%"+templateID+"%")
	if err != nil {
		return err
	}
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.host, &r.user, &r.store, &r.with, &r.typ, &r.value, &r.when); err != nil {
			rs.Close()
			return err
		}
		tmpl = append(tmpl, r)
	}
	rs.Close()
	if len(tmpl) != 2 {
		return fmt.Errorf("prosody: %d archive rows for the template message, want 2 (sender and recipient)", len(tmpl))
	}
	tx, err := d.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`DELETE FROM "prosodyarchive" WHERE "value" LIKE ?`, "%"+templateID+"%"); err != nil {
		return err
	}
	ins, err := tx.Prepare(`INSERT INTO "prosodyarchive" ("host", "user", "store", "key", "when", "with", "type", "value") VALUES (?,?,?,?,?,?,?,?)`)
	if err != nil {
		return err
	}
	seed := rand.Uint32()
	end := time.Unix(tmpl[1].when, 0)
	for i := 0; i < n; i++ {
		rp := templateReplacer(i)
		when := end.Add(-time.Duration(n-1-i) * archiveStep).Unix()
		for side, t := range tmpl {
			key := fmt.Sprintf("%08x-%04x-4000-8000-%012x", seed, side, i)
			if _, err := ins.Exec(t.host, rp.Replace(t.user), t.store, key, when, rp.Replace(t.with), t.typ, rp.Replace(t.value)); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// loadEjabberdArchive writes n messages from mamsrc0..7 to mam0 into the
// stopped ejabberd's SQLite database at db, as rows of archive shaped like
// the two the template message made (sender's and recipient's), then
// drops the template rows. Each copy gets its own id, body (xml and txt)
// and sender, and a timestamp (ejabberd's archive id, in microseconds)
// archiveStep after the one before.
func loadEjabberdArchive(db string, n int) error {
	d, err := sql.Open("sqlite3", db)
	if err != nil {
		return err
	}
	defer d.Close()
	type row struct {
		username, peer, barePeer, xml, txt, kind, nick string
		ts                                             int64
	}
	var tmpl []row
	rs, err := d.Query(`SELECT username, timestamp, peer, bare_peer, xml, COALESCE(txt, ''), COALESCE(kind, ''), COALESCE(nick, '') FROM archive WHERE xml LIKE ? ORDER BY id`, "%"+templateID+"%")
	if err != nil {
		return err
	}
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.username, &r.ts, &r.peer, &r.barePeer, &r.xml, &r.txt, &r.kind, &r.nick); err != nil {
			rs.Close()
			return err
		}
		tmpl = append(tmpl, r)
	}
	rs.Close()
	if len(tmpl) != 2 {
		return fmt.Errorf("ejabberd: %d archive rows for the template message, want 2 (sender and recipient)", len(tmpl))
	}
	tx, err := d.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`DELETE FROM archive WHERE xml LIKE ?`, "%"+templateID+"%"); err != nil {
		return err
	}
	ins, err := tx.Prepare(`INSERT INTO archive (username, timestamp, peer, bare_peer, xml, txt, kind, nick, created_at) VALUES (?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		rp := templateReplacer(i)
		for side, t := range tmpl {
			ts := t.ts - int64(n-1-i)*archiveStep.Microseconds() + int64(side)
			created := time.UnixMicro(ts).UTC().Format("2006-01-02 15:04:05")
			if _, err := ins.Exec(rp.Replace(t.username), ts, rp.Replace(t.peer), rp.Replace(t.barePeer), rp.Replace(t.xml),
				rp.Replace(t.txt), t.kind, t.nick, created); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// chownEjabberd gives dir back to the ejabberd user after a load.
func chownEjabberd(dir string) error {
	if out, err := exec.Command("chown", "-R", "ejabberd:ejabberd", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("chown: %v %s", err, out)
	}
	return nil
}
