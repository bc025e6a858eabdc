package e2e

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Attacks on the secrets Annals keeps (issue 10, items 8 and 9), against
// the real `annals serve` with a raw-socket client.

const (
	nsPubsub    = "http://jabber.org/protocol/pubsub"
	nsBookmarks = "urn:xmpp:bookmarks:1"
	nsMUCOwner  = "http://jabber.org/protocol/muc#owner"
)

// secretsServer serves data and returns a login for it.
func secretsServer(t *testing.T, data string) (*exec.Cmd, func(user, pw, res string) *loadClient) {
	t.Helper()
	s, cmd := serveOn(t, data)
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	return cmd, func(user, pw, res string) *loadClient {
		t.Helper()
		c, err := dialLogin(addr, "localhost", user, pw, res)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.close)
		return c
	}
}

// stopServe ends a serve started by secretsServer and waits for it.
func stopServe(cmd *exec.Cmd) {
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
}

// stillServed checks that another session gets an answer.
func stillServed(t *testing.T, c *loadClient, id string) {
	t.Helper()
	c.send("<iq type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := waitFor(t, c, "id='"+id+"'"); !strings.Contains(got, "type='result'") {
		t.Fatalf("another session was not served: %s", got)
	}
}

// eventsTable dumps every column of the raw events table.
func eventsTable(t *testing.T, data string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", data+"/annals.db", "SELECT position, stream, type, cause, CAST(data AS TEXT) FROM events").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	return string(out)
}

func roomConfig(fields map[string]string) string {
	var b strings.Builder
	b.WriteString("<query xmlns='" + nsMUCOwner + "'><x xmlns='jabber:x:data' type='submit'>")
	for v, val := range fields {
		b.WriteString("<field var='" + v + "'><value>" + val + "</value></field>")
	}
	b.WriteString("</x></query>")
	return b.String()
}

// Item 8: a bookmark's password never reaches the log (audit query and
// the raw events table show none), yet the account's other client gets it
// in notifications, items, the XEP-0048 view and the autojoin, also after
// a rebuild and a restart; a retraction erases it.
func TestHostileBookmarkPasswords(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUsers(t, data, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet"})
	cmd, login := secretsServer(t, data)
	const (
		garden, crypt, vault = "garden@conference.localhost", "crypt@conference.localhost", "vault@conference.localhost"
		pw402, pw48, pwVault = "Pw-402-d3adb33f", "Pw-0048-c0ffee", "Vault-pw-1"
	)
	desk, phone, jul := login("romeo", "montague", "desk"), login("romeo", "montague", "phone"), login("juliet", "capulet", "balcony")
	for _, c := range []*loadClient{desk, phone} {
		c.send("<presence/>")
		waitFor(t, c, "<presence")
	}
	// Juliet keeps a password-protected room for the autojoin below.
	jul.send("<presence to='" + vault + "/Juliet'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
	waitFor(t, jul, "code='201'")
	jul.send("<iq type='set' id='vcfg' to='" + vault + "'>" + roomConfig(map[string]string{
		"muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": pwVault}) + "</iq>")
	waitFor(t, jul, "id='vcfg'")

	publish := func(id, room, inner string) {
		t.Helper()
		desk.send("<iq type='set' id='" + id + "'><pubsub xmlns='" + nsPubsub + "'><publish node='" + nsBookmarks + "'><item id='" + room + "'>" +
			inner + "</item></publish><publish-options><x xmlns='jabber:x:data' type='submit'>" +
			"<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
			"<field var='pubsub#access_model'><value>whitelist</value></field><field var='pubsub#max_items'><value>max</value></field>" +
			"</x></publish-options></pubsub></iq>")
		if got := waitFor(t, desk, "id='"+id+"'"); !strings.Contains(got, "type='result'") {
			t.Fatalf("publishing %s: %s", room, got)
		}
	}
	publish("p1", garden, "<conference xmlns='"+nsBookmarks+"' name='Garden' autojoin='false'><nick>Romeo</nick><password>"+pw402+"</password></conference>")
	if got := waitFor(t, phone, pw402); !strings.Contains(got, "pubsub#event") {
		t.Fatalf("the other client's notification: %s", got)
	}
	// The XEP-0048 view sets a second bookmark, with its own password.
	desk.send("<iq type='set' id='priv1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>" +
		"<conference jid='" + garden + "' name='Garden' autojoin='false'><nick>Romeo</nick><password>" + pw402 + "</password></conference>" +
		"<conference jid='" + crypt + "' autojoin='false'><nick>Romeo</nick><password>" + pw48 + "</password></conference>" +
		"</storage></query></iq>")
	if got := waitFor(t, desk, "id='priv1'"); !strings.Contains(got, "type='result'") {
		t.Fatalf("XEP-0048 set: %s", got)
	}
	// Autojoin with the bookmark's password takes Romeo into the vault.
	publish("p2", vault, "<conference xmlns='"+nsBookmarks+"' autojoin='true'><nick>Romeo</nick><password>"+pwVault+"</password></conference>")
	if got := waitFor(t, jul, vault+"/Romeo"); strings.Contains(got, "type='unavailable'") {
		t.Fatalf("autojoin with the bookmark's password: %s", got)
	}

	// What the account's other client is served.
	served := func(c *loadClient, when string) {
		t.Helper()
		c.send("<iq type='get' id='items-" + when + "'><pubsub xmlns='" + nsPubsub + "'><items node='" + nsBookmarks + "'/></pubsub></iq>")
		got := waitFor(t, c, "id='items-"+when+"'")
		for _, pw := range []string{pw402, pw48, pwVault} {
			if !strings.Contains(got, ">"+pw+"</password></conference></item>") {
				t.Errorf("%s: items lack %s: %s", when, pw, got)
			}
		}
		c.send("<iq type='get' id='priv-" + when + "'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>")
		got = waitFor(t, c, "id='priv-"+when+"'")
		for _, pw := range []string{pw402, pw48, pwVault} {
			if !strings.Contains(got, "<password>"+pw+"</password>") {
				t.Errorf("%s: the XEP-0048 view lacks %s: %s", when, pw, got)
			}
		}
	}
	served(phone, "live")
	stillServed(t, jul, "ping1")

	// Nothing of them is in the log: not through the CLI, not in the file.
	noPasswords := func(when string) {
		t.Helper()
		for _, args := range [][]string{{"audit", "query", "--data", data}, {"audit", "query", "--json", "--data", data}} {
			out, err := exec.Command(bin, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
			for _, pw := range []string{pw402, pw48, pwVault} {
				if strings.Contains(string(out), pw) {
					t.Errorf("%s: %v shows %s", when, args, pw)
				}
			}
			if !strings.Contains(string(out), "PEPItemPublished") || !strings.Contains(string(out), `has_password`) {
				t.Errorf("%s: %v shows no bookmark with a password:\n%s", when, args, out)
			}
		}
		raw := eventsTable(t, data)
		for _, pw := range []string{pw402, pw48, pwVault} {
			if strings.Contains(raw, pw) {
				t.Errorf("%s: the events table holds %s", when, pw)
			}
		}
	}
	noPasswords("live")

	// A rebuild replays the log into the read models: the passwords,
	// which are not one, stay; a new serve gives them back.
	stopServe(cmd)
	if out, err := exec.Command(bin, "rebuild", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
	noPasswords("rebuilt")
	_, login = secretsServer(t, data)
	phone, jul = login("romeo", "montague", "phone"), login("juliet", "capulet", "balcony")
	served(phone, "rebuilt")

	// A retraction erases the password beside the log.
	phone.send("<iq type='set' id='r1'><pubsub xmlns='" + nsPubsub + "'><retract node='" + nsBookmarks + "'><item id='" + crypt + "'/></retract></pubsub></iq>")
	waitFor(t, phone, "id='r1'")
	out, err := exec.Command("sqlite3", data+"/annals.db", "SELECT * FROM pep_passwords").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	if strings.Contains(string(out), pw48) || !strings.Contains(string(out), pw402) {
		t.Errorf("passwords kept after the retraction of %s:\n%s", crypt, out)
	}
	stillServed(t, jul, "ping2")
}

// Item 8: a room password is kept as a salted PBKDF2 verifier that names
// its function and cost: two rooms with the same password have different
// verifiers, and the password is in neither. The right password enters,
// a wrong one does not, and another session is served meanwhile.
func TestHostileRoomPasswords(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUsers(t, data, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet", "tybalt@localhost": "capulet"})
	_, login := secretsServer(t, data)
	rom, jul, tyb := login("romeo", "montague", "desk"), login("juliet", "capulet", "balcony"), login("tybalt", "capulet", "street")
	for _, r := range []string{"hall", "crypt"} {
		j := r + "@conference.localhost"
		rom.send("<presence to='" + j + "/Romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
		waitFor(t, rom, "code='201'")
		rom.send("<iq type='set' id='cfg-" + r + "' to='" + j + "'>" + roomConfig(map[string]string{
			"muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": "s3cret"}) + "</iq>")
		if got := waitFor(t, rom, "id='cfg-"+r+"'"); !strings.Contains(got, "type='result'") {
			t.Fatalf("configuring %s: %s", r, got)
		}
	}
	raw := eventsTable(t, data)
	verifier := regexp.MustCompile(`"password_hash":"([^"]*)"`)
	var found []string
	for _, m := range verifier.FindAllStringSubmatch(raw, -1) {
		found = append(found, m[1])
	}
	pbkdf2 := regexp.MustCompile(`^\$pbkdf2-sha256\$i=(\d+)\$([A-Za-z0-9+/]{22})\$[A-Za-z0-9+/]{43}$`)
	if len(found) != 2 || found[0] == found[1] || strings.Contains(raw, "s3cret") {
		t.Fatalf("room verifiers in the log: %q", found)
	}
	salts := map[string]bool{}
	for _, v := range found {
		m := pbkdf2.FindStringSubmatch(v)
		if m == nil {
			t.Fatalf("verifier %q is not a salted PBKDF2-SHA256 one", v)
		}
		if n, _ := strconv.Atoi(m[1]); n < 10000 {
			t.Fatalf("verifier %q: %d iterations", v, n)
		}
		salts[m[2]] = true
	}
	if len(salts) != 2 {
		t.Fatalf("one salt for two rooms: %q", found)
	}
	const hall = "hall@conference.localhost"
	jul.send("<presence to='" + hall + "/Juliet' id='w'><x xmlns='http://jabber.org/protocol/muc'><password>secret</password></x></presence>")
	if got := waitFor(t, jul, "id='w'"); !strings.Contains(got, "not-authorized") {
		t.Fatalf("join with a wrong password: %s", got)
	}
	stillServed(t, tyb, "ping1")
	jul.send("<presence to='" + hall + "/Juliet' id='r'><x xmlns='http://jabber.org/protocol/muc'><password>s3cret</password></x></presence>")
	if got := waitFor(t, jul, "code='110'"); strings.Contains(got, "type='error'") {
		t.Fatalf("join with the right password: %s", got)
	}
	waitFor(t, rom, hall+"/Juliet")
}

// Item 9: from outside, a password-protected public room's archive is
// closed, a members-only room's disco#info tells neither subject nor
// description, and a private message of type groupchat is refused with
// bad-request and reaches nobody. An open room's archive stays readable.
func TestHostileRoomOutsiders(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUsers(t, data, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet", "tybalt@localhost": "capulet"})
	_, login := secretsServer(t, data)
	rom, jul, tyb := login("romeo", "montague", "desk"), login("juliet", "capulet", "balcony"), login("tybalt", "capulet", "street")
	const plaza, vault, club = "plaza@conference.localhost", "vault@conference.localhost", "club@conference.localhost"
	for room, fields := range map[string]map[string]string{
		plaza: {"muc#roomconfig_roomdesc": "Plaza talk"},
		vault: {"muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": "s3cret"},
		club:  {"muc#roomconfig_membersonly": "1", "muc#roomconfig_roomdesc": "Club-plans"},
	} {
		rom.send("<presence to='" + room + "/Romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
		waitFor(t, rom, "code='201'")
		rom.send("<iq type='set' id='cfg' to='" + room + "'>" + roomConfig(fields) + "</iq>")
		waitFor(t, rom, "id='cfg'")
		rom.send("<message to='" + room + "' type='groupchat' id='m'><body>said in " + room + "</body></message>")
		waitFor(t, rom, "id='m'")
	}
	rom.send("<message to='" + club + "' type='groupchat' id='s'><subject>Club-subject</subject></message>")
	waitFor(t, rom, "Club-subject")

	mam := func(room, id string) string {
		jul.send("<iq type='set' id='" + id + "' to='" + room + "'><query xmlns='urn:xmpp:mam:2' queryid='" + id + "'/></iq>")
		return waitFor(t, jul, "id='"+id+"'")
	}
	if got := mam(vault, "q1"); !strings.Contains(got, "forbidden") || strings.Contains(got, "said in") {
		t.Errorf("the password room's archive from outside: %s", got)
	}
	if got := mam(club, "q2"); !strings.Contains(got, "forbidden") || strings.Contains(got, "said in") {
		t.Errorf("the members-only room's archive from outside: %s", got)
	}
	if got := mam(plaza, "q3"); !strings.Contains(got, "said in "+plaza) {
		t.Errorf("the open room's archive from outside: %s", got)
	}
	jul.send("<iq type='get' id='i1' to='" + club + "'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if got := waitFor(t, jul, "id='i1'"); strings.Contains(got, "Club-") || !strings.Contains(got, "muc_membersonly") {
		t.Errorf("the members-only room's disco#info to a non-member: %s", got)
	}
	stillServed(t, tyb, "ping1")

	// A private message of type groupchat: a forged subject for Romeo.
	jul.send("<presence to='" + plaza + "/Juliet'/>")
	waitFor(t, jul, "code='110'")
	jul.send("<message to='" + plaza + "/Romeo' type='groupchat' id='fake'><subject>Forged-subject</subject></message>")
	if got := waitFor(t, jul, "id='fake'"); !strings.Contains(got, "bad-request") {
		t.Errorf("a groupchat-typed private message: %s", got)
	}
	jul.send("<message to='" + plaza + "/Romeo' type='chat' id='pm'><body>psst</body></message>")
	if got := waitFor(t, rom, "psst"); strings.Contains(got, "Forged-subject") {
		t.Errorf("the forged subject reached Romeo: %s", got)
	}
	stillServed(t, tyb, "ping2")
	// The members-only room's members see everything.
	rom.send("<iq type='set' id='mem' to='" + club + "'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='juliet@localhost' affiliation='member'/></query></iq>")
	waitFor(t, rom, "id='mem'")
	jul.send("<iq type='get' id='i2' to='" + club + "'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if got := waitFor(t, jul, "id='i2'"); !strings.Contains(got, "Club-subject") || !strings.Contains(got, "Club-plans") {
		t.Errorf("the members-only room's disco#info to a member: %s", got)
	}
}
