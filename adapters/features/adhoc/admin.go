package adhoc

// The service administration commands of XEP-0133 that operators use
// most. Each form is the XEP's, less the fields Annals keeps nothing of
// (add-user's email and names).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"annals.im/annals/adapters/credentials"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/adapters/stanza/form"
	"annals.im/annals/domain/account"
)

// The bounds of what an admin submits and is answered. An admin is
// trusted, but a stanza is still bounded (the session's MaxStanza) and
// these keep the work one request does in proportion.
const (
	MaxDeleteJIDs   = 64        // accounts one delete-user removes
	MaxAnnouncement = 8 << 10   // bytes of an announcement's text
	MaxSubject      = 256       // bytes of its subject
	MaxOnlineItems  = 1000      // JIDs an online-users list shows at most
	MaxOnlineBytes  = 128 << 10 // bytes of JIDs it shows at most
	// maxJID is the longest JID, in bytes (RFC 7622 §3: three parts of
	// at most 1023 bytes, and the separators).
	maxJID = 3071
)

// maxItemsOptions are the choices XEP-0133 §4.20 offers for max_items.
var maxItemsOptions = []string{"25", "50", "75", "100", "150", "200", "none"}

func adminCommands() []*command {
	accountjid := func(label string) field {
		return field{name: "accountjid", typ: form.JIDSingle, label: label, required: true, maxValues: 1, maxBytes: maxJID}
	}
	password := func(name, label string, required bool) field {
		return field{name: name, typ: form.TextPrivate, label: label, required: required, maxValues: 1, maxBytes: credentials.MaxPassword}
	}
	maxItems := field{name: "max_items", typ: form.ListSingle, label: "Maximum number of items to show", options: maxItemsOptions, maxValues: 1, maxBytes: 16}
	return []*command{
		{node: NSAdmin + "#add-user", name: "Add a User", stages: []stage{{
			title: "Adding a User", instructions: "Fill out this form to add a user.",
			fields: []field{accountjid("The Jabber ID for the account to be added"),
				password("password", "The password for this account", true), password("password-verify", "Retype password", false)},
			check: checkAddUser,
		}}, complete: addUser},
		// NOTSPEC(XEP-0133 §4.2): the sample flow deletes when the form is
		// submitted; here execute there goes on to a confirmation stage
		// that names the accounts (the actions say so, XEP-0050 §3.4), and
		// complete from the first stage deletes at once.
		{node: NSAdmin + "#delete-user", name: "Delete a User", stages: []stage{{
			title: "Deleting a User", instructions: "Fill out this form to delete users.",
			fields: []field{{name: "accountjids", typ: form.JIDMulti, label: "The Jabber ID(s) to delete", required: true,
				maxValues: MaxDeleteJIDs, maxBytes: MaxDeleteJIDs * maxJID}},
			check:    checkDelete,
			complete: true, // a client that fills the form in one go need not confirm
		}, {
			title: "Deleting a User",
			describe: func(v values) string {
				return "Delete " + strings.Join(v["accountjids"], ", ") + "? Their rosters, archives and bookmarks go with them, " +
					"and their sessions end. This cannot be undone: complete to delete them."
			},
		}}, complete: deleteUsers},
		{node: NSAdmin + "#change-user-password", name: "Change User Password", stages: []stage{{
			title: "Changing a User Password", instructions: "Fill out this form to change a user's password. Its sessions end.",
			fields: []field{accountjid("The Jabber ID for this account"), password("password", "The password for this account", true)},
			check:  checkChangePassword,
		}}, complete: changePassword},
		{node: NSAdmin + "#get-online-users-list", name: "Get List of Online Users", stages: []stage{{
			title: "Requesting List of Online Users", instructions: "Fill out this form to request the online users of this service.",
			fields: []field{maxItems},
			check:  checkMaxItems,
		}}, complete: onlineUsers},
		{node: NSAdmin + "#get-online-users-num", name: "Get Number of Online Users", complete: onlineUsersNum},
		{node: NSAdmin + "#announce", name: "Send Announcement to Online Users", stages: []stage{{
			title: "Making an Announcement", instructions: "Fill out this form to make an announcement to all online users of this service.",
			fields: []field{{name: "subject", typ: form.TextSingle, label: "Subject", maxValues: 1, maxBytes: MaxSubject},
				{name: "announcement", typ: form.TextMulti, label: "Announcement", required: true, maxValues: 256, maxBytes: MaxAnnouncement}},
		}}, complete: announce},
	}
}

// local reads an account's JID given in field name: a bare JID at one of
// the server's domains.
func (r *request) local(name, s string) (string, error) {
	j, err := account.ParseJID(strings.TrimSpace(s))
	if err != nil {
		return "", badPayload("%s: %.64q is not the bare JID of an account", name, s)
	}
	if !slices.Contains(r.svc.cfg.Domains, j.Domainpart()) {
		return "", badPayload("%s: %s is not at a domain of this server", name, j)
	}
	return j.String(), nil
}

// existing reads the JID of an account that exists from field name.
func (r *request) existing(ctx context.Context, name, s string) (string, error) {
	j, err := r.local(name, s)
	if err != nil {
		return "", err
	}
	ok, err := r.svc.cfg.Accounts.Exists(ctx, j)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", stanza.Errorf("item-not-found", "no account "+j)
	}
	return j, nil
}

func (r *request) log(msg, acct string) {
	r.svc.cfg.Log.Info(msg, "admin", r.admin.Bare().String(), "account", acct)
}

func checkPassword(v values) error {
	if err := credentials.CheckPassword(v.one("password")); err != nil {
		return badPayload("password: %v", err)
	}
	return nil
}

func checkAddUser(ctx context.Context, r *request, v values) error {
	j, err := r.local("accountjid", v.one("accountjid"))
	if err != nil {
		return err
	}
	if err := checkPassword(v); err != nil {
		return err
	}
	if again := v.one("password-verify"); again != "" && again != v.one("password") {
		return badPayload("password-verify: the two passwords differ")
	}
	if ok, err := r.svc.cfg.Accounts.Exists(ctx, j); err != nil {
		return err
	} else if ok {
		return stanza.Errorf("conflict", j+" exists already")
	}
	v["accountjid"] = []string{j}
	return nil
}

func addUser(ctx context.Context, r *request, v values) (string, error) {
	j := v.one("accountjid")
	switch err := r.svc.cfg.Accounts.Register(ctx, j, v.one("password")); {
	case errors.Is(err, account.ErrExists):
		return "", stanza.Errorf("conflict", j+" exists already")
	case errors.Is(err, account.ErrJID), errors.Is(err, credentials.ErrPassword):
		return "", badPayload("%v", err)
	case err != nil:
		return "", err
	}
	r.log("adhoc: account added", j)
	return note("info", "Added "+j+"."), nil
}

// checkDelete reads the accounts to delete: each an account here that
// exists, none an admin (whoever registered that name next would be one).
func checkDelete(ctx context.Context, r *request, v values) error {
	var jids []string
	for _, s := range v["accountjids"] {
		if strings.TrimSpace(s) == "" {
			continue // a blank line of the client's text box
		}
		j, err := r.existing(ctx, "accountjids", s)
		if err != nil {
			return err
		}
		if r.svc.admins[j] {
			return stanza.Errorf("not-allowed", j+" is an administrator of this server (--admin): take it out of the configuration first")
		}
		if !slices.Contains(jids, j) {
			jids = append(jids, j)
		}
	}
	v["accountjids"] = jids
	return nil
}

// deleteUsers deletes each account as `annals user del` does. One that
// fails does not stop the others: the notes say which (XEP-0050 §4.5: a
// command that completes but fails says so in an error note).
func deleteUsers(ctx context.Context, r *request, v values) (string, error) {
	var notes strings.Builder
	for _, j := range v["accountjids"] {
		switch err := r.svc.cfg.Accounts.Remove(ctx, j); {
		case err == nil:
			r.log("adhoc: account deleted", j)
			notes.WriteString(note("info", "Deleted "+j+"."))
		case errors.Is(err, account.ErrNotFound):
			notes.WriteString(note("warn", j+" was deleted already."))
		default:
			r.svc.cfg.Log.Error("adhoc: deleting an account", "admin", r.admin.Bare().String(), "account", j, "err", err)
			notes.WriteString(note("error", "Could not delete "+j+": the server's log says why."))
		}
	}
	return notes.String(), nil
}

func checkChangePassword(ctx context.Context, r *request, v values) error {
	j, err := r.existing(ctx, "accountjid", v.one("accountjid"))
	if err != nil {
		return err
	}
	if err := checkPassword(v); err != nil {
		return err
	}
	v["accountjid"] = []string{j}
	return nil
}

func changePassword(ctx context.Context, r *request, v values) (string, error) {
	j := v.one("accountjid")
	switch err := r.svc.cfg.Accounts.SetPassword(ctx, j, v.one("password"), ""); {
	case errors.Is(err, account.ErrNotFound):
		return "", stanza.Errorf("item-not-found", "no account "+j)
	case errors.Is(err, credentials.ErrPassword):
		return "", badPayload("%v", err)
	case err != nil:
		return "", err
	}
	r.log("adhoc: password changed", j)
	return note("info", "Changed the password of "+j+": its sessions were ended."), nil
}

// checkMaxItems reads max_items: one of the options, or any count up to
// MaxOnlineItems; none (or nothing) means as many as the server shows.
func checkMaxItems(_ context.Context, _ *request, v values) error {
	switch s := strings.TrimSpace(v.one("max_items")); s {
	case "", "none":
		v["max_items"] = []string{strconv.Itoa(MaxOnlineItems)}
	default:
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxOnlineItems {
			return badPayload("max_items: give a number from 1 to %d, or none", MaxOnlineItems)
		}
		v["max_items"] = []string{strconv.Itoa(n)}
	}
	return nil
}

// online returns the bare JIDs of the accounts with an available
// session, sorted.
func (r *request) online() []string {
	var users []string
	for _, s := range r.svc.host.Online() {
		users = append(users, s.JID().Bare().String())
	}
	slices.Sort(users)
	return slices.Compact(users)
}

func onlineUsers(_ context.Context, r *request, v values) (string, error) {
	users := r.online()
	limit, _ := strconv.Atoi(v.one("max_items"))
	shown, bytes := 0, 0
	for shown < len(users) && shown < limit && bytes+len(users[shown]) <= MaxOnlineBytes {
		bytes += len(users[shown])
		shown++
	}
	payload := ""
	if shown < len(users) {
		payload = note("info", fmt.Sprintf("Showing %d of the %d online users.", shown, len(users)))
	}
	return payload + resultForm(resultField(form.JIDMulti, "onlineuserjids", "The list of all online users", users[:shown]...)), nil
}

func onlineUsersNum(_ context.Context, r *request, _ values) (string, error) {
	return resultForm(resultField(form.TextSingle, "onlineusersnum", "The number of online users", strconv.Itoa(len(r.online())))), nil
}

// announce sends the announcement to every available session here, as
// a headline from the session's own domain: it is for whoever is online
// now, not kept for later (XEP-0133 §4.23). It is no event: it changes
// no state.
func announce(_ context.Context, r *request, v values) (string, error) {
	body := strings.Join(v["announcement"], "\n")
	subject := strings.TrimSpace(v.one("subject"))
	sessions := r.svc.host.Online()
	users := map[string]bool{}
	for _, s := range sessions {
		to := s.JID()
		msg := "<message type='headline' id='" + stanza.NewID() + "'" + stanza.ToFrom(to.String(), to.Domainpart()) + ">"
		if subject != "" {
			msg += "<subject>" + stanza.Escape(subject) + "</subject>"
		}
		s.Deliver(msg+"<body>"+stanza.Escape(body)+"</body></message>", true)
		users[to.Bare().String()] = true
	}
	r.svc.cfg.Log.Info("adhoc: announcement sent", "admin", r.admin.Bare().String(), "sessions", len(sessions), "users", len(users))
	return note("info", fmt.Sprintf("Sent to %d sessions of %d users.", len(sessions), len(users))), nil
}
