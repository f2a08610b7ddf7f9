package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// FollowerConfig says which lease file to follow.
type FollowerConfig struct {
	Path   string
	Format Format
	// Every is how often the file's modification time and size are checked;
	// zero means 5 seconds.
	Every time.Duration
}

// FollowerStatus is what a Follower has done so far.
type FollowerStatus struct {
	Path     string
	Format   Format
	Reads    uint64    // reads applied to the Table
	Failures uint64    // reads that failed; the last good data stayed in service
	LastRead time.Time // when the last good read was applied
	Leases   int       // leases in the last good read
	LastErr  error     // the error of the last read, nil when it was good
}

// Follower keeps a Table fed from one lease file. It polls the file's
// modification time and size rather than watching for events: simple, and
// robust to servers that rewrite the file and rename it into place. A file
// that fails to read or parse leaves the last good data in the Table and is
// logged and counted; it is read again when it changes.
type Follower struct {
	table *Table
	cfg   FollowerConfig
	parse Parser
	log   *slog.Logger
	ok    prometheus.Counter
	fail  prometheus.Counter

	mu     sync.Mutex // one poll at a time; guards the fields below
	seen   os.FileInfo
	failed bool // seen is the stamp of a read that failed
	status FollowerStatus
}

// refreshEvery re-reads an unchanged file now and then, in case two writes
// fell within the file system's timestamp granularity with the same size.
const refreshEvery = 60

// NewFollower returns a Follower of one lease file. Metrics are registered
// on reg (hedgerow_identity_lease_reads_total); several Followers may share
// one registry. A nil log or reg discards logs or metrics.
func NewFollower(t *Table, cfg FollowerConfig, log *slog.Logger, reg prometheus.Registerer) (*Follower, error) {
	parse, err := cfg.Format.Parser()
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", cfg.Path, err)
	}
	if cfg.Path == "" {
		return nil, errors.New("follow a lease file: no path given")
	}
	if cfg.Every <= 0 {
		cfg.Every = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reads, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hedgerow_identity_lease_reads_total",
		Help: "Lease file reads, by format and result (ok, or error: the last good data stayed in service).",
	}, []string{"format", "result"}))
	if err != nil {
		return nil, err
	}
	return &Follower{
		table: t, cfg: cfg, parse: parse, log: log.With("lease_file", cfg.Path, "format", string(cfg.Format)),
		ok:     reads.WithLabelValues(string(cfg.Format), "ok"),
		fail:   reads.WithLabelValues(string(cfg.Format), "error"),
		status: FollowerStatus{Path: cfg.Path, Format: cfg.Format},
	}, nil
}

// Run reads the file at once and then whenever it changes, until ctx ends.
func (f *Follower) Run(ctx context.Context) error {
	_ = f.Poll() // logged and counted by Poll; keep following
	tick := time.NewTicker(f.cfg.Every)
	defer tick.Stop()
	for polls := 1; ; polls++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if polls%refreshEvery == 0 {
			f.forget()
		}
		_ = f.Poll()
	}
}

// forget makes the next Poll read the file even if it looks unchanged.
func (f *Follower) forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.failed {
		f.seen = nil
	}
}

// Poll reads the file if it changed since the last read, and applies it to
// the Table. It returns the error of a read that failed (already logged and
// counted); nil when the file was unchanged or applied.
func (f *Follower) Poll() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	before, err := os.Stat(f.cfg.Path)
	if err != nil {
		if f.failed && f.seen == nil {
			return nil // still missing: reported when it went
		}
		f.seen, f.failed = nil, true
		return f.failure(fmt.Errorf("lease file: %w", err))
	}
	if same(f.seen, before) {
		return nil
	}
	leases, err := f.read()
	if err != nil {
		f.seen, f.failed = before, true
		return f.failure(err)
	}
	after, err := os.Stat(f.cfg.Path)
	if err != nil || !same(before, after) {
		return nil // written while read: read again at the next poll
	}
	f.table.ApplyLeases(LeaseRead{Origin: f.cfg.Path, Format: f.cfg.Format, Leases: leases, At: before.ModTime()})
	f.seen, f.failed = before, false
	f.ok.Inc()
	f.status.Reads++
	f.status.LastRead = time.Now()
	f.status.Leases = len(leases)
	if f.status.LastErr != nil {
		f.log.Info("lease file reads again", "leases", len(leases))
	}
	f.status.LastErr = nil
	return nil
}

func (f *Follower) read() ([]Lease, error) {
	file, err := os.Open(f.cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("lease file: %w", err)
	}
	defer file.Close()
	return f.parse(file, f.cfg.Path)
}

// failure records a failed read. Callers hold mu.
func (f *Follower) failure(err error) error {
	f.fail.Inc()
	f.status.Failures++
	f.status.LastErr = err
	f.log.Error("lease file not read; the leases read before stay in service", "err", err)
	return err
}

// Status reports what the Follower has done so far.
func (f *Follower) Status() FollowerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// same reports whether two stats are of the same, unchanged file.
func same(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}
