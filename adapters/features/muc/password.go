package muc

import (
	"context"
	"crypto/rand"
	"errors"

	"annals.im/annals/adapters/stanza/form"
	"annals.im/annals/domain/room"
)

// Room passwords are kept as slow verifiers (room.HashPassword). Checking
// one costs a key derivation (a few ms), so it runs here, in the joining
// session's goroutine, never inside the room's command pipeline where it
// would hold up every other command of the room; the Join then carries
// the verifier that the password matched (room.Join.Verified).

// errNeedPassword stops a join whose password must be checked first.
var errNeedPassword = errors.New("c2s: the room's password is to be checked")

// roomJoin decides j in room r, checking password against the room's
// verifier first when the join depends on it. A join that needs no
// password (most: benchmarks join rooms without one) is decided at once,
// with no extra read of the room.
func (s *Service) roomJoin(ctx context.Context, r string, j room.Join, password string) (before, after room.State, out room.Outcome, err error) {
	checked := map[string]bool{} // verifier -> password matches it
	// The room's verifier may change between the check and the join (its
	// owner sets another password): then it is checked again, a bounded
	// number of times.
	for range 3 {
		need := ""
		before, after, out, err = s.roomDo(ctx, r, func(st room.State) any {
			if !st.NeedsPassword(j.Account) {
				return j
			}
			h := st.Config.PasswordHash
			ok, done := checked[h]
			if !done {
				need = h
				return errNeedPassword
			}
			jj := j
			if ok {
				jj.Verified = h
			}
			return jj // Decide refuses it with ErrPassword when !ok
		})
		if !errors.Is(err, errNeedPassword) {
			return before, after, out, err
		}
		checked[need] = room.CheckPassword(need, r, password)
	}
	return before, after, out, room.ErrPassword
}

// hashRoomSecret returns the verifier of the room password a submitted
// configuration form sets ("" when it sets none), computed once, before
// the command: the form may be decided more than once.
func hashRoomSecret(f *form.Form) (string, error) {
	field, _ := f.Field(cfgSecret)
	secret := field.Value()
	if secret == "" {
		return "", nil
	}
	salt := make([]byte, room.SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return room.HashPassword(secret, salt), nil
}
