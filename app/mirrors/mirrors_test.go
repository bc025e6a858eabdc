package mirrors_test

import (
	"context"
	"errors"
	"testing"

	"annals.im/annals/app/internal/apptest"
	"annals.im/annals/app/mirrors"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/mirror"
)

const hall = "hall@conference.capulet.example"

func msg(seq uint64, body, accepts string) mirror.Apply {
	return mirror.Apply{Applied: mirror.Applied{Seq: seq, Kind: mirror.Message, Nick: "Romeo", Accepts: accepts,
		Stanza: "<message type='groupchat'><body>" + body + "</body></message>"}}
}

// Do applies the gap rule on the stream with the caller's cause; a
// refusal appends nothing; history comes from the read model.
func TestDo(t *testing.T) {
	t.Parallel()
	env := apptest.Open(t)
	ms := mirrors.New(env.Store, env.IDs, env.DB)
	ctx := event.WithCause(context.Background(), "s2s:capulet.example/m1")
	if _, _, err := ms.Do(ctx, hall, msg(1, "one", "")); err != nil {
		t.Fatal(err)
	}
	if _, evs, err := ms.Do(ctx, hall, msg(1, "one again", "")); !errors.Is(err, mirror.ErrStale) || len(evs) != 0 {
		t.Fatalf("a resent sequence: %v, %d events", err, len(evs))
	}
	var gap *mirror.GapError
	if _, _, err := ms.Do(ctx, hall, msg(4, "four", "")); !errors.As(err, &gap) || gap.After != 1 {
		t.Fatalf("a gap: %v", err)
	}
	post := mirror.Post{Posted: mirror.Posted{LocalID: "l1", Account: "romeo@montague.example", Nick: "Romeo", Stanza: "<message type='groupchat'><body>mine</body></message>"}}
	if _, _, err := ms.Do(context.Background(), hall, post); err != nil {
		t.Fatal(err)
	}
	st, _, err := ms.Do(ctx, hall, msg(2, "mine", "l1"))
	if err != nil || st.Seq != 2 || len(st.Pending) != 0 {
		t.Fatalf("acceptance: %+v %v", st, err)
	}
	evs := env.Events(t, mirror.Stream(hall))
	if len(evs) != 3 || evs[0].Cause != "s2s:capulet.example/m1" || evs[1].Cause != "s2s" {
		t.Fatalf("%d events, causes %q %q", len(evs), evs[0].Cause, evs[1].Cause)
	}
	env.CatchUp(t)
	h, err := ms.History(context.Background(), hall, 10)
	if err != nil || len(h) != 2 || h[1].LocalID != "l1" || h[1].Seq != 2 {
		t.Fatalf("history %+v %v", h, err)
	}
}
