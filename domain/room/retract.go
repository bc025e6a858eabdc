package room

// Retracting a message (XEP-0424) and moderating one (XEP-0425): the
// log keeps the message; the retraction is an event of its own, which
// the archives' read models show as a tombstone.

import (
	"errors"
	"fmt"

	"annals.im/annals/domain/event"
)

// TypeMessageRetracted is the event of a retraction or a moderation.
const TypeMessageRetracted event.Type = "RoomMessageRetracted"

// MessageRetracted says that the room's message ID is retracted: by its
// author (By == Author), or by a moderator (Moderated, with a Reason).
// Notice is the archive ID of the message that told the room (the
// author's retraction, or the room's notice of a moderation).
type MessageRetracted struct {
	ID        string `json:"id"`
	Author    string `json:"author"`
	By        string `json:"by"`
	Moderated bool   `json:"moderated,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Notice    string `json:"notice"`
}

// ErrNoSuchMessage: a retraction of a message the room does not have
// (item-not-found).
var ErrNoSuchMessage = errors.New("room: no such message")

// Retracts is what a Post also does when its stanza is a retraction of
// the author's own message ID (XEP-0424); Author is that message's, as
// the room archive has it ("": not found).
type Retracts struct {
	ID, Author string
}

// Moderate: moderator By retracts message ID (by Author, as the room
// archive has it; "" when it has no such message), posting Notice (the
// room's message that tells everyone, its archive ID NoticeID).
type Moderate struct {
	By, ID, Author, Reason string
	Notice, NoticeID       string
}

// retraction decides the retraction a post carries: none when the poster
// is not the author (clients check it too: XEP-0424 §6), or the message
// is not the room's.
func (s State) retraction(c Post, notice string, emit func(event.Type, any) error) error {
	if c.Retracts.ID == "" || c.Retracts.Author == "" || c.Retracts.Author != c.Account {
		return nil
	}
	return emit(TypeMessageRetracted, MessageRetracted{ID: c.Retracts.ID, Author: c.Account, By: c.Account, Notice: notice})
}

// moderate decides a moderation: by a moderator, of a message the room
// has; the notice is posted as the room's own message, then the
// retraction.
func (s State) moderate(c Moderate, emit func(event.Type, any) error) error {
	o, ok := s.Occupants[c.By]
	switch {
	case !ok || o.Role != Moderator:
		return ErrForbidden
	case c.ID == "" || c.Author == "":
		return fmt.Errorf("%w: %s", ErrNoSuchMessage, c.ID)
	case c.Notice == "" || c.NoticeID == "":
		return fmt.Errorf("%w: a moderation needs its notice", ErrInvalid)
	}
	if err := emit(TypeMessagePosted, MessagePosted{Account: c.By, ID: c.NoticeID, Stanza: c.Notice, WellFormed: true}); err != nil {
		return err
	}
	return emit(TypeMessageRetracted, MessageRetracted{ID: c.ID, Author: c.Author, By: c.By, Moderated: true, Reason: c.Reason, Notice: c.NoticeID})
}
