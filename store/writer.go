package store

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// WriterConfig tunes the incident writer.
type WriterConfig struct {
	QueueSize  int           // attempts waiting at most; more are dropped and counted (default 100,000)
	BatchSize  int           // attempts per commit at most (default 5,000)
	Interval   time.Duration // longest an attempt waits for its commit (default 1 s): what a crash can lose
	FoldWindow time.Duration // repeats of one client at one host within this fold into one incident (default 10 min)

	// A pattern: PatternCount incidents of high or critical severity (on
	// different sites, asked for by the pupil) by one device or user within
	// PatternWindow raise a pattern incident for review (defaults 5 in 30 min).
	PatternCount  int
	PatternWindow time.Duration
	// LowReviewCount: a low-severity incident (games, social networks) goes
	// to the review queue once it holds this many attempts (default 50).
	LowReviewCount int

	// Notify, if set, is called after each commit with every incident it
	// created (patterns included): the alert dispatcher's entry point. It
	// must not block.
	Notify func(Incident)

	// Context, if set, is the window of sites devices reached; new high and
	// critical incidents carry what it holds for their device.
	Context *ContextWindow
}

// IncidentWriter is the Recorder the servers share: a bounded queue in front
// of one goroutine that folds repeats and commits incidents in batches, by
// size or time, whichever comes first. Record never waits: a full queue
// drops the attempt and counts it.
type IncidentWriter struct {
	cfg    WriterConfig
	open   func(func(*Store) error) error
	log    *slog.Logger
	onDrop func(total uint64)
	queue  chan Attempt
	now    func() time.Time

	dropped   atomic.Uint64
	attempts  atomic.Uint64 // attempts committed
	incidents atomic.Uint64 // incidents created
	failures  atomic.Uint64 // commits that failed (and were retried)

	// Owned by Run's goroutine.
	recent   map[foldKey]*Incident
	dirty    map[*Incident]bool
	serious  map[string][]*Incident // by subject (user, else device): recent high and critical incidents
	patterns map[string]*Incident   // by subject: the open pattern incident
}

type foldKey struct {
	// The device (name and MAC) is part of the key: an address whose lease
	// moved to another laptop is another pupil's incident.
	client, device, user, host, term string
	blocked                          bool
}

// NewIncidentWriter returns a writer that commits through open, which runs
// its function with the store open for writing (the database is opened for
// each batch, so the CLI keeps working beside the servers). onDrop, if not
// nil, is called with the running total of dropped attempts.
func NewIncidentWriter(cfg WriterConfig, open func(func(*Store) error) error, log *slog.Logger, onDrop func(total uint64)) *IncidentWriter {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 100_000
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 5_000
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.FoldWindow <= 0 {
		cfg.FoldWindow = 10 * time.Minute
	}
	if cfg.PatternCount <= 0 {
		cfg.PatternCount = 5
	}
	if cfg.PatternWindow <= 0 {
		cfg.PatternWindow = 30 * time.Minute
	}
	if cfg.LowReviewCount <= 0 {
		cfg.LowReviewCount = 50
	}
	return &IncidentWriter{cfg: cfg, open: open, log: log, onDrop: onDrop, queue: make(chan Attempt, cfg.QueueSize),
		now: time.Now, recent: map[foldKey]*Incident{}, dirty: map[*Incident]bool{},
		serious: map[string][]*Incident{}, patterns: map[string]*Incident{}}
}

// Record queues an attempt without waiting.
func (w *IncidentWriter) Record(a Attempt) {
	select {
	case w.queue <- a:
	default:
		n := w.dropped.Add(1)
		if w.onDrop != nil {
			w.onDrop(n)
		}
	}
}

// WriterStats are the writer's counters.
type WriterStats struct {
	Queued    uint64 `json:"queued"`    // attempts waiting now
	Dropped   uint64 `json:"dropped"`   // attempts lost to a full queue
	Attempts  uint64 `json:"attempts"`  // attempts committed
	Incidents uint64 `json:"incidents"` // incidents created
	Failures  uint64 `json:"failures"`  // commits that failed and were retried
}

// Visited hands a site a device reached to the context window, if the
// writer keeps one; like Record, it never waits on storage.
func (w *IncidentWriter) Visited(client netip.Addr, host string, at time.Time) {
	if w.cfg.Context != nil {
		w.cfg.Context.Visited(client, host, at)
	}
}

// Stats returns the writer's counters.
func (w *IncidentWriter) Stats() WriterStats {
	return WriterStats{Queued: uint64(len(w.queue)), Dropped: w.dropped.Load(), Attempts: w.attempts.Load(),
		Incidents: w.incidents.Load(), Failures: w.failures.Load()}
}

// Run commits queued attempts until ctx is done, then drains the queue and
// commits what is left, so a graceful stop loses nothing. Stop the servers
// before cancelling ctx: attempts recorded after Run returns are not written.
func (w *IncidentWriter) Run(ctx context.Context) {
	tick := time.NewTicker(w.cfg.Interval)
	defer tick.Stop()
	n := 0
	for {
		select {
		case a := <-w.queue:
			w.fold(a)
			if n++; n >= w.cfg.BatchSize {
				w.flush()
				n = 0
			}
		case <-tick.C:
			w.flush()
			n = 0
		case <-ctx.Done():
			for {
				select {
				case a := <-w.queue:
					w.fold(a)
					continue
				default:
				}
				break
			}
			// A last try, and another if the database was busy.
			for i := 0; i < 5 && len(w.dirty) > 0; i++ {
				if !w.flush() {
					time.Sleep(time.Second)
				}
			}
			if len(w.dirty) > 0 {
				w.log.Error("incidents not written at shutdown", "incidents", len(w.dirty))
			}
			return
		}
	}
}

// fold adds an attempt to the incident of the same client, user, host (and
// search term) within the fold window, or starts a new one.
func (w *IncidentWriter) fold(a Attempt) {
	k := foldKey{client: a.Client.String(), device: a.Device + "/" + a.MAC, user: a.User, host: a.Host, term: a.SearchTerm, blocked: a.Blocked}
	// Attempts reach the queue from many goroutines, so their times are
	// only roughly in order: one a little older than the incident still folds.
	if in, ok := w.recent[k]; ok && a.Time.Sub(in.Last) <= w.cfg.FoldWindow && in.First.Sub(a.Time) <= w.cfg.FoldWindow {
		in.Count++
		if t := a.Time.UTC(); t.After(in.Last) {
			in.Last = t
		} else if t.Before(in.First) {
			in.First = t
		}
		in.Review = in.Review || NeedsReview(a)
		if a.Intent == IntentNavigate {
			in.Intent = IntentNavigate
		}
		if in.URL == "" {
			in.URL = a.URL
		}
		if in.Severity == "low" && in.Count >= w.cfg.LowReviewCount {
			in.Review = true // unsuitable, but asked for again and again
		}
		w.dirty[in] = true
		return
	}
	in := &Incident{First: a.Time.UTC(), Last: a.Time.UTC(), Count: 1, Channel: a.Channel, Client: a.Client.String(),
		User: a.User, Device: a.Device, MAC: a.MAC, Identified: a.Identified, Group: a.Group, Host: a.Host, URL: a.URL, SearchTerm: a.SearchTerm, Category: a.Category,
		Severity: a.Severity, Rule: a.Rule, Blocked: a.Blocked, Intent: a.Intent, Review: NeedsReview(a), State: StateNew}
	if w.cfg.Context != nil && (a.Severity == "critical" || a.Severity == "high") {
		in.Context = w.cfg.Context.Before(a.Client, a.Time)
	}
	w.recent[k] = in
	w.dirty[in] = true
	if NeedsReview(a) {
		w.notePattern(in)
	}
}

// notePattern counts a new high or critical incident towards its subject's
// pattern, and raises (or extends) the pattern incident at the threshold.
// Background requests never get here: NeedsReview leaves them out.
func (w *IncidentWriter) notePattern(in *Incident) {
	subject := in.User
	if subject == "" {
		subject = in.Client
	}
	cutoff := in.Last.Add(-w.cfg.PatternWindow)
	recent := w.serious[subject][:0]
	for _, r := range w.serious[subject] {
		if !r.Last.Before(cutoff) {
			recent = append(recent, r)
		}
	}
	recent = append(recent, in)
	w.serious[subject] = recent
	if p, ok := w.patterns[subject]; ok && !p.Last.Before(cutoff) {
		p.Count++
		p.Last = in.Last
		p.members = append(p.members, in)
		if in.Severity == "critical" {
			p.Severity = "critical"
		}
		w.dirty[p] = true
		return
	}
	if len(recent) < w.cfg.PatternCount {
		return
	}
	p := &Incident{First: recent[0].First, Last: in.Last, Count: len(recent), Channel: in.Channel, Client: in.Client,
		User: in.User, Group: in.Group, Category: in.Category, Severity: "high", Rule: RulePattern, Blocked: true,
		Intent: IntentNavigate, Review: true, State: StateNew, members: slices.Clone(recent)}
	for _, r := range recent {
		if r.Severity == "critical" {
			p.Severity = "critical"
		}
	}
	w.patterns[subject] = p
	w.dirty[p] = true
}

// flush commits the changed incidents in one transaction (patterns in a
// second, once the incidents they name have their IDs); on failure they stay
// dirty for the next try. It also forgets what is past the windows.
func (w *IncidentWriter) flush() bool {
	if len(w.dirty) > 0 {
		var plain, pats []*Incident
		for in := range w.dirty {
			if in.Rule == RulePattern {
				pats = append(pats, in)
			} else {
				plain = append(plain, in)
			}
		}
		// IDs follow the time of the first attempt, so the store reads in order.
		byFirst := func(a, b *Incident) int { return cmp.Or(a.First.Compare(b.First), strings.Compare(a.Host, b.Host)) }
		slices.SortFunc(plain, byFirst)
		slices.SortFunc(pats, byFirst)
		var created []Incident
		save := func(s *Store, ptrs []*Incident) error {
			batch := make([]Incident, len(ptrs))
			for i, in := range ptrs {
				if in.Rule == RulePattern {
					in.Related = in.Related[:0]
					for _, m := range in.members {
						in.Related = append(in.Related, m.ID)
					}
				}
				batch[i] = *in
			}
			if err := s.SaveIncidents(batch); err != nil {
				return err
			}
			for i, in := range ptrs {
				if in.ID == 0 {
					created = append(created, batch[i])
					w.incidents.Add(1)
				}
				if in.Rule != RulePattern {
					w.attempts.Add(uint64(batch[i].Count - in.saved))
				}
				in.ID, in.saved = batch[i].ID, batch[i].Count
				delete(w.dirty, in)
				if batch[i].Erased {
					w.forget(in)
				}
			}
			return nil
		}
		err := w.open(func(s *Store) error {
			if err := save(s, plain); err != nil {
				return err
			}
			return save(s, pats)
		})
		if w.cfg.Notify != nil {
			for _, in := range created {
				w.cfg.Notify(in)
			}
		}
		if err != nil {
			w.failures.Add(1)
			w.log.Warn("incidents not written yet; will retry", "incidents", len(w.dirty), "err", err)
			return false
		}
	}
	now := w.now()
	for k, in := range w.recent {
		if in.Last.Before(now.Add(-w.cfg.FoldWindow)) && !w.dirty[in] {
			delete(w.recent, k)
		}
	}
	for subject, list := range w.serious {
		if len(list) == 0 || list[len(list)-1].Last.Before(now.Add(-w.cfg.PatternWindow)) {
			delete(w.serious, subject)
		}
	}
	for subject, p := range w.patterns {
		if p.Last.Before(now.Add(-w.cfg.PatternWindow)) && !w.dirty[p] {
			delete(w.patterns, subject)
		}
	}
	return true
}

// forget drops an incident whose record was erased, so later attempts start
// a new one instead of carrying the erased history back.
func (w *IncidentWriter) forget(in *Incident) {
	for k, r := range w.recent {
		if r == in {
			delete(w.recent, k)
		}
	}
	for subject, p := range w.patterns {
		if p == in {
			delete(w.patterns, subject)
		}
	}
}
