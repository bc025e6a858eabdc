package sealing

import (
	"encoding/json"
	"strings"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/pep"
	"annals.im/annals/domain/room"
	"annals.im/annals/domain/vcard"
)

// rule says which field of an event type is content, what kind of key
// seals it and whose.
type rule struct {
	field string
	kind  Kind
	owner func(stream string, d map[string]json.RawMessage) string
}

// rules: the content of each event type that has some. A type's field
// must be a JSON string in what Decide writes.
var rules = map[event.Type]rule{
	archive.TypeMessageSent: {"stanza", Message, authorIn("from")},
	room.TypeMessagePosted:  {"stanza", Message, authorIn("account")},
	pep.TypeItemPublished:   {"payload", State, streamAccount},
	vcard.TypeSet:           {"vcard", State, streamAccount},
}

// authorIn reads the bare JID of the author from a field holding a bare
// or full JID (a remote room occupant is keyed by its full JID).
func authorIn(field string) func(string, map[string]json.RawMessage) string {
	return func(_ string, d map[string]json.RawMessage) string {
		var j string
		if json.Unmarshal(d[field], &j) != nil {
			return ""
		}
		bare, _, _ := strings.Cut(j, "/")
		return bare
	}
}

// streamAccount: the account whose stream holds the event.
func streamAccount(stream string, _ map[string]json.RawMessage) string {
	return account.JIDOf(stream)
}
