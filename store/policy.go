package store

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"hedgerow/categories"
)

// Policy reads the groups, school-wide overrides, client mapping and time zone.
func (s *Store) Policy() (categories.Policy, error) {
	var p categories.Policy
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		p, err = readPolicy(tx)
		return err
	})
	return p, err
}

func readPolicy(tx *bolt.Tx) (categories.Policy, error) {
	var p categories.Policy
	err := tx.Bucket(bGroups).ForEach(func(k, v []byte) error {
		var g categories.Group
		if err := json.Unmarshal(v, &g); err != nil {
			return fmt.Errorf("group %s: %w", k, err)
		}
		if string(k) == categories.SchoolGroup {
			p.School = g
		} else {
			p.Groups = append(p.Groups, g)
		}
		return nil
	})
	if err != nil {
		return p, err
	}
	p.School.Name = categories.SchoolGroup
	err = tx.Bucket(bClients).ForEach(func(k, v []byte) error {
		pfx, err := netip.ParsePrefix(string(k))
		if err != nil {
			return fmt.Errorf("client %s: %w", k, err)
		}
		p.Clients = append(p.Clients, categories.ClientRule{Prefix: pfx, Group: string(v)})
		return nil
	})
	if err != nil {
		return p, err
	}
	if tz := tx.Bucket(bSettings).Get(kTZ); tz != nil {
		p.TimeZone = string(tz)
	} else {
		p.TimeZone = categories.DefaultTimeZone
	}
	return p, nil
}

func putPolicy(tx *bolt.Tx, p categories.Policy) error {
	for _, name := range [][]byte{bGroups, bClients} {
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	groups := tx.Bucket(bGroups)
	p.School.Name = categories.SchoolGroup
	for _, g := range append(slices.Clone(p.Groups), p.School) {
		raw, err := json.Marshal(g)
		if err != nil {
			return err
		}
		if err := groups.Put([]byte(g.Name), raw); err != nil {
			return err
		}
	}
	clients := tx.Bucket(bClients)
	for _, c := range p.Clients {
		if err := clients.Put([]byte(c.Prefix.String()), []byte(c.Group)); err != nil {
			return err
		}
	}
	return tx.Bucket(bSettings).Put(kTZ, []byte(p.TimeZone))
}

// PolicyChange is one edit of the policy: what it is called in the audit
// trail, why, and the function that applies it. Apply returns the subject of
// the change (a group name, "clients" or "time_zone") whose before and after
// the audit record keeps.
type PolicyChange struct {
	Action string // e.g. "groups allow ks2 example.com"
	Reason string
	Apply  func(p *categories.Policy) (subject string, err error)
	// Version, when not 0, is the PolicyVersion the editor saw: the change
	// is refused with ErrConflict if the policy has changed since.
	Version uint64
}

// UpdatePolicy applies a change in one transaction: the policy is read,
// changed, validated as a whole and written with an audit record, or nothing
// is written at all.
func (s *Store) UpdatePolicy(actor string, c PolicyChange) error {
	if strings.TrimSpace(c.Reason) == "" {
		return fmt.Errorf("%s: a reason is required (schools must record why a policy changes)", c.Action)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if c.Version != 0 && c.Version != policyVersion(tx) {
			return fmt.Errorf("%s: %w", c.Action, ErrConflict)
		}
		p, err := readPolicy(tx)
		if err != nil {
			return err
		}
		orig, _ := json.Marshal(p) // a deep copy for the audit record
		var before categories.Policy
		_ = json.Unmarshal(orig, &before)
		subject, err := c.Apply(&p)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Action, err)
		}
		if err := p.Validate(s.tax); err != nil {
			return fmt.Errorf("%s: %w", c.Action, err)
		}
		if err := putPolicy(tx, p); err != nil {
			return err
		}
		if err := bumpPolicyVersion(tx); err != nil {
			return err
		}
		return s.audit(tx, actor, c.Action, subject, policySection(before, subject), policySection(p, subject), c.Reason)
	})
}

// policySection picks the part of a policy an audit record shows.
func policySection(p categories.Policy, subject string) any {
	switch subject {
	case "clients":
		return p.Clients
	case "time_zone":
		return p.TimeZone
	case categories.SchoolGroup:
		return p.School
	}
	for _, g := range p.Groups {
		if g.Name == subject {
			return g
		}
	}
	return nil
}

// LoadSnapshot builds a Snapshot from one consistent read of the lists and
// the policy.
func (s *Store) LoadSnapshot() (*categories.Snapshot, error) {
	var snap *categories.Snapshot
	err := s.db.View(func(tx *bolt.Tx) error {
		idx, err := s.buildIndex(tx)
		if err != nil {
			return fmt.Errorf("build index: %w", err)
		}
		p, err := readPolicy(tx)
		if err != nil {
			return fmt.Errorf("read policy: %w", err)
		}
		snap, err = categories.NewSnapshot(s.tax, idx, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", s.path, err)
	}
	return snap, nil
}

// AuditRecord is one entry of the audit trail.
type AuditRecord struct {
	Seq    uint64          `json:"seq"`
	Time   time.Time       `json:"time"`
	Actor  string          `json:"actor"`
	Action string          `json:"action"`
	Target string          `json:"target"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
	Reason string          `json:"reason,omitempty"`
}

// audit appends a record in the caller's transaction, so the change and its
// record commit together or not at all.
func (s *Store) audit(tx *bolt.Tx, actor, action, target string, before, after any, reason string) error {
	b := tx.Bucket(bAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	r := AuditRecord{Seq: seq, Time: s.now().UTC(), Actor: actor, Action: action, Target: target, Reason: reason}
	if before != nil {
		if r.Before, err = json.Marshal(before); err != nil {
			return err
		}
	}
	if after != nil {
		if r.After, err = json.Marshal(after); err != nil {
			return err
		}
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(u64(seq), raw)
}

// Audit returns the most recent audit records, newest first (all when
// limit is 0).
func (s *Store) Audit(limit int) ([]AuditRecord, error) {
	var out []AuditRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bAudit).Cursor()
		for k, v := c.Last(); k != nil && (limit == 0 || len(out) < limit); k, v = c.Prev() {
			var r AuditRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("audit record %x: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
