package accounts

import (
	"context"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/upload"
)

// causeUpload is the cause of a slot grant whose caller gave none.
const causeUpload = "upload"

// UploadSlot grants acct a slot for r (XEP-0363), or says which rule it
// breaks; now is the caller's clock (the slot's windows start there).
func (a *Service) UploadSlot(ctx context.Context, acct string, r upload.Request, now time.Time) (upload.Granted, error) {
	cause := event.Cause(ctx, causeUpload)
	var evs []event.Envelope
	_, err := a.Update(ctx, acct, func(s State) ([]event.Envelope, error) {
		var err error
		evs, err = upload.Decide(s.Uploads, r, a.ids, now, cause)
		return evs, err
	})
	var g upload.Granted
	if err == nil {
		err = evs[0].Decode(upload.Schema, &g)
	}
	return g, err
}
