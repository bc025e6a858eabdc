package pep

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	pepdomain "annals.im/annals/domain/pep"
)

func TestSplitPasswords(t *testing.T) {
	tests := []struct {
		name, payload, logged string
		passwords             []string
	}{
		{"XEP-0402",
			"<conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'><nick>J</nick><password>s3cret</password></conference>",
			"<conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'><nick>J</nick><password xmlns='urn:xmpp:bookmarks:1'/></conference>",
			[]string{"s3cret"}},
		{"escaped",
			"<conference xmlns='urn:xmpp:bookmarks:1'><password> a&amp;b&lt;c </password><extensions/></conference>",
			"<conference xmlns='urn:xmpp:bookmarks:1'><password xmlns='urn:xmpp:bookmarks:1'/><extensions/></conference>",
			[]string{"a&b<c"}},
		{"prefixed",
			"<b:conference xmlns:b='urn:xmpp:bookmarks:1'><b:password>s3cret</b:password></b:conference>",
			"<b:conference xmlns:b='urn:xmpp:bookmarks:1'><password xmlns='urn:xmpp:bookmarks:1'/></b:conference>",
			[]string{"s3cret"}},
		{"XEP-0048 storage, one empty",
			"<storage xmlns='storage:bookmarks'><conference jid='a@c'><password></password></conference><conference jid='b@c'><password>two</password></conference></storage>",
			"<storage xmlns='storage:bookmarks'><conference jid='a@c'><password></password></conference><conference jid='b@c'><password xmlns='storage:bookmarks'/></conference></storage>",
			[]string{"", "two"}},
		{"no password",
			"<conference xmlns='urn:xmpp:bookmarks:1'><nick>J</nick></conference>",
			"<conference xmlns='urn:xmpp:bookmarks:1'><nick>J</nick></conference>", nil},
		{"a password elsewhere is not a bookmark's",
			"<note xmlns='urn:example'><password>visible</password></note>",
			"<note xmlns='urn:example'><password>visible</password></note>", nil},
	}
	for _, tt := range tests {
		logged, pws, err := splitPasswords(tt.payload)
		if err != nil || logged != tt.logged || !reflect.DeepEqual(pws, tt.passwords) {
			t.Errorf("%s: split to %q %q %v", tt.name, logged, pws, err)
			continue
		}
		for _, p := range pws {
			if p != "" && strings.Contains(logged, p) {
				t.Errorf("%s: %q still in %q", tt.name, p, logged)
			}
		}
		// Put back, the payload holds the passwords the client published.
		if a, b := passwordsOf(t, tt.payload), passwordsOf(t, fillPasswords(logged, pws)); !reflect.DeepEqual(a, b) {
			t.Errorf("%s: filled back to %v, want %v", tt.name, b, a)
		}
	}
	if _, _, err := splitPasswords("<conference><password>s3cret</password>"); !errors.Is(err, pepdomain.ErrInvalid) {
		t.Errorf("an unreadable payload: %v", err)
	}
	// An old item that kept its password in the payload is served as it is.
	old := "<conference xmlns='urn:xmpp:bookmarks:1'><password>old</password></conference>"
	if got := fillPasswords(old, []string{"new"}); got != old {
		t.Errorf("filled a password that was there: %q", got)
	}
}

func passwordsOf(t *testing.T, payload string) []string {
	spans, err := passwordSpans(payload)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, sp := range spans {
		out = append(out, strings.TrimSpace(sp.text))
	}
	return out
}

// FuzzSplitPasswords: whatever a client publishes, no bookmark password
// it held is in what is logged, and filling them back gives them all.
func FuzzSplitPasswords(f *testing.F) {
	f.Add("<conference xmlns='urn:xmpp:bookmarks:1'><nick>J</nick><password>s3cret</password></conference>")
	f.Add("<storage xmlns='storage:bookmarks'><conference><password>a</password></conference><conference><password/></conference></storage>")
	f.Add("<conference><password><![CDATA[x]]><b>y</b></password></conference>")
	f.Fuzz(func(t *testing.T, payload string) {
		logged, pws, err := splitPasswords(payload)
		if err != nil {
			return
		}
		after, err := passwordSpans(logged)
		if err != nil {
			t.Fatalf("logged payload unreadable: %q from %q", logged, payload)
		}
		for _, sp := range after {
			if strings.TrimSpace(sp.text) != "" && len(pws) > 0 {
				t.Fatalf("a password left in %q", logged)
			}
		}
		if len(pws) > 0 && !reflect.DeepEqual(passwordsOf(t, fillPasswords(logged, pws)), passwordsOf(t, payload)) {
			t.Fatalf("%q: filled back %q", payload, fillPasswords(logged, pws))
		}
	})
}
