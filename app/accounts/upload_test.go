package accounts_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"annals.im/annals/app/accounts"
	"annals.im/annals/app/internal/apptest"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/upload"
)

// The upload quota is the account stream's: a service made anew on the
// same store (a restart) refuses what the first one would, and the
// grants are events caused by the request; an unknown account gets none,
// and a new incarnation of a deleted one starts with a free quota.
func TestUploadQuotaFromEvents(t *testing.T) {
	t.Parallel()
	env := apptest.Open(t)
	ctx := context.Background()
	a := accounts.New(env.Store, env.Creds, env.IDs, accounts.Options{Secrets: env.Secrets})
	const romeo = "romeo@example.com"
	if err := a.Register(ctx, romeo, "pw"); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	lim := upload.Limits{MaxSize: 1000, Quota: 2000, MaxOpen: 8, PutWindow: time.Minute, Expiry: time.Hour}
	n := 0
	req := func(size int64) upload.Request {
		n++
		return upload.Request{Slot: fmt.Sprintf("%032x", n), Filename: "a.png", Size: size, ContentType: "image/png", Limits: lim}
	}
	for range 2 {
		g, err := a.UploadSlot(event.WithCause(ctx, "c2s:s1/up"), romeo, req(1000), now)
		if err != nil || g.Size != 1000 || g.Filename != "a.png" {
			t.Fatalf("%+v %v", g, err)
		}
	}
	if last := env.Last(t, account.StreamOf(romeo)); last.Type != upload.TypeSlotGranted || last.Cause != "c2s:s1/up" {
		t.Fatalf("last event %s caused by %q", last.Type, last.Cause)
	}
	restarted := accounts.New(env.Store, env.Creds, env.IDs, accounts.Options{Secrets: env.Secrets})
	if _, err := restarted.UploadSlot(ctx, romeo, req(1), now.Add(time.Minute)); !errors.Is(err, upload.ErrQuota) {
		t.Fatalf("after a restart: %v, want the quota reached", err)
	}
	for range 2 {
		if _, err := restarted.UploadSlot(ctx, romeo, req(1000), now.Add(time.Hour)); err != nil {
			t.Fatalf("after the files expired: %v", err)
		}
	}
	if _, err := restarted.UploadSlot(ctx, "nurse@example.com", req(1), now); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("an unknown account: %v", err)
	}
	if err := restarted.Remove(ctx, romeo); err != nil {
		t.Fatal(err)
	}
	if err := restarted.Register(ctx, romeo, "pw2"); err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.UploadSlot(ctx, romeo, req(1000), now.Add(time.Hour)); err != nil {
		t.Fatalf("a new incarnation: %v", err)
	}
}
