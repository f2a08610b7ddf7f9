package store

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// WriterConfig tunes the incident writer.
type WriterConfig struct {
	QueueSize  int           // attempts waiting at most; more are dropped and counted (default 100,000)
	BatchSize  int           // attempts per commit at most (default 5,000)
	Interval   time.Duration // longest an attempt waits for its commit (default 1 s): what a crash can lose
	FoldWindow time.Duration // repeats of one client at one host within this fold into one incident (default 10 min)
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
	recent map[foldKey]*Incident
	dirty  map[*Incident]bool
}

type foldKey struct {
	client, user, host, term string
	blocked                  bool
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
	return &IncidentWriter{cfg: cfg, open: open, log: log, onDrop: onDrop, queue: make(chan Attempt, cfg.QueueSize),
		now: time.Now, recent: map[foldKey]*Incident{}, dirty: map[*Incident]bool{}}
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
	Queued, Dropped, Attempts, Incidents, Failures uint64
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
	k := foldKey{client: a.Client.String(), user: a.User, host: a.Host, term: a.SearchTerm, blocked: a.Blocked}
	if in, ok := w.recent[k]; ok && a.Time.Sub(in.Last) <= w.cfg.FoldWindow && !a.Time.Before(in.First) {
		in.Count++
		in.Last = a.Time.UTC()
		in.Review = in.Review || NeedsReview(a)
		if a.Intent == IntentNavigate {
			in.Intent = IntentNavigate
		}
		if in.URL == "" {
			in.URL = a.URL
		}
		w.dirty[in] = true
		return
	}
	in := &Incident{First: a.Time.UTC(), Last: a.Time.UTC(), Count: 1, Channel: a.Channel, Client: a.Client.String(),
		User: a.User, Group: a.Group, Host: a.Host, URL: a.URL, SearchTerm: a.SearchTerm, Category: a.Category,
		Severity: a.Severity, Rule: a.Rule, Blocked: a.Blocked, Intent: a.Intent, Review: NeedsReview(a), State: StateNew}
	w.recent[k] = in
	w.dirty[in] = true
}

// flush commits the changed incidents in one transaction; on failure they
// stay dirty for the next try. It also forgets incidents past the window.
func (w *IncidentWriter) flush() bool {
	if len(w.dirty) > 0 {
		batch := make([]Incident, 0, len(w.dirty))
		ptrs := make([]*Incident, 0, len(w.dirty))
		attempts := 0
		for in := range w.dirty {
			batch = append(batch, *in)
			ptrs = append(ptrs, in)
		}
		created := 0
		err := w.open(func(s *Store) error { return s.SaveIncidents(batch) })
		if err != nil {
			w.failures.Add(1)
			w.log.Warn("incidents not written yet; will retry", "incidents", len(batch), "err", err)
			return false
		}
		for i, in := range ptrs {
			if in.ID == 0 {
				created++
			}
			attempts += batch[i].Count - in.saved
			in.ID = batch[i].ID
			in.saved = batch[i].Count
		}
		w.attempts.Add(uint64(attempts))
		w.incidents.Add(uint64(created))
		clear(w.dirty)
	}
	cutoff := w.now().Add(-w.cfg.FoldWindow)
	for k, in := range w.recent {
		if in.Last.Before(cutoff) && !w.dirty[in] {
			delete(w.recent, k)
		}
	}
	return true
}
