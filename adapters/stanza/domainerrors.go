package stanza

import (
	"errors"
	"strings"

	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/blocking"
	"annals.im/annals/domain/pep"
	"annals.im/annals/domain/room"
	"annals.im/annals/domain/roster"
	"annals.im/annals/domain/upload"
	"annals.im/annals/domain/vcard"
)

// domainErrors is the one table from the domain's rule errors to the
// stanza error each is answered with (RFC 6120 §8.3.3, and the XEP that
// owns the rule). A feature with conditions of its own (pubsub's
// precondition-not-met, say) answers those itself and asks ErrorFor for
// the rest.
var domainErrors = []struct {
	err       error
	typ, cond string
}{
	// XEP-0045.
	{room.ErrNotFound, "cancel", "item-not-found"},
	{room.ErrLocked, "cancel", "item-not-found"},
	{room.ErrItemNotFound, "cancel", "item-not-found"},
	{room.ErrNoSuchMessage, "cancel", "item-not-found"},
	{room.ErrConflict, "cancel", "conflict"},
	{room.ErrMirroredNick, "modify", "not-acceptable"},
	{room.ErrLastOwner, "cancel", "conflict"},
	{room.ErrBadNick, "modify", "jid-malformed"},
	{room.ErrBanned, "auth", "forbidden"},
	{room.ErrNoVoice, "auth", "forbidden"},
	{room.ErrForbidden, "auth", "forbidden"},
	{room.ErrMembersOnly, "auth", "registration-required"},
	{room.ErrPassword, "auth", "not-authorized"},
	{room.ErrFull, "wait", "service-unavailable"},
	{room.ErrNotOccupant, "modify", "not-acceptable"},
	{room.ErrNotAllowed, "cancel", "not-allowed"},
	{room.ErrInvalid, "modify", "bad-request"},
	// XEP-0060 / XEP-0163 (the pubsub-specific conditions are pep's).
	{pep.ErrItemNotFound, "cancel", "item-not-found"},
	{pep.ErrInvalid, "modify", "bad-request"},
	{pep.ErrQuota, "cancel", "resource-constraint"},
	// XEP-0313.
	{archive.ErrItemNotFound, "cancel", "item-not-found"},
	{archive.ErrInvalid, "modify", "bad-request"},
	// XEP-0054 (and XEP-0486 for rooms).
	{vcard.ErrTooBig, "modify", "not-acceptable"},
	{vcard.ErrInvalid, "modify", "bad-request"},
	// RFC 6121 rosters.
	{roster.ErrSelf, "modify", "bad-request"},
	{roster.ErrNoItem, "cancel", "item-not-found"},
	{roster.ErrBadGroup, "modify", "not-acceptable"},
	{roster.ErrFull, "cancel", "resource-constraint"},
	// XEP-0191.
	{blocking.ErrInvalid, "modify", "bad-request"},
	{blocking.ErrMalformed, "modify", "jid-malformed"},
	{blocking.ErrFull, "cancel", "resource-constraint"},
	// XEP-0363 (the upload feature adds file-too-large's own element).
	{upload.ErrInvalid, "modify", "bad-request"},
	{upload.ErrTooLarge, "modify", "not-acceptable"},
	{upload.ErrQuota, "wait", "resource-constraint"},
	{upload.ErrOpen, "wait", "resource-constraint"},
}

// ErrorFor returns the stanza error a domain rule error is answered with,
// its text the error's without the package prefix ("room: "); a
// *stanza.Error is itself; anything else is internal-server-error with no
// text (the details are for the log). ok is false in that last case.
func ErrorFor(err error) (e *Error, ok bool) {
	var se *Error
	if errors.As(err, &se) {
		return se, true
	}
	for _, d := range domainErrors {
		if errors.Is(err, d.err) {
			pkg, _, _ := strings.Cut(d.err.Error(), ": ")
			return &Error{Type: d.typ, Cond: d.cond, Text: strings.TrimPrefix(err.Error(), pkg+": ")}, true
		}
	}
	return &Error{Type: "wait", Cond: "internal-server-error"}, false
}
