package pep

import (
	"context"
	"fmt"
	"time"

	"annals.im/annals/adapters/secrets"
	"annals.im/annals/app/accounts"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/pep"
)

// defaultCause is the cause of the events of a caller that gave none:
// the c2s adapter, until it passes each stanza's id.
const defaultCause = "c2s"

// Service gives the adapters the accounts' PEP nodes.
type Service struct {
	accounts *accounts.Service
	pwds     *secrets.Store
	ids      *event.IDs
	locks    locks // an item's event and its passwords change together
}

// New returns the PEP service of the accounts a keeps, with the
// passwords kept in pwds; ids makes item IDs and event IDs.
func New(a *accounts.Service, pwds *secrets.Store, ids *event.IDs) *Service {
	return &Service{accounts: a, pwds: pwds, ids: ids}
}

// Node returns acct's node (the zero Node when it has none).
func (p *Service) Node(ctx context.Context, acct, node string) (pep.Node, error) {
	st, err := p.accounts.Get(ctx, acct)
	return st.PEP.Nodes[node], err
}

// Nodes returns all of acct's nodes, by name (nil when it has none).
func (p *Service) Nodes(ctx context.Context, acct string) (map[string]pep.Node, error) {
	st, err := p.accounts.Get(ctx, acct)
	return st.PEP.Nodes, err
}

// Passwords returns the passwords kept for the items of acct's node, by
// item ID.
func (p *Service) Passwords(ctx context.Context, acct, node string) (map[string][]string, error) {
	return p.pwds.Node(ctx, acct, node)
}

// Do runs a pep.Publish or pep.Retract. A publication's passwords are
// stored after its event is appended (as accounts.Register stores keys
// after AccountCreated): a crash in between leaves an item whose
// password is missing, which the client publishes again; never a
// password for an item that was refused. Two commands of one account are
// serialized, so that the last event and the last passwords kept are of
// the same publication.
func (p *Service) Do(ctx context.Context, acct string, cmd any) error {
	defer p.locks.lock(acct)()
	if c, ok := cmd.(pep.Publish); ok && c.Item.ID == "" {
		c.Item.ID = p.ids.New(time.Now()).String() // the passwords' key must be known here
		cmd = c
	}
	cause := event.Cause(ctx, defaultCause)
	var before pep.State
	st, err := p.accounts.Update(ctx, acct, func(s accounts.State) ([]event.Envelope, error) {
		before = s.PEP // of the run that counted: Update may decide again
		return pep.Decide(s.PEP, cmd, p.ids, time.Now(), cause)
	})
	if err != nil {
		return err
	}
	switch c := cmd.(type) {
	case pep.Publish:
		if err := p.pwds.Put(ctx, acct, c.Node, c.Item.ID, c.Passwords); err != nil {
			return fmt.Errorf("pep: passwords of %s: %w", acct, err)
		}
		// Items pushed out of the node (max_items) take their passwords along.
		after := st.PEP.Nodes[c.Node]
		for _, it := range before.Nodes[c.Node].Items {
			if _, kept := after.Item(it.ID); it.HasPassword && !kept {
				if err := p.pwds.Delete(ctx, acct, c.Node, it.ID); err != nil {
					return fmt.Errorf("pep: passwords of %s: %w", acct, err)
				}
			}
		}
	case pep.Retract:
		if err := p.pwds.Delete(ctx, acct, c.Node, c.ID); err != nil {
			return fmt.Errorf("pep: passwords of %s: %w", acct, err)
		}
	}
	return nil
}
