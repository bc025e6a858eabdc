package muc

import (
	"errors"
	"strings"
	"testing"

	"annals.im/annals/adapters/mux/muxtest"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/adapters/stanza/form"
	"annals.im/annals/domain/room"
)

// submitted reads a submitted form given as XML.
func submitted(t *testing.T, fields string) *form.Form {
	t.Helper()
	x, err := muxtest.Parse("<x xmlns='jabber:x:data' type='submit'>" + fields + "</x>")
	if err != nil {
		t.Fatal(err)
	}
	f, err := form.Parse(*x)
	if err != nil {
		t.Fatalf("%v\n%s", err, fields)
	}
	return f
}

// The configuration form a room's owner gets, submitted back as a client
// does (each field with its type and the value shown), gives the room the
// configuration it showed: the form and its reading agree. The password
// is not shown; with protection on, the empty secret keeps it.
func TestConfigFormRoundTrip(t *testing.T) {
	for _, cfg := range []room.Config{
		room.DefaultConfig(),
		{},
		{Name: "Capulet <orchard> & co", Description: " walls ", Persistent: true, MembersOnly: true, Moderated: true,
			PasswordHash: "$pbkdf2-sha256$i=1$x$y", MaxOccupants: 30, WhoisAnyone: true, AllowInvites: true, HistoryLength: 5},
	} {
		x, err := muxtest.Parse(configForm(cfg))
		if err != nil {
			t.Fatal(err)
		}
		shown, err := form.Parse(*x)
		if err != nil || shown.Type != form.TypeForm || shown.FormType != nsRoomConfig {
			t.Fatalf("the form shown: %+v, %v", shown, err)
		}
		var b strings.Builder
		b.WriteString("<field var='FORM_TYPE' type='hidden'><value>" + shown.FormType + "</value></field>")
		for _, f := range shown.Fields {
			b.WriteString("<field var='" + stanza.Escape(f.Var) + "' type='" + f.Type + "'>")
			for _, v := range f.Values {
				b.WriteString("<value>" + stanza.Escape(v) + "</value>")
			}
			b.WriteString("</field>")
		}
		sub := submitted(t, b.String())
		secretHash, err := hashRoomSecret(sub)
		if err != nil || secretHash != "" {
			t.Fatalf("the empty secret hashed to %q, %v", secretHash, err)
		}
		// From another configuration with the same password.
		got, err := parseConfig(room.Config{PasswordHash: cfg.PasswordHash, Name: "old", HistoryLength: 99}, sub, secretHash)
		want := cfg
		want.Description = strings.TrimSpace(want.Description) // values are read trimmed
		if err != nil || got != want {
			t.Errorf("submitted back:\n got  %+v, %v\n want %+v", got, err, want)
		}
	}
}

// A secret sets a new verifier, read once from the form.
func TestConfigSecret(t *testing.T) {
	f := submitted(t, "<field var='"+cfgPWProtected+"' type='boolean'><value>true</value></field><field var='"+cfgSecret+"'><value> s3cret </value></field>")
	h, err := hashRoomSecret(f)
	if err != nil || !room.CheckPassword(h, "hall@conference.localhost", "s3cret") {
		t.Fatalf("verifier %q, %v", h, err)
	}
	cfg, err := parseConfig(room.Config{}, f, h)
	if err != nil || cfg.PasswordHash != h {
		t.Fatalf("%+v, %v", cfg, err)
	}
	if cfg, err = parseConfig(cfg, submitted(t, "<field var='"+cfgPWProtected+"'><value>0</value></field>"), ""); err != nil || cfg.PasswordHash != "" {
		t.Fatalf("protection off: %+v, %v", cfg, err)
	}
}

// A configuration the room cannot take is refused with room.ErrInvalid
// (bad-request), saying why; so is a form the parser refuses, as mucOwner
// wraps it.
func TestConfigRefused(t *testing.T) {
	for _, tc := range []struct{ name, fields, want string }{
		{"unknown field", "<field var='muc#roomconfig_bogus'><value>1</value></field>", `unknown field "muc#roomconfig_bogus"`},
		{"bad boolean", "<field var='" + cfgMembersOnly + "'><value>maybe</value></field>", `"maybe" is not a boolean`},
		{"bad count", "<field var='" + cfgMaxUsers + "'><value>lots</value></field>", `"lots" is not a count`},
		{"negative count", "<field var='" + cfgHistory + "'><value>-1</value></field>", `"-1" is not a count`},
		{"whois", "<field var='" + cfgWhois + "'><value>everyone</value></field>", `whois "everyone"`},
		{"FORM_TYPE", "<field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>", `FORM_TYPE "urn:xmpp:mam:2"`},
		{"protection without a password", "<field var='" + cfgPWProtected + "'><value>1</value></field>", "password protection without a password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(room.Config{}, submitted(t, tc.fields), "")
			if !errors.Is(err, room.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want room.ErrInvalid saying %q", err, tc.want)
			}
		})
	}
}
