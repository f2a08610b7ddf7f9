package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Incident states.
const (
	StateNew       = "new"
	StateReviewed  = "reviewed"
	StateEscalated = "escalated"
	StateDismissed = "dismissed"
)

var incidentStates = []string{StateNew, StateReviewed, StateEscalated, StateDismissed}

// ErrNoIncident is returned for an incident ID that does not exist.
var ErrNoIncident = errors.New("no such incident")

// Incident is one or more blocked attempts by one client at one host within
// the folding window: devices retry, and the safeguarding lead should see
// one line with a count, not four hundred.
type Incident struct {
	ID         uint64    `json:"id"`
	First      time.Time `json:"first"`
	Last       time.Time `json:"last"`
	Count      int       `json:"count"`
	Channel    string    `json:"channel"`
	Client     string    `json:"client"`
	User       string    `json:"user,omitempty"`
	Device     string    `json:"device,omitempty"`     // the device's name at the time, from a lease or IT staff
	MAC        string    `json:"mac,omitempty"`        // its hardware address at the time
	Identified string    `json:"identified,omitempty"` // which source named device and user
	Group      string    `json:"group"`
	Host       string    `json:"host"`
	URL        string    `json:"url,omitempty"`
	SearchTerm string    `json:"search_term,omitempty"`
	Category   string    `json:"category,omitempty"`
	Severity   string    `json:"severity,omitempty"`
	Rule       string    `json:"rule"`
	Blocked    bool      `json:"blocked"`
	Intent     string    `json:"intent,omitempty"`
	// Review is true for what the safeguarding lead must look at: critical
	// and high severity, asked for by the pupil (not a page's own requests).
	Review bool   `json:"review"`
	State  string `json:"state"`
	Notes  []Note `json:"notes,omitempty"`
	// Related are the incidents a pattern rests on (Rule RulePattern).
	Related []uint64 `json:"related,omitempty"`
	// Context is what the device reached in the minutes before, where its
	// group keeps context (a privacy choice the school makes).
	Context []Visit `json:"context,omitempty"`

	// Erased is set by SaveIncidents on a folded incident whose record was
	// deleted meanwhile: it was not written back.
	Erased bool `json:"-"`

	saved   int         // attempts already committed, for the writer's counters
	members []*Incident // a pattern's incidents, until they have IDs
}

// RulePattern is the rule of an incident that stands for a pattern: several
// high-severity attempts by one device or user in a short time.
const RulePattern = "pattern"

// Note is a reviewer's entry on an incident.
type Note struct {
	Time  time.Time `json:"time"`
	Actor string    `json:"actor"`
	State string    `json:"state"`
	Text  string    `json:"text"`
}

// NeedsReview reports whether an attempt belongs in the review queue:
// critical and high categories, unless the proxy saw that a page loaded it
// by itself (an advert, a tracker, a suggestion keystroke).
func NeedsReview(a Attempt) bool {
	return a.Blocked && (a.Severity == "critical" || a.Severity == "high") && a.Intent != IntentBackground
}

// SaveIncidents writes new and updated incidents in one transaction: an
// incident with ID 0 gets the next ID (written back into the slice), one
// with an ID replaces the stored record (a fold that added attempts).
func (s *Store) SaveIncidents(incs []Incident) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bIncidents)
		for i := range incs {
			if incs[i].ID == 0 {
				id, err := b.NextSequence()
				if err != nil {
					return err
				}
				incs[i].ID = id
			} else if old := b.Get(u64(incs[i].ID)); old != nil {
				// A fold adds attempts; a reviewer's state and notes stay.
				var stored Incident
				if err := json.Unmarshal(old, &stored); err == nil {
					incs[i].State, incs[i].Notes = stored.State, stored.Notes
				}
			} else {
				// Erased (a subject's request) or purged meanwhile: never
				// written back; the writer forgets it.
				incs[i].Erased = true
				continue
			}
			raw, err := json.Marshal(&incs[i])
			if err != nil {
				return err
			}
			if err := b.Put(u64(incs[i].ID), raw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save %d incidents: %w", len(incs), err)
	}
	return nil
}

// IncidentFilter selects incidents; zero fields match everything.
type IncidentFilter struct {
	Since, Until time.Time // on the incident's last attempt
	Group        string
	Category     string
	Severity     string
	State        string
	Client       string
	User         string
	ReviewOnly   bool
	Limit        int // 0: all
}

// Validate checks the filter's values.
func (f IncidentFilter) Validate() error {
	if f.State != "" && !slices.Contains(incidentStates, f.State) {
		return fmt.Errorf("incident state %q: want one of %s", f.State, strings.Join(incidentStates, ", "))
	}
	if f.Client != "" {
		if _, err := netip.ParseAddr(f.Client); err != nil {
			return fmt.Errorf("client %q: want an IP address", f.Client)
		}
	}
	if f.Limit < 0 {
		return fmt.Errorf("limit %d: want 0 (all) or more", f.Limit)
	}
	return nil
}

func (f IncidentFilter) match(in *Incident) bool {
	return (f.Since.IsZero() || !in.Last.Before(f.Since)) && (f.Until.IsZero() || in.Last.Before(f.Until)) &&
		(f.Group == "" || in.Group == f.Group) && (f.Category == "" || in.Category == f.Category) &&
		(f.Severity == "" || in.Severity == f.Severity) && (f.State == "" || in.State == f.State) &&
		(f.Client == "" || in.Client == f.Client) && (f.User == "" || in.User == f.User) && (!f.ReviewOnly || in.Review)
}

// Incidents returns the incidents f selects, newest first.
func (s *Store) Incidents(f IncidentFilter) ([]Incident, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var out []Incident
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bIncidents).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var in Incident
			if err := json.Unmarshal(v, &in); err != nil {
				return fmt.Errorf("incident %x: %w", k, err)
			}
			if f.match(&in) {
				out = append(out, in)
				if f.Limit > 0 && len(out) == f.Limit {
					return nil
				}
			}
		}
		return nil
	})
	return out, err
}

// Incident returns one incident.
func (s *Store) Incident(id uint64) (Incident, error) {
	var in Incident
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bIncidents).Get(u64(id))
		if v == nil {
			return fmt.Errorf("incident %d: %w", id, ErrNoIncident)
		}
		return json.Unmarshal(v, &in)
	})
	return in, err
}

// ReviewIncident records a reviewer's decision and note, and audits it.
func (s *Store) ReviewIncident(actor string, id uint64, state, note string) error {
	if !slices.Contains(incidentStates[1:], state) {
		return fmt.Errorf("review incident %d: state %q: want one of %s", id, state, strings.Join(incidentStates[1:], ", "))
	}
	if strings.TrimSpace(note) == "" {
		return fmt.Errorf("review incident %d: a note is required (what was seen, what was done)", id)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bIncidents)
		v := b.Get(u64(id))
		if v == nil {
			return fmt.Errorf("review incident %d: %w", id, ErrNoIncident)
		}
		var in Incident
		if err := json.Unmarshal(v, &in); err != nil {
			return err
		}
		before := in.State
		in.State = state
		in.Notes = append(in.Notes, Note{Time: s.now().UTC(), Actor: actor, State: state, Text: note})
		raw, err := json.Marshal(&in)
		if err != nil {
			return err
		}
		if err := b.Put(u64(id), raw); err != nil {
			return err
		}
		// The audit names the incident, not the pupil: the record holds the rest.
		return s.audit(tx, actor, "incidents-review", fmt.Sprintf("incident %d", id), before, state, note)
	})
}

// RecordAction audits something a person did that changes no stored data,
// such as lifting a device's restriction in the running filter.
func (s *Store) RecordAction(actor, action, target, reason string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return s.audit(tx, actor, action, target, nil, nil, reason) })
}

// RecordView audits a person's look at incident records (who, which
// records, how): they are personal data about children.
func (s *Store) RecordView(actor, action, target string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return s.audit(tx, actor, action, target, nil, nil, "") })
}
