package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Digest summarises incidents for the safeguarding lead's weekly look: the
// last week by severity and category, what waits for review, the patterns,
// and the weeks before it for the trend. It holds counts only, no pupil.
type Digest struct {
	Start        time.Time      `json:"start"`
	End          time.Time      `json:"end"`
	Incidents    int            `json:"incidents"`
	Attempts     int            `json:"attempts"`
	BySeverity   map[string]int `json:"by_severity"`
	ByCategory   map[string]int `json:"by_category"`
	Patterns     int            `json:"patterns"`
	OpenReviews  int            `json:"open_reviews"` // marked for review and still new, whenever they happened
	Escalated    int            `json:"escalated"`    // escalated and not yet released
	PreviousWeek []int          `json:"previous_weeks"`
}

// Digest returns the digest of the week ending at now, with weeks earlier
// weeks' incident counts (most recent first) for the trend.
func (s *Store) Digest(now time.Time, weeks int) (Digest, error) {
	if weeks < 0 || weeks > 52 {
		return Digest{}, fmt.Errorf("digest: %d earlier weeks; want 0 to 52", weeks)
	}
	d := Digest{Start: now.AddDate(0, 0, -7).UTC(), End: now.UTC(), BySeverity: map[string]int{}, ByCategory: map[string]int{},
		PreviousWeek: make([]int, weeks)}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bIncidents).ForEach(func(k, v []byte) error {
			var in Incident
			if err := json.Unmarshal(v, &in); err != nil {
				return fmt.Errorf("incident %x: %w", k, err)
			}
			if in.Review && in.State == StateNew {
				d.OpenReviews++
			}
			if in.State == StateEscalated {
				d.Escalated++
			}
			if !in.Blocked || in.Last.After(now) {
				return nil
			}
			if !in.Last.Before(d.Start) {
				d.Incidents++
				if in.Rule == RulePattern {
					d.Patterns++
					return nil
				}
				d.Attempts += in.Count
				d.BySeverity[orNone(in.Severity)]++
				d.ByCategory[orNone(in.Category)]++
				return nil
			}
			if w := int(d.Start.Sub(in.Last) / (7 * 24 * time.Hour)); w < weeks {
				d.PreviousWeek[w]++
			}
			return nil
		})
	})
	return d, err
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
