package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Subject selects one pupil's data for a subject access request: by device
// address or by user name (exactly one of them).
//
// A device address identifies a device, not a person: a shared laptop or a
// reassigned DHCP address holds other pupils' records too, so whoever
// answers the request checks what an export by address holds before handing
// it over or erasing it. User names match without regard to case, as school
// directories treat them.
type Subject struct {
	Client string `json:"client,omitempty"`
	User   string `json:"user,omitempty"`
}

// String names the subject for messages and the audit trail.
func (sub Subject) String() string {
	if sub.Client != "" {
		return "client " + sub.Client
	}
	return "user " + sub.User
}

// Validate checks that exactly one of Client and User is given, and that
// Client is an IP address.
func (sub Subject) Validate() error {
	switch {
	case sub.Client == "" && strings.TrimSpace(sub.User) == "":
		return errors.New("subject: give a device address or a user name")
	case sub.Client != "" && sub.User != "":
		return errors.New("subject: give a device address or a user name, not both")
	case sub.Client != "":
		if _, err := netip.ParseAddr(sub.Client); err != nil {
			return fmt.Errorf("subject client %q: want an IP address", sub.Client)
		}
	}
	return nil
}

// matcher returns whether a record's client and user belong to the subject.
// Addresses compare as addresses (an IPv4-mapped IPv6 address is its IPv4
// address), users without regard to case.
func (sub Subject) matcher() func(client, user string) bool {
	if sub.Client != "" {
		want := netip.MustParseAddr(sub.Client).Unmap()
		return func(client, _ string) bool {
			if a, err := netip.ParseAddr(client); err == nil {
				return a.Unmap() == want
			}
			return client == sub.Client
		}
	}
	name := strings.TrimSpace(sub.User)
	return func(_, user string) bool { return user != "" && strings.EqualFold(user, name) }
}

// SubjectData is everything held about a subject: the incidents and the
// block-page reports that name the device or the user. (The audit trail
// names incidents by number, and is not part of it.)
type SubjectData struct {
	Subject   Subject    `json:"subject"`
	Incidents []Incident `json:"incidents"`
	Reports   []Report   `json:"reports"`
	Exported  time.Time  `json:"exported"`
}

// whose is the part of an incident or report record that names a person.
type whose struct {
	Client string `json:"client"`
	User   string `json:"user"`
}

func (sub Subject) selects(match func(client, user string) bool) func(k, v []byte) (bool, error) {
	return func(k, v []byte) (bool, error) {
		var w whose
		if err := json.Unmarshal(v, &w); err != nil {
			return false, fmt.Errorf("record %d: damaged: %w", reportID(k), err)
		}
		return match(w.Client, w.User), nil
	}
}

// SubjectExport returns everything held about a subject, oldest first, and
// audits the export ("subject-export": who, which subject, how many
// records).
func (s *Store) SubjectExport(actor string, sub Subject) (SubjectData, error) {
	out := SubjectData{Subject: sub, Incidents: []Incident{}, Reports: []Report{}}
	if err := sub.Validate(); err != nil {
		return out, err
	}
	match := sub.matcher()
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bIncidents).ForEach(func(k, v []byte) error {
			var in Incident
			if err := json.Unmarshal(v, &in); err != nil {
				return fmt.Errorf("incident %d: damaged record: %w", reportID(k), err)
			}
			if match(in.Client, in.User) {
				out.Incidents = append(out.Incidents, in)
			}
			return nil
		}); err != nil {
			return err
		}
		b := tx.Bucket(bReports)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r Report
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("report %d: damaged record: %w", reportID(k), err)
			}
			if match(r.Client, r.User) {
				out.Reports = append(out.Reports, r)
			}
			return nil
		})
	})
	if err != nil {
		return out, fmt.Errorf("subject export of %s: %w", sub, err)
	}
	out.Exported = s.now().UTC()
	err = s.db.Update(func(tx *bolt.Tx) error {
		return s.audit(tx, actor, "subject-export", sub.String(), nil,
			PurgeResult{Incidents: len(out.Incidents), Reports: len(out.Reports)}, "")
	})
	if err != nil {
		return out, fmt.Errorf("subject export of %s: audit: %w", sub, err)
	}
	return out, nil
}

// SubjectErase deletes everything held about a subject (escalated
// incidents too: export first, and decide whether a safeguarding record
// must be kept), in transactions of at most DefaultPurgeBatch deletions,
// each audited ("subject-erase": who, which subject, how many, the reason).
// An erasure that finds nothing is audited too. A reason is required.
//
// As with Purge, the deleted bytes stay in the file's free pages until
// Compact runs: the caller compacts afterwards.
func (s *Store) SubjectErase(actor, reason string, sub Subject) (PurgeResult, error) {
	var res PurgeResult
	if err := sub.Validate(); err != nil {
		return res, err
	}
	if strings.TrimSpace(reason) == "" {
		return res, fmt.Errorf("subject erase of %s: a reason is required (the request it answers)", sub)
	}
	match := sub.matcher()
	var err error
	res.Incidents, err = s.deleteWhere(bIncidents, 0, sub.selects(match), func(tx *bolt.Tx, n int) error {
		return s.audit(tx, actor, "subject-erase", sub.String(), nil, PurgeResult{Incidents: n}, reason)
	})
	if err != nil {
		return res, fmt.Errorf("subject erase of %s (%d incidents deleted before the error): %w", sub, res.Incidents, err)
	}
	res.Reports, err = s.deleteWhere(bReports, 0, sub.selects(match), func(tx *bolt.Tx, n int) error {
		return s.audit(tx, actor, "subject-erase", sub.String(), nil, PurgeResult{Reports: n}, reason)
	})
	if err != nil {
		return res, fmt.Errorf("subject erase of %s (%d incidents and %d reports deleted before the error): %w", sub, res.Incidents, res.Reports, err)
	}
	if res == (PurgeResult{}) {
		err = s.db.Update(func(tx *bolt.Tx) error {
			return s.audit(tx, actor, "subject-erase", sub.String(), nil, res, reason)
		})
		if err != nil {
			return res, fmt.Errorf("subject erase of %s: audit: %w", sub, err)
		}
	}
	return res, nil
}
