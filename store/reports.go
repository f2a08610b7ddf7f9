package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"hedgerow/categories"
)

// Report kinds.
const (
	ReportUnblock = "unblock" // "this page should not be blocked", for IT
	ReportConcern = "concern" // "report a concern", for the DSL
)

// ReportNew is the state of a report nobody has looked at yet.
const ReportNew = "new"

// Size limits on a report's fields. Reports come from anyone on a pupil
// device without logging in, so what one can put in the database is
// bounded.
const (
	maxReportMessage = 4096
	maxReportURL     = 8192
	maxReportField   = 256
)

// Report is one report from the block page.
type Report struct {
	ID       uint64    `json:"id"` // bucket sequence
	Kind     string    `json:"kind"`
	Time     time.Time `json:"time"`
	Client   string    `json:"client"` // source address
	User     string    `json:"user,omitempty"`
	Group    string    `json:"group,omitempty"`
	URL      string    `json:"url,omitempty"`
	Host     string    `json:"host,omitempty"`
	Category string    `json:"category,omitempty"`
	Message  string    `json:"message,omitempty"`
	State    string    `json:"state"` // "new" when filed
}

// addReportsBucket is the migration from schema 1 to 2, which added block
// page reports.
func addReportsBucket(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists(bReports)
	return err
}

func validReportKind(kind string) error {
	if kind != ReportUnblock && kind != ReportConcern {
		return fmt.Errorf("report kind %q: want %s or %s", kind, ReportUnblock, ReportConcern)
	}
	return nil
}

func (r Report) validate() error {
	if err := validReportKind(r.Kind); err != nil {
		return err
	}
	if r.Client == "" {
		return errors.New("report: the client address is required")
	}
	if len(r.Message) > maxReportMessage {
		return fmt.Errorf("report message is %d bytes: want at most %d", len(r.Message), maxReportMessage)
	}
	if len(r.URL) > maxReportURL {
		return fmt.Errorf("report URL is %d bytes: want at most %d", len(r.URL), maxReportURL)
	}
	for _, f := range []struct{ name, v string }{{"client", r.Client}, {"user", r.User}, {"group", r.Group}, {"host", r.Host}, {"category", r.Category}} {
		if len(f.v) > maxReportField {
			return fmt.Errorf("report %s is %d bytes: want at most %d", f.name, len(f.v), maxReportField)
		}
	}
	return nil
}

// AddReport files a report and returns its ID. The kind must be known and
// the client given; the ID and the state ("new") are set here, and the time
// too when r has none.
func (s *Store) AddReport(r Report) (uint64, error) {
	if err := r.validate(); err != nil {
		return 0, err
	}
	if r.Time.IsZero() {
		r.Time = s.now()
	}
	r.Time = r.Time.UTC()
	r.State = ReportNew
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bReports)
		if b == nil {
			return errors.New("reports bucket missing (database not migrated)")
		}
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		r.ID = id
		raw, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(u64(id), raw); err != nil {
			return err
		}
		if r.Kind == ReportConcern {
			return s.putConcernIncident(tx, r)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("add %s report from %s: %w", r.Kind, r.Client, err)
	}
	return r.ID, nil
}

// Reports returns the most recent reports of a kind ("" for every kind),
// newest first; all of them when limit is 0.
func (s *Store) Reports(kind string, limit int) ([]Report, error) {
	if kind != "" {
		if err := validReportKind(kind); err != nil {
			return nil, err
		}
	}
	if limit < 0 {
		return nil, fmt.Errorf("reports limit %d: want 0 (all) or more", limit)
	}
	var out []Report
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bReports)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && (limit == 0 || len(out) < limit); k, v = c.Prev() {
			var r Report
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("report %d: damaged record: %w", reportID(k), err)
			}
			if kind == "" || r.Kind == kind {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

// reportID reads a key for an error message; a key of the wrong length is
// shown as 0 rather than read past its end.
func reportID(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// RuleConcern is the rule of an incident that a pupil's "report a concern"
// from the block page made: it waits in the DSL's review queue like any
// other, with the pupil's words as its first note.
const RuleConcern = "concern"

// putConcernIncident files a concern as an incident of its own, in the
// report's transaction.
func (s *Store) putConcernIncident(tx *bolt.Tx, r Report) error {
	// The block page names the category for people; incidents keep slugs.
	slug, severity := r.Category, "high"
	for _, c := range s.tax.All() {
		if c.Name == r.Category || c.Slug == r.Category {
			slug = c.Slug
			if c.Severity == categories.SeverityCritical {
				severity = "critical"
			}
		}
	}
	b := tx.Bucket(bIncidents)
	id, err := b.NextSequence()
	if err != nil {
		return err
	}
	in := Incident{ID: id, First: r.Time, Last: r.Time, Count: 1, Channel: "report", Client: r.Client, User: r.User,
		Group: r.Group, Host: r.Host, URL: r.URL, Category: slug, Severity: severity, Rule: RuleConcern,
		Blocked: true, Intent: IntentNavigate, Review: true, State: StateNew,
		Notes: []Note{{Time: r.Time, Actor: "the pupil, from the block page", State: StateNew, Text: r.Message}}}
	raw, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return b.Put(u64(id), raw)
}
