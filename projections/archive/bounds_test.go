package archive_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/domain/account"
	domain "annals.im/annals/domain/archive"
	"annals.im/annals/eventstore"
	"annals.im/annals/projections"
	"annals.im/annals/projections/archive"
)

// sendSized records a message of about size bytes from romeo to juliet.
func (f *fixture) sendSized(t *testing.T, id string, size int) {
	t.Helper()
	f.n++
	c := domain.Send{From: jid.MustParse("romeo@x/desk"), To: jid.MustParse("juliet@x"), Kind: "chat", MessageID: id, Session: "s",
		Stanza: fmt.Sprintf("<message id='%s'><body>%s</body></message>", id, strings.Repeat("x", size)), ArchiveSender: true, ArchiveRecipient: true}
	evs, err := domain.Decide(c, f.ids, f.t0.Add(time.Duration(f.n)*time.Second), "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Append(context.Background(), domain.Stream("romeo@x", "juliet@x"), eventstore.Any, evs...); err != nil {
		t.Fatal(err)
	}
}

// A page stops before the entry that would take it past MaxBytes, keeps at
// least one entry, says it is not complete, and paging from its edge (in
// both directions) returns every entry once.
func TestPageBytes(t *testing.T) {
	f := open(t)
	f.inline(t)
	ctx := context.Background()
	const n, size = 10, 1000
	for i := range n {
		f.sendSized(t, fmt.Sprintf("m%d", i), size)
	}
	for _, last := range []bool{false, true} {
		var got []string
		edge := ""
		for pages := 0; ; pages++ {
			q := domain.Query{Max: 250, MaxBytes: 3*size + 500}
			switch {
			case last:
				q.Last, q.RSMBefore = true, edge
			case edge != "":
				q.RSMAfter = edge
			}
			p, err := f.reader.Query(ctx, "juliet@x", q)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Entries) == 0 || len(p.Entries) > 3 {
				t.Fatalf("last=%v page %d: %d entries (want 1 to 3)", last, pages, len(p.Entries))
			}
			if last {
				got = append(ids(p), got...)
				edge = p.Entries[0].ID
			} else {
				got = append(got, ids(p)...)
				edge = p.Entries[len(p.Entries)-1].ID
			}
			if p.Complete {
				break
			}
			if pages > n {
				t.Fatal("paging does not end")
			}
		}
		if len(got) != n {
			t.Fatalf("last=%v: paged %d entries, want %d: %v", last, len(got), n, got)
		}
		seen := map[string]bool{}
		for _, id := range got {
			if seen[id] {
				t.Fatalf("last=%v: %s twice", last, id)
			}
			seen[id] = true
		}
	}
	// A bound below one entry still returns one entry per page.
	p, err := f.reader.Query(ctx, "juliet@x", domain.Query{MaxBytes: 10})
	if err != nil || len(p.Entries) != 1 || p.Complete {
		t.Fatalf("bound below one entry: %d entries, complete %v, %v", len(p.Entries), p.Complete, err)
	}
	// No bound: the whole archive in one page.
	if p, _ := f.reader.Query(ctx, "juliet@x", domain.Query{}); len(p.Entries) != n || !p.Complete {
		t.Fatalf("unbounded: %d entries, complete %v", len(p.Entries), p.Complete)
	}
}

// Start and end beyond what Unix nanoseconds hold are clamped: an end in
// the year 9999 means no end, a start in the year 1 no start.
func TestQueryTimesClamped(t *testing.T) {
	f := open(t)
	f.inline(t)
	ctx := context.Background()
	f.send(t, "romeo@x/desk", "juliet@x", "a", false)
	f.send(t, "romeo@x/desk", "juliet@x", "b", false)
	far := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	early := time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)
	for _, q := range []domain.Query{{End: far}, {Start: early}, {Start: early, End: far}} {
		p, err := f.reader.Query(ctx, "juliet@x", q)
		if err != nil || len(p.Entries) != 2 || !p.Complete {
			t.Fatalf("%v..%v: %d entries, %v", q.Start, q.End, len(p.Entries), err)
		}
	}
	if p, _ := f.reader.Query(ctx, "juliet@x", domain.Query{Start: far}); len(p.Entries) != 0 {
		t.Fatalf("start in 9999: %d entries", len(p.Entries))
	}
	if p, _ := f.reader.Query(ctx, "juliet@x", domain.Query{End: early}); len(p.Entries) != 0 {
		t.Fatalf("end in year 1: %d entries", len(p.Entries))
	}
}

// The usage read model charges the sender each 1:1 message's bytes once
// (batches summed per account), and forgets a deleted account's; the
// offline count follows the waiting rows.
func TestUsage(t *testing.T) {
	f := open(t)
	f.inline(t)
	ctx := context.Background()
	usage, err := projections.NewRunner(ctx, f.db, nil, archive.UsageProjection{})
	if err != nil {
		t.Fatal(err)
	}
	a := f.send(t, "romeo@x/desk", "juliet@x", "o1", true)
	f.send(t, "romeo@x/desk", "juliet@x", "o2", true)
	f.send(t, "juliet@x/desk", "romeo@x", "r1", false)
	want := func(acct string, sent, offline int64) {
		t.Helper()
		if _, err := usage.CatchUp(ctx, f.store); err != nil {
			t.Fatal(err)
		}
		gotSent, err1 := f.reader.SentBytes(ctx, acct)
		gotOff, err2 := f.reader.Offlines(ctx, acct)
		if gotSent != sent || gotOff != offline || err1 != nil || err2 != nil {
			t.Fatalf("%s: sent %d offline %d, want %d %d (%v %v)", acct, gotSent, gotOff, sent, offline, err1, err2)
		}
	}
	stanza := int64(len(a.Stanza)) // every message of send has the same length
	want("romeo@x", 2*stanza, 0)
	want("juliet@x", stanza, 2)
	want("nobody@x", 0, 0)
	evs, _ := domain.Delivered(a.RecipientID, f.ids, f.t0, "test")
	if _, err := f.store.Append(ctx, "account-juliet@x", eventstore.Any, evs...); err != nil {
		t.Fatal(err)
	}
	want("juliet@x", stanza, 1)
	del, _ := account.Decide(account.State{Exists: true}, account.Delete{}, f.ids, f.t0, "test")
	if _, err := f.store.Append(ctx, "account-juliet@x", eventstore.Any, del...); err != nil {
		t.Fatal(err)
	}
	want("juliet@x", 0, 0)
	want("romeo@x", 2*stanza, 0)
	f.send(t, "juliet@x/desk", "romeo@x", "r2", false) // a later account of the name starts from zero
	want("juliet@x", stanza, 0)
}
