package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retention is how long incident data is kept.
//
// Incident records and block-page reports are personal data about children.
// Under UK data-protection law (UK GDPR Article 5(1)(e), storage limitation)
// the school may keep them no longer than it needs them for safeguarding,
// and its retention schedule should say how long that is. Two tiers follow
// the severity of what was seen: attempts at sites that are merely
// unsuitable for the age group, and monitored searches, matter for a short
// while (a pattern shows within weeks); harmful and illegal attempts matter
// for the school year and beyond. Escalated incidents are part of a
// safeguarding case and are kept, whatever their age, until the safeguarding
// lead releases them by changing their state.
type Retention struct {
	Low       time.Duration // attempts of low severity and monitored searches (default 30 days)
	Incidents time.Duration // everything else, and block-page reports (default 365 days)
	// Escalated incidents are kept until released (state changed from
	// escalated), whatever their age.
}

// DefaultRetention returns the documented defaults: 30 days for
// low-severity attempts and monitored searches, 365 days for the rest.
func DefaultRetention() Retention {
	return Retention{Low: 30 * 24 * time.Hour, Incidents: 365 * 24 * time.Hour}
}

// minRetention guards against a unit slip ("30m" for thirty days) emptying
// the safeguarding record.
const minRetention = 24 * time.Hour

// DefaultPurgeBatch is how many records one purge transaction deletes at
// most, so the incident writer never waits long for the database.
const DefaultPurgeBatch = 1000

// RetentionActor is the audit actor of a purge that names no other.
const RetentionActor = "hedgerow retention"

// withDefaults fills zero tiers with the defaults and checks the rest.
func (r Retention) withDefaults() (Retention, error) {
	d := DefaultRetention()
	if r.Low == 0 {
		r.Low = d.Low
	}
	if r.Incidents == 0 {
		r.Incidents = d.Incidents
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"low-severity retention", r.Low}, {"incident retention", r.Incidents}} {
		if f.v < minRetention {
			return r, fmt.Errorf("%s of %v: want at least one day (24h)", f.name, f.v)
		}
	}
	return r, nil
}

// PurgeResult counts what a purge (or an erasure) deleted.
type PurgeResult struct {
	Incidents int `json:"incidents"`
	Reports   int `json:"reports"`
}

// incidentAge is the part of an incident record retention looks at.
type incidentAge struct {
	Last     time.Time `json:"last"`
	Severity string    `json:"severity"`
	Blocked  bool      `json:"blocked"`
	State    string    `json:"state"`
}

// Purge deletes the incidents whose last attempt is older than their tier
// allows (low-severity attempts and monitored searches: r.Low; the rest:
// r.Incidents; escalated incidents never) and the block-page reports older
// than r.Incidents. Zero tiers take the defaults; a tier under a day is
// refused. now is the clock the ages are measured against.
//
// The records are found in read transactions, which never block the
// incident writer, and deleted in write transactions of at most batch
// deletions each (DefaultPurgeBatch when batch <= 0); each deletion
// transaction re-checks its records (a fold or a review may have changed
// one since it was read) and carries its own audit record
// ("retention-purge", with the counts it deleted), so nothing is deleted
// unaudited even if the purge stops half way. A purge that deletes nothing
// writes no audit record. actor "" is RetentionActor.
//
// bbolt keeps deleted bytes in free pages: run Compact afterwards so the
// deleted personal data is gone from the file.
func (s *Store) Purge(actor string, r Retention, now time.Time, batch int) (PurgeResult, error) {
	var res PurgeResult
	r, err := r.withDefaults()
	if err != nil {
		return res, fmt.Errorf("purge: %w", err)
	}
	if actor == "" {
		actor = RetentionActor
	}
	lowBefore, incBefore := now.Add(-r.Low).UTC(), now.Add(-r.Incidents).UTC()
	reason := fmt.Sprintf("retention: low-severity attempts and monitored searches older than %s (last before %s), "+
		"incidents and reports older than %s (before %s); escalated incidents kept",
		retentionDays(r.Low), lowBefore.Format(time.RFC3339), retentionDays(r.Incidents), incBefore.Format(time.RFC3339))

	res.Incidents, err = s.deleteWhere(bIncidents, batch, func(k, v []byte) (bool, error) {
		var in incidentAge
		if err := json.Unmarshal(v, &in); err != nil {
			return false, fmt.Errorf("incident %d: damaged record: %w", reportID(k), err)
		}
		if in.State == StateEscalated {
			return false, nil
		}
		if in.Severity == "low" || !in.Blocked {
			return in.Last.Before(lowBefore), nil
		}
		return in.Last.Before(incBefore), nil
	}, func(tx *bolt.Tx, n int) error {
		return s.audit(tx, actor, "retention-purge", fmt.Sprintf("%d incidents", n), nil, PurgeResult{Incidents: n}, reason)
	})
	if err != nil {
		return res, fmt.Errorf("purge incidents (%d deleted before the error): %w", res.Incidents, err)
	}
	res.Reports, err = s.deleteWhere(bReports, batch, func(k, v []byte) (bool, error) {
		var r struct {
			Time time.Time `json:"time"`
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return false, fmt.Errorf("report %d: damaged record: %w", reportID(k), err)
		}
		return r.Time.Before(incBefore), nil
	}, func(tx *bolt.Tx, n int) error {
		return s.audit(tx, actor, "retention-purge", fmt.Sprintf("%d reports", n), nil, PurgeResult{Reports: n}, reason)
	})
	if err != nil {
		return res, fmt.Errorf("purge reports (%d incidents and %d reports deleted before the error): %w", res.Incidents, res.Reports, err)
	}
	return res, nil
}

// retentionDays formats a retention period, in days when it is a whole number of them.
func retentionDays(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// deleteWhere deletes the records of a bucket that match selects, in write
// transactions of at most batch deletions, each audited by audit with the
// number it deleted. Candidates are found in read transactions and checked
// again before deletion. It returns how many it deleted.
func (s *Store) deleteWhere(bucket []byte, batch int, match func(k, v []byte) (bool, error), audit func(tx *bolt.Tx, n int) error) (int, error) {
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	total := 0
	var after []byte // the last key scanned
	for {
		var keys [][]byte
		done := false
		err := s.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucket)
			if b == nil {
				done = true
				return nil
			}
			c := b.Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && string(k) == string(after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(keys) < batch; k, v = c.Next() {
				after = append(after[:0:0], k...)
				if v == nil { // a nested bucket: none are expected
					continue
				}
				ok, err := match(k, v)
				if err != nil {
					return err
				}
				if ok {
					keys = append(keys, after)
				}
			}
			done = k == nil
			return nil
		})
		if err != nil {
			return total, err
		}
		if len(keys) > 0 {
			n := 0
			err := s.db.Update(func(tx *bolt.Tx) error {
				n = 0
				b := tx.Bucket(bucket)
				for _, k := range keys {
					v := b.Get(k)
					if v == nil {
						continue
					}
					ok, err := match(k, v)
					if err != nil {
						return err
					}
					if !ok {
						continue
					}
					if err := b.Delete(k); err != nil {
						return err
					}
					n++
				}
				if n == 0 {
					return nil
				}
				return audit(tx, n)
			})
			if err != nil {
				return total, err
			}
			total += n
		}
		if done {
			return total, nil
		}
	}
}

// compactTxSize bounds one transaction of the copy Compact makes, so a large
// database is copied in steps rather than held in memory at once.
const compactTxSize = 16 << 20

// compactSuffix names the temporary copy next to the database.
const compactSuffix = ".compact-"

// Compact rewrites the database file so that deleted records are gone from
// it: bbolt never shrinks its file and keeps deleted bytes in free pages, so
// after Purge or SubjectErase the deleted personal data could still be read
// from the file until Compact has run.
//
// It copies every bucket (with its sequence) into a new file next to the
// database (bbolt.Compact into "<name>.compact-*", created 0600), checks
// the copy's consistency, fsyncs it, renames it over the original and
// fsyncs the directory, all while this Store holds the database's exclusive
// lock, and then reopens the Store on the new file: on success the Store
// stays open and usable. The disk briefly needs room for a second copy of
// the live data (about the size of what was kept); if the copy fails
// (a full disk, say) the temporary file is removed and the database is
// left as it was, still open.
//
// The old file is retired before the lock is released: its meta pages are
// overwritten, so a process that opened it before the rename and was
// waiting for the lock (hedgerow serve's incident writer opens the database
// for each batch) gets an "invalid database" error and retries on the new
// file, instead of writing to a file that is no longer the database.
//
// If reopening fails after the swap, the compacted file is in place but the
// Store is closed: its methods return bbolt's "database not open" error and
// the caller should Close it and Open the path again.
//
// Compact must not run concurrently with any other use of the same Store.
// It refuses a Store opened read-only.
func (s *Store) Compact() error {
	if s.db.IsReadOnly() {
		return fmt.Errorf("compact %s: the database is open read-only", s.path)
	}
	dir, base := filepath.Dir(s.path), filepath.Base(s.path)
	// Copies left by a compaction that was killed: only the lock holder
	// compacts, so they are nobody's work in progress.
	if old, _ := filepath.Glob(filepath.Join(dir, base+compactSuffix+"*")); len(old) > 0 {
		for _, p := range old {
			_ = os.Remove(p)
		}
	}
	f, err := os.CreateTemp(dir, base+compactSuffix+"*")
	if err != nil {
		return fmt.Errorf("compact %s: %w", s.path, err)
	}
	tmp := f.Name()
	f.Close()
	swapped := false
	defer func() {
		if !swapped {
			os.Remove(tmp)
		}
	}()
	if err := s.copyTo(tmp); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("compact %s: not enough disk space for the compacted copy (it needs up to the size of the database file); the database is unchanged: %w", s.path, err)
		}
		return fmt.Errorf("compact %s: the database is unchanged: %w", s.path, err)
	}

	// Hold the current file open to retire it once it has been replaced.
	old, err := os.OpenFile(s.path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("compact %s: %w", s.path, err)
	}
	defer old.Close()
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("compact %s: replace with the compacted copy: %w; the database is unchanged", s.path, err)
	}
	swapped = true
	// From here on the Store must move to the new file whatever else fails:
	// the old one is no longer the database. Later problems are reported
	// once it has moved.
	var later []error
	if err := retentionSyncDir(dir); err != nil {
		later = append(later, fmt.Errorf("fsync the directory (a power cut now could bring back the old file): %w", err))
	}
	// Retire the old file: zero both meta pages (0 and 1) so a waiter that
	// opened it before the rename cannot use it. This Store's own mapping of
	// it is not read again.
	if err := retireFile(old); err != nil {
		later = append(later, fmt.Errorf("retire the old file: %w", err))
	}
	if err := s.db.Close(); err != nil {
		later = append(later, fmt.Errorf("close the old file: %w", err))
	}
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{
		Timeout:         10 * time.Second,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: 1 << 30,
	})
	if err != nil {
		return fmt.Errorf("compact %s: the compacted database is in place, but reopening it failed (this store is closed; open the database again): %w",
			s.path, errors.Join(append(later, err)...))
	}
	s.db = db
	if len(later) > 0 {
		return fmt.Errorf("compact %s: compacted and reopened, but: %w", s.path, errors.Join(later...))
	}
	return nil
}

// copyTo writes a compacted, checked and fsynced copy of the database to
// path, an empty file.
func (s *Store) copyTo(path string) error {
	dst, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return err
	}
	if err := bolt.Compact(dst, s.db, compactTxSize); err != nil {
		dst.Close()
		return err
	}
	err = dst.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("the compacted copy failed its consistency check: %w", errors.Join(errs...))
		}
		return nil
	})
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// retentionSyncDir makes a rename in dir durable.
func retentionSyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}
