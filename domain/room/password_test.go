package room

import (
	"strings"
	"testing"

	"annals.im/annals/domain/event/eventtest"
)

func TestPasswordVerifiers(t *testing.T) {
	t.Parallel()
	salt1, salt2 := []byte("0123456789abcdef"), []byte("fedcba9876543210")
	h1, h2 := HashPassword("s3cret", salt1), HashPassword("s3cret", salt2)
	switch {
	case !strings.HasPrefix(h1, "$pbkdf2-sha256$i=20000$"):
		t.Fatalf("verifier %q does not name its KDF and cost", h1)
	case h1 == h2:
		t.Fatal("two salts, one verifier")
	case strings.Contains(h1, "s3cret"):
		t.Fatal("the password is in its verifier")
	case HashPassword("", salt1) != "":
		t.Fatal("no password has a verifier")
	}
	tests := []struct {
		name, verifier, room, password string
		want                           bool
	}{
		{"right", h1, roomJID, "s3cret", true},
		{"right, other salt", h2, "other@conference.example.com", "s3cret", true},
		{"wrong", h1, roomJID, "secret", false},
		{"empty", h1, roomJID, "", false},
		{"no verifier", "", roomJID, "", false},
		// Rooms configured before verifiers keep their hash in the log.
		{"legacy right", LegacyPasswordHash(roomJID, "s3cret"), roomJID, "s3cret", true},
		{"legacy wrong", LegacyPasswordHash(roomJID, "s3cret"), roomJID, "secret", false},
		{"legacy, other room", LegacyPasswordHash(roomJID, "s3cret"), "other@conference.example.com", "s3cret", false},
		{"damaged", "$pbkdf2-sha256$i=20000$!!$xx", roomJID, "s3cret", false},
		{"too costly", "$pbkdf2-sha256$i=999999999$MDEyMzQ1Njc4OWFiY2RlZg$xx", roomJID, "s3cret", false},
		{"truncated", "$pbkdf2-sha256$i=20000", roomJID, "s3cret", false},
	}
	for _, tt := range tests {
		if got := CheckPassword(tt.verifier, tt.room, tt.password); got != tt.want {
			t.Errorf("%s: CheckPassword = %v", tt.name, got)
		}
	}
}

// The frozen RoomConfigured sample holds a legacy hash (of "montague"):
// it still verifies.
func TestLegacySampleVerifies(t *testing.T) {
	t.Parallel()
	var d Configured
	if err := eventtest.Sample(t, TypeConfigured).Decode(Schema, &d); err != nil {
		t.Fatal(err)
	}
	if !CheckPassword(d.Config.PasswordHash, "hall@conference.example.com", "montague") ||
		CheckPassword(d.Config.PasswordHash, "hall@conference.example.com", "capulet") {
		t.Fatalf("legacy sample %q", d.Config.PasswordHash)
	}
}

func TestNeedsPassword(t *testing.T) {
	t.Parallel()
	pw := DefaultConfig()
	pw.PasswordHash = HashPassword("s3cret", []byte("0123456789abcdef"))
	pwMembers := pw
	pwMembers.MembersOnly = true
	tests := []struct {
		name string
		s    State
		acct string
		want bool
	}{
		{"no password", given(t, open()...), "tybalt@x", false},
		{"newcomer", given(t, open(Configure{By: "romeo@x", Config: pw})...), "tybalt@x", true},
		{"occupant attaching", given(t, open(Configure{By: "romeo@x", Config: pw})...), "juliet@x", false},
		{"banned", given(t, open(Configure{By: "romeo@x", Config: pw}, SetAffiliation{By: "romeo@x", JID: "tybalt@x", Affiliation: Outcast})...), "tybalt@x", false},
		{"members only, not a member", given(t, open(Configure{By: "romeo@x", Config: pwMembers})...), "tybalt@x", false},
		{"members only, member", given(t, open(Configure{By: "romeo@x", Config: pwMembers}, SetAffiliation{By: "romeo@x", JID: "tybalt@x", Affiliation: Member})...), "tybalt@x", true},
		{"no room", State{JID: roomJID}, "tybalt@x", false},
	}
	for _, tt := range tests {
		if got := tt.s.NeedsPassword(tt.acct); got != tt.want {
			t.Errorf("%s: NeedsPassword = %v", tt.name, got)
		}
	}
}

// Who may read a room's archive and see its subject from outside.
func TestInsider(t *testing.T) {
	t.Parallel()
	cfg := func(f func(*Config)) Config { c := DefaultConfig(); f(&c); return c }
	pw := cfg(func(c *Config) { c.PasswordHash = HashPassword("s3cret", []byte("0123456789abcdef")) })
	members := cfg(func(c *Config) { c.MembersOnly = true })
	hidden := cfg(func(c *Config) { c.Public = false })
	member := SetAffiliation{By: "romeo@x", JID: "nurse@x", Affiliation: Member}
	admin := SetAffiliation{By: "romeo@x", JID: "nurse@x", Affiliation: Admin}
	ban := SetAffiliation{By: "romeo@x", JID: "nurse@x", Affiliation: Outcast}
	tests := []struct {
		name  string
		given []any
		acct  string
		want  bool
	}{
		{"open public room, stranger", open(), "nurse@x", true},
		{"open public room, banned", open(ban), "nurse@x", false},
		{"password room, stranger", open(Configure{By: "romeo@x", Config: pw}), "nurse@x", false},
		{"password room, member outside", open(Configure{By: "romeo@x", Config: pw}, member), "nurse@x", false},
		{"password room, admin outside", open(Configure{By: "romeo@x", Config: pw}, admin), "nurse@x", true},
		{"password room, occupant", open(Configure{By: "romeo@x", Config: pw}), "juliet@x", true},
		{"members-only room, stranger", open(Configure{By: "romeo@x", Config: members}), "nurse@x", false},
		{"members-only room, member", open(Configure{By: "romeo@x", Config: members}, member), "nurse@x", true},
		{"hidden room, stranger", open(Configure{By: "romeo@x", Config: hidden}), "nurse@x", false},
		{"hidden room, member", open(Configure{By: "romeo@x", Config: hidden}, member), "nurse@x", true},
	}
	for _, tt := range tests {
		if got := given(t, tt.given...).Insider(tt.acct); got != tt.want {
			t.Errorf("%s: Insider = %v", tt.name, got)
		}
	}
}

// BenchmarkCheckPassword is what a join to a password-protected room costs
// the server: `go test -run '^$' -bench CheckPassword ./domain/room/`.
func BenchmarkCheckPassword(b *testing.B) {
	v := HashPassword("s3cret", []byte("0123456789abcdef"))
	for b.Loop() {
		if !CheckPassword(v, roomJID, "s3cret") {
			b.Fatal("no match")
		}
	}
}

// BenchmarkCheckLegacyPassword is what one guess cost against the old hash.
func BenchmarkCheckLegacyPassword(b *testing.B) {
	v := LegacyPasswordHash(roomJID, "s3cret")
	for b.Loop() {
		if !CheckPassword(v, roomJID, "s3cret") {
			b.Fatal("no match")
		}
	}
}
