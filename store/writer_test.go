package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// writerFor returns a writer committing into s, guarded as the program
// guards its per-batch opens.
func writerFor(s *Store, cfg WriterConfig) *IncidentWriter {
	var mu sync.Mutex
	return NewIncidentWriter(cfg, func(fn func(*Store) error) error {
		mu.Lock()
		defer mu.Unlock()
		return fn(s)
	}, slog.New(slog.DiscardHandler), nil)
}

func attempt(client, host, severity string, at time.Time) Attempt {
	return Attempt{Time: at, Channel: ChannelDNS, Client: netip.MustParseAddr(client), Group: "ks2", Host: host,
		Category: "adult", Severity: severity, Rule: "category", Blocked: true}
}

func TestIncidentWriterFoldsAndDrains(t *testing.T) {
	s, _ := openNew(t)
	w := writerFor(s, WriterConfig{Interval: time.Hour, FoldWindow: 10 * time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()

	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for i := range 400 { // a device retrying: one incident
		w.Record(attempt("10.0.0.1", "pornhub.com", "high", t0.Add(time.Duration(i)*time.Second)))
	}
	w.Record(attempt("10.0.0.2", "pornhub.com", "high", t0))                // another device
	w.Record(attempt("10.0.0.1", "pornhub.com", "high", t0.Add(time.Hour))) // after the window
	bg := attempt("10.0.0.3", "ads.example", "high", t0)
	bg.Intent = IntentBackground
	w.Record(bg)                                                  // an advert: recorded, not for review
	w.Record(attempt("10.0.0.4", "games.example", "low", t0))     // low: not for review
	w.Record(attempt("10.0.0.5", "csam.example", "critical", t0)) // critical: review
	cancel()
	<-done // a graceful stop drains the queue

	all, err := s.Incidents(IncidentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 {
		t.Fatalf("%d incidents, want 6: %+v", len(all), all)
	}
	counts := map[string]int{}
	review := map[string]bool{}
	for _, in := range all {
		counts[in.Client] += in.Count
		review[in.Host] = review[in.Host] || in.Review
		if in.State != StateNew || in.ID == 0 {
			t.Errorf("incident %+v", in)
		}
	}
	if counts["10.0.0.1"] != 401 || counts["10.0.0.2"] != 1 {
		t.Errorf("counts %v", counts)
	}
	if !review["pornhub.com"] || !review["csam.example"] || review["ads.example"] || review["games.example"] {
		t.Errorf("review %v", review)
	}
	if st := w.Stats(); st.Attempts != 405 || st.Incidents != 6 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
	queue, err := s.Incidents(IncidentFilter{ReviewOnly: true, Client: "10.0.0.1"})
	if err != nil || len(queue) != 2 {
		t.Errorf("review queue for 10.0.0.1: %d, %v", len(queue), err)
	}
}

func TestIncidentWriterKeepsReviews(t *testing.T) {
	s, _ := openNew(t)
	w := writerFor(s, WriterConfig{Interval: time.Hour})
	t0 := time.Now()
	w.fold(attempt("10.0.0.1", "pornhub.com", "high", t0))
	if !w.flush() {
		t.Fatal("flush failed")
	}
	in, _ := s.Incidents(IncidentFilter{})
	if err := s.ReviewIncident("dsl", in[0].ID, StateEscalated, "spoke to the pupil"); err != nil {
		t.Fatal(err)
	}
	w.fold(attempt("10.0.0.1", "pornhub.com", "high", t0.Add(time.Second)))
	if !w.flush() {
		t.Fatal("flush failed")
	}
	got, _ := s.Incident(in[0].ID)
	if got.Count != 2 || got.State != StateEscalated || len(got.Notes) != 1 {
		t.Errorf("after a fold: %+v", got)
	}
	if err := s.ReviewIncident("dsl", in[0].ID, "closed", "x"); err == nil {
		t.Error("unknown state accepted")
	}
	if err := s.ReviewIncident("dsl", in[0].ID, StateDismissed, " "); err == nil {
		t.Error("empty note accepted")
	}
	if _, err := s.Incident(999); !errors.Is(err, ErrNoIncident) {
		t.Errorf("missing incident: %v", err)
	}
}

func TestIncidentWriterQueueFullAndRetry(t *testing.T) {
	s, _ := openNew(t)
	var drops []uint64
	busy := true
	w := NewIncidentWriter(WriterConfig{QueueSize: 3, Interval: time.Hour}, func(fn func(*Store) error) error {
		if busy {
			return ErrLocked
		}
		return fn(s)
	}, slog.New(slog.DiscardHandler), func(n uint64) { drops = append(drops, n) })
	for i := range 5 {
		w.Record(attempt("10.0.0.1", fmt.Sprintf("h%d.example", i), "high", time.Now()))
	}
	if w.Stats().Dropped != 2 || len(drops) != 2 {
		t.Fatalf("dropped %d (%v), want 2 counted", w.Stats().Dropped, drops)
	}
	for range 3 {
		w.fold(<-w.queue)
	}
	if w.flush() {
		t.Fatal("flush succeeded with the database busy")
	}
	busy = false
	if !w.flush() || w.Stats().Incidents != 3 || w.Stats().Failures != 1 {
		t.Errorf("after the retry: %+v", w.Stats())
	}
}

// BenchmarkIncidentWriter measures how many incidents per second the
// writer commits (every attempt a new incident: the worst case for storage).
func BenchmarkIncidentWriter(b *testing.B) {
	s, _ := openNew(b)
	w := writerFor(s, WriterConfig{QueueSize: 1 << 20, Interval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t0 := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Record(attempt(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), "pornhub.com", "high", t0))
	}
	cancel()
	<-done
	b.StopTimer()
	if st := w.Stats(); st.Incidents != uint64(b.N) {
		b.Fatalf("committed %d of %d", st.Incidents, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "incidents/s")
}

func TestIncidentWriterPatterns(t *testing.T) {
	s, _ := openNew(t)
	var notified []Incident
	w := writerFor(s, WriterConfig{Interval: time.Hour, PatternCount: 3, PatternWindow: 30 * time.Minute, LowReviewCount: 4,
		Notify: func(in Incident) { notified = append(notified, in) }})
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	ad := attempt("10.0.0.1", "tracker.example", "high", t0)
	ad.Intent = IntentBackground
	w.fold(ad) // background: never part of a pattern
	w.fold(attempt("10.0.0.1", "a.example", "high", t0))
	w.fold(attempt("10.0.0.1", "b.example", "high", t0.Add(time.Minute)))
	w.fold(attempt("10.0.0.2", "c.example", "high", t0.Add(time.Minute)))   // another device
	w.fold(attempt("10.0.0.1", "a.example", "high", t0.Add(2*time.Minute))) // a repeat folds: not a new site
	if !w.flush() {
		t.Fatal("flush failed")
	}
	w.fold(attempt("10.0.0.1", "c.example", "critical", t0.Add(3*time.Minute))) // the third site: a pattern
	w.fold(attempt("10.0.0.1", "d.example", "high", t0.Add(4*time.Minute)))     // extends it
	w.fold(attempt("10.0.0.1", "e.example", "high", t0.Add(2*time.Hour)))       // long after: not part of it
	for i := range 4 {
		w.fold(attempt("10.0.0.3", "games.example", "low", t0.Add(time.Duration(i)*time.Second)))
	}
	if !w.flush() {
		t.Fatal("flush failed")
	}
	pats, err := s.Incidents(IncidentFilter{Client: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	var pattern *Incident
	for i := range pats {
		if pats[i].Rule == RulePattern {
			if pattern != nil {
				t.Fatalf("two patterns: %+v", pats)
			}
			pattern = &pats[i]
		}
	}
	if pattern == nil || pattern.Count != 4 || len(pattern.Related) != 4 || pattern.Severity != "critical" || !pattern.Review {
		t.Fatalf("pattern %+v", pattern)
	}
	for _, id := range pattern.Related {
		in, err := s.Incident(id)
		if err != nil || in.Client != "10.0.0.1" || in.Intent == IntentBackground || in.Rule == RulePattern {
			t.Errorf("related %d: %+v %v", id, in, err)
		}
	}
	low, _ := s.Incidents(IncidentFilter{Client: "10.0.0.3"})
	if len(low) != 1 || !low[0].Review || low[0].Count != 4 {
		t.Errorf("low incident repeated past the threshold: %+v", low)
	}
	var sawPattern bool
	for _, in := range notified {
		sawPattern = sawPattern || in.Rule == RulePattern
		if in.ID == 0 {
			t.Errorf("notified without an ID: %+v", in)
		}
	}
	if !sawPattern || len(notified) != 9 {
		t.Errorf("notified %d incidents (pattern %v), want every one created (9)", len(notified), sawPattern)
	}
}

// TestIncidentWriterAfterErasure: attempts after a subject's data was erased
// start a new incident; the erased history is never written back.
func TestIncidentWriterAfterErasure(t *testing.T) {
	s, _ := openNew(t)
	w := writerFor(s, WriterConfig{Interval: time.Hour})
	t0 := time.Now()
	for i := range 3 {
		w.fold(attempt("10.0.0.9", "pornhub.com", "high", t0.Add(time.Duration(i)*time.Second)))
	}
	if !w.flush() {
		t.Fatal("flush failed")
	}
	if _, err := s.SubjectErase("dsl", "subject access request", Subject{Client: "10.0.0.9"}); err != nil {
		t.Fatal(err)
	}
	w.fold(attempt("10.0.0.9", "pornhub.com", "high", t0.Add(5*time.Second))) // folds into the erased one
	w.flush()
	w.fold(attempt("10.0.0.9", "pornhub.com", "high", t0.Add(6*time.Second))) // a new incident
	w.flush()
	got, err := s.Incidents(IncidentFilter{Client: "10.0.0.9"})
	if err != nil || len(got) != 1 || got[0].Count != 1 || got[0].First.Before(t0.Add(6*time.Second).UTC().Truncate(time.Second)) {
		t.Errorf("after erasure: %+v, %v", got, err)
	}
}
