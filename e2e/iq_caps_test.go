package e2e

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// capsVer is the XEP-0115 §5.1 verification string of a disco#info answer
// without extended forms: identities as [category, type, lang, name],
// features as vars. Duplicates make the answer invalid (§5.4 step 3.3).
func capsVer(identities [][4]string, features []string) (string, error) {
	ids := make([]string, 0, len(identities))
	for _, i := range identities {
		ids = append(ids, strings.Join(i[:], "/"))
	}
	// Sorting the joined strings orders by category, then type, then
	// lang, as §5.1 step 2 asks, as long as none holds a '/' or a byte
	// below it, which an IANA category or type never does.
	slices.Sort(ids)
	fs := slices.Sorted(slices.Values(features))
	if len(slices.Compact(slices.Clone(ids))) != len(ids) || len(slices.Compact(slices.Clone(fs))) != len(fs) {
		return "", fmt.Errorf("duplicate identities or features: %v %v", ids, fs)
	}
	var s strings.Builder
	for _, x := range append(ids, fs...) {
		s.WriteString(x + "<")
	}
	sum := sha1.Sum([]byte(s.String()))
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// TestIQCapsVer checks capsVer against the simple example of XEP-0115 §5.2.
func TestIQCapsVer(t *testing.T) {
	got, err := capsVer([][4]string{{"client", "pc", "", "Exodus 0.9.1"}}, []string{
		"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
		"http://jabber.org/protocol/muc", "http://jabber.org/protocol/caps",
	})
	if err != nil || got != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Errorf("capsVer of XEP-0115's example: %q, %v", got, err)
	}
	if _, err := capsVer([][4]string{{"client", "pc", "", "x"}}, []string{"a", "a"}); err == nil {
		t.Error("capsVer accepted a duplicate feature")
	}
}

// The caps nodes (XEP-0115 §4) the clients of the drivers announce.
const (
	slixCapsNode   = "https://annals.im/e2e/slixmpp"
	xmppjsCapsNode = "https://annals.im/e2e/xmppjs"
)

// checkContacts checks the facts of the earlier clients that made the
// accounts contacts: a subscription both ways on each side.
func checkContacts(t *testing.T, subs []result) {
	t.Helper()
	if len(subs) != 2 || slices.ContainsFunc(subs, func(r result) bool { return str(r["subscription"]) != "both" }) {
		t.Fatalf("the accounts did not become contacts both ways: %v", subs)
	}
}

// checkCapsVerified checks that slixmpp's own XEP-0115 plugin, in n
// clients, asked the other client and accepted its answer: the lookup
// every client makes when a contact appears. peer_answered, where the
// driver knows it, counts the lookups the other client had answered by
// then.
func checkCapsVerified(t *testing.T, rs []result, n int) {
	t.Helper()
	got := all(rs, "caps-verified")
	for _, r := range got {
		who := str(r["who"])
		answered, known := r["peer_answered"].(float64)
		if r["verified"] != true || known && answered < 1 {
			t.Errorf("%s's caps plugin did not ask %s and verify its hash: %v", who, iqPeer[who], r)
		}
	}
	if len(got) != n && !t.Failed() {
		t.Errorf("%d caps-verified facts, want %d: %v", len(got), n, rs)
	}
}

// checkCaps checks the entity capabilities facts both drivers print: each
// client saw the other's presence with a c element for its node (XEP-0115
// §4), asked the other's full JID for disco#info of node#ver, got the
// answer from that client, whose hash is the one announced (§5.4); and
// the other client saw the lookup, from the asker's full JID.
func checkCaps(t *testing.T, rs []result, nodes map[string]string) {
	t.Helper()
	vers := map[string]bool{}
	for _, who := range []string{"a", "b"} {
		peer, node := iqClients[iqPeer[who]], nodes[iqPeer[who]]
		p := findWho(t, rs, "caps-presence", who)
		c, _ := p["caps"].(map[string]any)
		if str(p["sender"]) != peer || c == nil || str(c["node"]) != node || str(c["hash"]) != "sha-1" || str(c["ver"]) == "" {
			t.Errorf("%s did not see %s's presence with caps of node %s and hash sha-1: %v", who, peer, node, p)
			continue
		}
		ver := str(c["ver"])
		vers[ver] = true
		asked := node + "#" + ver
		info := findWho(t, rs, "caps-info", who)
		if info["ok"] != true || str(info["sender"]) != peer || str(info["answer_node"]) != asked {
			t.Errorf("disco#info of %s from %s to %s: %v", asked, who, peer, info)
			continue
		}
		if n, _ := info["forms"].(float64); n != 0 {
			t.Errorf("%s's disco#info carries %v forms, which this test does not hash", peer, n)
			continue
		}
		var ids [][4]string
		list, _ := info["identities"].([]any)
		for _, x := range list {
			f := strs(x)
			if len(f) != 4 {
				t.Fatalf("identity %v", x)
			}
			ids = append(ids, [4]string(f))
		}
		if got, err := capsVer(ids, strs(info["features"])); err != nil || got != ver {
			t.Errorf("%s's disco#info hashes to %q (%v), its presence announced %q: %v", peer, got, err, ver, info)
		}
		seen := findWho(t, rs, "caps-asked", iqPeer[who])
		lookups, _ := seen["asked"].([]any)
		if !slices.ContainsFunc(lookups, func(x any) bool {
			m, _ := x.(map[string]any)
			return str(m["from"]) == iqClients[who] && str(m["node"]) == asked
		}) {
			t.Errorf("%s's client did not see %s's lookup of %s: %v", peer, who, asked, seen)
		}
	}
	if len(vers) == 1 && !t.Failed() {
		t.Errorf("both clients announced the same hash, %v: a client could answer the lookup from its own cache", vers)
	}
}
