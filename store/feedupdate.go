package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The results of a feed update check, as FeedInfo.LastResult records them.
const (
	FeedUpdated     = "updated"      // the source changed and replaced the entries
	FeedNotModified = "not-modified" // the source had not changed; entries untouched
	FeedFailed      = "failed"       // download or parse failed; the old entries stay
	FeedRefused     = "refused"      // the sanity check refused the new copy; the old entries stay
)

// FeedResults lists every result, in the order reports show them.
func FeedResults() []string {
	return []string{FeedUpdated, FeedNotModified, FeedFailed, FeedRefused}
}

// StarterFormat is the Format of the embedded starter feed, which only a
// new hedgerow release changes.
const StarterFormat = "starter"

// DefaultMaxRemoval is the largest fraction of a feed an update may remove
// unless forced: a list that suddenly lost most of its entries is far more
// likely a broken download than a cleaned-up list.
const DefaultMaxRemoval = 0.5

// ErrFeedChanged is returned by UpdateFeed when the feed was imported again
// (or updated by another process) after the update read it: the newer
// import wins and the update is dropped.
var ErrFeedChanged = errors.New("the feed was imported again while this update ran; this update was dropped")

// RefusedError is UpdateFeed's refusal of a copy that would remove more of
// the feed than allowed. Nothing was written.
type RefusedError struct {
	Feed       string
	Change     FeedChange // what the update would have done
	MaxRemoval float64
}

func (e *RefusedError) Error() string {
	old := e.Change.Kept + e.Change.Removed
	return fmt.Sprintf("update of feed %s would remove %d of its %d entries (%.0f%%, more than the %.0f%% allowed) and add %d; "+
		"the old entries stay (check the source, then run hedgerow lists update %s --force if the change is real)",
		e.Feed, e.Change.Removed, old, 100*float64(e.Change.Removed)/float64(max(old, 1)), 100*e.MaxRemoval, e.Change.Added, e.Feed)
}

// LastSuccess is when the feed's entries were last known to match its
// source: its import, or the last check that updated it or found it
// unchanged.
func (i FeedInfo) LastSuccess() time.Time {
	if i.SucceededAt.After(i.ImportedAt) {
		return i.SucceededAt
	}
	return i.ImportedAt
}

// Updatable says whether a scheduled update may touch the feed: never the
// embedded starter lists, nor anything without a source to read again.
func (i FeedInfo) Updatable() error {
	switch {
	case i.Format == StarterFormat:
		return fmt.Errorf("feed %s holds the starter lists embedded in hedgerow; they change only with a new release", i.Name)
	case i.Name == LocalFeed:
		return fmt.Errorf("feed %s holds the entries added by hand (hedgerow lists add); there is nothing to update it from", i.Name)
	case strings.TrimSpace(i.Source) == "":
		return fmt.Errorf("feed %s has no source to update from; import it again", i.Name)
	}
	return nil
}

// FeedUpdate is what UpdateFeed needs besides the new entries.
type FeedUpdate struct {
	// Based is the ImportedAt of the feed the update started from; if the
	// feed has been imported since, UpdateFeed returns ErrFeedChanged.
	Based time.Time
	// MaxRemoval is the largest fraction (0 to 1) of the old entries the
	// update may remove; 0 means DefaultMaxRemoval. Force skips the check.
	MaxRemoval float64
	Force      bool
	// The validators of the copy the entries come from, kept for the next
	// check.
	ETag, LastModified, SourceStamp string
}

// UpdateFeed replaces an existing feed's entries with a fresh copy of its
// source, in one transaction with its audit record ("feed-update"). The
// feed keeps its name, source, format, category, reason and lock; f brings
// the entries and Info.Malformed. Unless u.Force, an update that would
// remove more than u.MaxRemoval of the entries is refused with a
// *RefusedError and nothing is written: record that with RecordFeedCheck.
func (s *Store) UpdateFeed(actor string, f *Feed, u FeedUpdate) (FeedChange, error) {
	maxRemoval := u.MaxRemoval
	if maxRemoval == 0 {
		maxRemoval = DefaultMaxRemoval
	}
	if maxRemoval < 0 || maxRemoval > 1 {
		return FeedChange{}, fmt.Errorf("update feed %s: maximum removal %v; want a fraction from 0 to 1", f.Info.Name, u.MaxRemoval)
	}
	name := f.Info.Name
	var ch FeedChange
	var info FeedInfo
	err := s.db.Update(func(tx *bolt.Tx) error {
		fb := tx.Bucket(bFeeds).Bucket([]byte(name))
		if fb == nil {
			return fmt.Errorf("update feed %q: no such feed (it was removed?)", name)
		}
		old, err := readFeedInfo(fb)
		if err != nil {
			return fmt.Errorf("feed %s: %w", name, err)
		}
		if !old.ImportedAt.Equal(u.Based) {
			return fmt.Errorf("update feed %s: %w", name, ErrFeedChanged)
		}
		now := s.now().UTC()
		next := old
		next.Malformed = f.Info.Malformed
		next.ETag, next.LastModified, next.SourceStamp = u.ETag, u.LastModified, u.SourceStamp
		next.CheckedAt, next.SucceededAt, next.UpdatedAt = now, now, now
		next.LastResult, next.LastError, next.Failures = FeedUpdated, "", 0
		f.Info = next
		f.action = "feed-update"
		f.guard = func(c FeedChange) error {
			c.Added = f.Len() - c.Kept
			if !u.Force && c.Removed > 0 && float64(c.Removed) > maxRemoval*float64(c.Kept+c.Removed) {
				return &RefusedError{Feed: name, Change: c, MaxRemoval: maxRemoval}
			}
			return nil
		}
		ch, info, err = s.replaceFeedTx(tx, actor, f)
		return err
	})
	f.action, f.guard = "", nil
	if err == nil {
		f.Info = info
	}
	return ch, err
}

// RecordFeedCheck records a check of a feed that left its entries as they
// were: result is FeedNotModified, FeedFailed or FeedRefused, detail says
// why for the last two. It is audited ("feed-check") in the same
// transaction.
func (s *Store) RecordFeedCheck(actor, name, result, detail string) error {
	switch result {
	case FeedNotModified, FeedFailed, FeedRefused:
	default:
		return fmt.Errorf("record check of feed %s: result %q; want %s, %s or %s", name, result, FeedNotModified, FeedFailed, FeedRefused)
	}
	if result != FeedNotModified && strings.TrimSpace(detail) == "" {
		return fmt.Errorf("record check of feed %s: a %s check needs the reason", name, result)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		fb := tx.Bucket(bFeeds).Bucket([]byte(name))
		if fb == nil {
			return fmt.Errorf("record check of feed %q: no such feed", name)
		}
		old, err := readFeedInfo(fb)
		if err != nil {
			return fmt.Errorf("feed %s: %w", name, err)
		}
		next := old
		next.CheckedAt = s.now().UTC()
		next.LastResult, next.LastError = result, detail
		if result == FeedNotModified {
			next.SucceededAt, next.Failures = next.CheckedAt, 0
		} else {
			next.Failures++
		}
		raw, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if err := fb.Put([]byte("info"), raw); err != nil {
			return err
		}
		reason := "update check: " + result
		if detail != "" {
			reason += ": " + detail
		}
		return s.audit(tx, actor, "feed-check", "feed "+name, checkFields(old), checkFields(next), reason)
	})
}

// checkFields is the part of a feed's record a check changes, for the
// audit trail: the entries' counts and categories did not change.
func checkFields(i FeedInfo) any {
	return struct {
		CheckedAt   time.Time `json:"checked_at,omitzero"`
		SucceededAt time.Time `json:"succeeded_at,omitzero"`
		LastResult  string    `json:"last_result,omitempty"`
		LastError   string    `json:"last_error,omitempty"`
		Failures    int       `json:"failures,omitempty"`
	}{i.CheckedAt, i.SucceededAt, i.LastResult, i.LastError, i.Failures}
}

// FeedByName returns one feed's record.
func (s *Store) FeedByName(name string) (FeedInfo, error) {
	var info FeedInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		fb := tx.Bucket(bFeeds).Bucket([]byte(name))
		if fb == nil {
			return fmt.Errorf("feed %q: no such feed (hedgerow lists feeds shows them)", name)
		}
		var err error
		if info, err = readFeedInfo(fb); err != nil {
			return fmt.Errorf("feed %s: %w", name, err)
		}
		return nil
	})
	return info, err
}
