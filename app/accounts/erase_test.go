package accounts_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"annals.im/annals/app/accounts"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/pep"
	"annals.im/annals/domain/vcard"
)

// keyTable is a content key table in memory, as erasure sees one.
type keyTable struct {
	owned     map[string][]string
	destroyed []string
	fail      error
}

func (k *keyTable) Owned(_ context.Context, owner string, max int) ([]string, error) {
	return k.owned[owner], nil
}

func (k *keyTable) Destroy(_ context.Context, ids []string) error {
	if k.fail != nil {
		return k.fail
	}
	k.destroyed = append(k.destroyed, ids...)
	return nil
}

// EraseContent names the account's keys in the log before destroying
// them, and the account's state forgets its PEP items and vCard; a
// failed destruction says to erase again, and erasing again names the
// keys again.
func TestEraseContent(t *testing.T) {
	ctx := context.Background()
	env, a, _ := world(t)
	_, err := a.Update(ctx, juliet, func(s accounts.State) ([]event.Envelope, error) {
		evs, err := pep.Decide(s.PEP, pep.Publish{Node: "urn:xmpp:bookmarks:1",
			Item: pep.Item{ID: hall, Payload: "<conference xmlns='urn:xmpp:bookmarks:1'/>"}}, env.IDs, time.Now(), "test")
		if err != nil {
			return nil, err
		}
		card, err := vcard.Decide(s.VCard, vcard.Set{XML: "<vCard xmlns='vcard-temp'><FN>Juliet</FN></vCard>"}, env.IDs, time.Now(), "test")
		return append(evs, card...), err
	})
	if err != nil {
		t.Fatal(err)
	}
	keys := &keyTable{owned: map[string][]string{juliet: {"k1", "k2"}}, fail: errors.New("disk full")}
	if _, err := a.EraseContent(ctx, juliet, "request 1", keys); err == nil {
		t.Fatal("a failed destruction of keys went unreported")
	}
	keys.fail = nil
	n, err := a.EraseContent(ctx, juliet, "request 1", keys)
	if err != nil || n != 2 || !slices.Equal(keys.destroyed, []string{"k1", "k2"}) {
		t.Fatalf("erase: %d %v, destroyed %v", n, err, keys.destroyed)
	}
	evs := env.Events(t, account.StreamOf(juliet))
	var named int
	for _, e := range evs {
		if e.Type == account.TypeContentErased {
			var d account.ContentErased
			if err := e.Decode(account.Schema, &d); err != nil || !slices.Equal(d.Keys, []string{"k1", "k2"}) || d.Reason != "request 1" {
				t.Fatalf("erasure event: %+v %v", d, err)
			}
			named++
		}
	}
	if named != 2 {
		t.Fatalf("%d erasure events, want 2 (the failed round's and the second)", named)
	}
	st, err := a.Get(ctx, juliet)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.PEP.Nodes["urn:xmpp:bookmarks:1"]; len(n.Items) != 0 || st.VCard.Set {
		t.Fatalf("after the erasure juliet still has items %+v or a vCard %+v", n.Items, st.VCard)
	}
	if !st.Account.Exists {
		t.Fatal("erasure deleted the account")
	}
	// A JID that never had an account nor sealed content: a typo.
	if _, err := a.EraseContent(ctx, "nobody@example.com", "", keys); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("erasing a JID never seen: %v", err)
	}
}
