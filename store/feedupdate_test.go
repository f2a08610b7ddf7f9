package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// importNumbered imports feed name with n entries n0.example ... in adult.
func importNumbered(t *testing.T, s *Store, name string, n int, locked bool) FeedInfo {
	t.Helper()
	f := NewFeed(FeedInfo{Name: name, Source: "https://lists.example/" + name + ".txt", Format: "domains",
		Category: "adult", Locked: locked, Reason: "test list"})
	for i := range n {
		f.Add(fmt.Sprintf("n%d.example", i), mask(t, "adult"))
	}
	if _, err := s.ReplaceFeed("cli:tester", f); err != nil {
		t.Fatalf("ReplaceFeed: %v", err)
	}
	return f.Info
}

// numbered builds an update holding entries n<from>..n<to-1>.example.
func numbered(t *testing.T, name string, from, to int) *Feed {
	t.Helper()
	f := NewFeed(FeedInfo{Name: name, Malformed: 3})
	for i := from; i < to; i++ {
		f.Add(fmt.Sprintf("n%d.example", i), mask(t, "adult"))
	}
	return f
}

func TestUpdateFeedReplacesAndKeepsTheImportsSettings(t *testing.T) {
	s, _ := openNew(t)
	old := importNumbered(t, s, "porn", 10, true)
	before := auditLen(t, s)

	f := numbered(t, "porn", 2, 14) // 2 removed, 8 kept, 4 added
	ch, err := s.UpdateFeed("hedgerow:feed-update", f, FeedUpdate{Based: old.ImportedAt, ETag: `"v2"`, LastModified: "Wed, 04 Mar 2026 09:00:00 GMT"})
	if err != nil {
		t.Fatalf("UpdateFeed: %v", err)
	}
	if ch != (FeedChange{Added: 4, Removed: 2, Kept: 8}) {
		t.Errorf("change %+v, want 4 added, 2 removed, 8 kept", ch)
	}
	got, ok := feedInfo(t, s, "porn")
	if !ok {
		t.Fatal("feed gone")
	}
	if got.Source != old.Source || got.Format != "domains" || got.Category != "adult" || got.Reason != "test list" || !got.Locked {
		t.Errorf("the update lost the import's settings: %+v", got)
	}
	if got.ETag != `"v2"` || got.LastModified != "Wed, 04 Mar 2026 09:00:00 GMT" || got.LastResult != FeedUpdated ||
		got.LastError != "" || got.Failures != 0 || got.Malformed != 3 || got.Domains != 12 {
		t.Errorf("update fields: %+v", got)
	}
	if got.CheckedAt.IsZero() || !got.UpdatedAt.Equal(got.CheckedAt) || !got.SucceededAt.Equal(got.CheckedAt) || got.LastSuccess().Before(got.CheckedAt) {
		t.Errorf("times: checked %v updated %v succeeded %v", got.CheckedAt, got.UpdatedAt, got.SucceededAt)
	}
	entries, _, _ := storedNames(t, s, "porn")
	if len(entries) != 12 || entries["n0.example"] != 0 || entries["n13.example"] == 0 {
		t.Errorf("stored entries %v", slices.Sorted(maps.Keys(entries)))
	}
	recs, _ := s.Audit(1)
	if auditLen(t, s) != before+1 || recs[0].Action != "feed-update" || recs[0].Actor != "hedgerow:feed-update" || recs[0].Target != "feed porn" {
		t.Errorf("audit: %+v", recs[0])
	}
	// The next update must start from this one.
	if _, err := s.UpdateFeed("u", numbered(t, "porn", 2, 14), FeedUpdate{Based: old.ImportedAt}); !errors.Is(err, ErrFeedChanged) {
		t.Errorf("update based on the previous import: %v, want ErrFeedChanged", err)
	}
	mustCheck(t, s)
}

func TestUpdateFeedSanityCheck(t *testing.T) {
	tests := []struct {
		name       string
		keep       int // of 10 entries, the first keep stay
		maxRemoval float64
		force      bool
		refused    bool
	}{
		{"half removed, default limit", 5, 0, false, false},
		{"six of ten removed, default limit", 4, 0, false, true},
		{"eight of ten removed", 2, 0, false, true},
		{"eight of ten removed, forced", 2, 0, true, false},
		{"eight of ten removed, limit 0.9", 2, 0.9, false, false},
		{"all removed, limit 1", 0, 1, false, false},
		{"one removed, limit 0.05", 9, 0.05, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openNew(t)
			old := importNumbered(t, s, "list", 10, false)
			tx := txID(t, s)
			f := numbered(t, "list", 10-tc.keep, 10)
			f.Add("new.example", mask(t, "adult"))
			ch, err := s.UpdateFeed("u", f, FeedUpdate{Based: old.ImportedAt, MaxRemoval: tc.maxRemoval, Force: tc.force})
			var refused *RefusedError
			if tc.refused != errors.As(err, &refused) {
				t.Fatalf("err %v, want refused %v", err, tc.refused)
			}
			if !tc.refused {
				if err != nil {
					t.Fatal(err)
				}
				if ch.Removed != 10-tc.keep {
					t.Errorf("removed %d, want %d", ch.Removed, 10-tc.keep)
				}
				return
			}
			if refused.Change != (FeedChange{Added: 1, Removed: 10 - tc.keep, Kept: tc.keep}) {
				t.Errorf("refusal's change %+v", refused.Change)
			}
			if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("would remove %d of its 10 entries", 10-tc.keep)) || !strings.Contains(msg, "--force") {
				t.Errorf("refusal message %q", msg)
			}
			if txID(t, s) != tx {
				t.Error("a refused update wrote to the database")
			}
			if entries, _, _ := storedNames(t, s, "list"); len(entries) != 10 {
				t.Errorf("entries after a refusal: %d, want the old 10", len(entries))
			}
		})
	}
}

func TestUpdateFeedErrors(t *testing.T) {
	s, _ := openNew(t)
	old := importNumbered(t, s, "list", 4, false)
	tx := txID(t, s)
	tests := []struct {
		name string
		f    *Feed
		u    FeedUpdate
		want string
	}{
		{"no such feed", numbered(t, "other", 0, 4), FeedUpdate{Based: old.ImportedAt}, `"other": no such feed`},
		{"based on another import", numbered(t, "list", 0, 4), FeedUpdate{Based: old.ImportedAt.Add(-time.Hour)}, "imported again"},
		{"removal above 1", numbered(t, "list", 0, 4), FeedUpdate{Based: old.ImportedAt, MaxRemoval: 1.5}, "want a fraction from 0 to 1"},
		{"negative removal", numbered(t, "list", 0, 4), FeedUpdate{Based: old.ImportedAt, MaxRemoval: -0.1}, "want a fraction from 0 to 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.UpdateFeed("u", tc.f, tc.u)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if txID(t, s) != tx {
		t.Error("a failed update wrote to the database")
	}
}

func TestRecordFeedCheck(t *testing.T) {
	s, _ := openNew(t)
	importNumbered(t, s, "list", 4, false)
	entriesBefore, _, _ := storedNames(t, s, "list")
	steps := []struct {
		result, detail string
		wantFailures   int
	}{
		{FeedFailed, "download https://lists.example/list.txt: HTTP status 500", 1},
		{FeedRefused, "would remove 3 of its 4 entries", 2},
		{FeedNotModified, "", 0},
		{FeedFailed, "timed out", 1},
	}
	var lastSuccess time.Time
	for i, st := range steps {
		before := auditLen(t, s)
		if err := s.RecordFeedCheck("hedgerow:feed-update", "list", st.result, st.detail); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got, _ := feedInfo(t, s, "list")
		if got.LastResult != st.result || got.LastError != st.detail || got.Failures != st.wantFailures || got.CheckedAt.IsZero() {
			t.Errorf("step %d: %+v", i, got)
		}
		if st.result == FeedNotModified {
			if !got.SucceededAt.Equal(got.CheckedAt) {
				t.Errorf("not-modified did not move the last success: %v", got.SucceededAt)
			}
			lastSuccess = got.SucceededAt
		} else if !got.SucceededAt.Equal(lastSuccess) {
			t.Errorf("step %d (%s) moved the last success to %v", i, st.result, got.SucceededAt)
		}
		recs, _ := s.Audit(1)
		if auditLen(t, s) != before+1 || recs[0].Action != "feed-check" || !strings.Contains(recs[0].Reason, st.result) ||
			!strings.Contains(string(recs[0].After), st.result) {
			t.Errorf("step %d audit: %+v", i, recs[0])
		}
	}
	if after, _, _ := storedNames(t, s, "list"); !maps.Equal(after, entriesBefore) {
		t.Error("recording checks changed the entries")
	}

	bad := []struct{ name, feed, result, detail, want string }{
		{"unknown result", "list", "updated", "", `result "updated"`},
		{"failure without a reason", "list", FeedFailed, " ", "needs the reason"},
		{"no such feed", "nope", FeedNotModified, "", `"nope": no such feed`},
	}
	tx := txID(t, s)
	for _, b := range bad {
		if err := s.RecordFeedCheck("u", b.feed, b.result, b.detail); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: err %v, want it to mention %q", b.name, err, b.want)
		}
	}
	if txID(t, s) != tx {
		t.Error("a refused record wrote to the database")
	}
}

// TestFeedInfoFromOldDatabases: a feed record written before updates
// existed reads with the update fields empty.
func TestFeedInfoFromOldDatabases(t *testing.T) {
	s, _ := openNew(t)
	importNumbered(t, s, "old", 2, false)
	imported := time.Date(2025, 9, 1, 8, 0, 0, 0, time.UTC)
	legacy := `{"name":"old","source":"/srv/lists/old.txt","format":"domains","locked":false,"reason":"r",` +
		`"imported_at":"2025-09-01T08:00:00Z","imported_by":"cli:it","domains":2,"urls":0,"exceptions":0,"malformed":0,"categories":["adult"]}`
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bFeeds).Bucket([]byte("old")).Put([]byte("info"), []byte(legacy))
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.FeedByName("old")
	if err != nil {
		t.Fatal(err)
	}
	want := FeedInfo{Name: "old", Source: "/srv/lists/old.txt", Format: "domains", Reason: "r", ImportedAt: imported,
		ImportedBy: "cli:it", Domains: 2, Categories: []string{"adult"}}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	if string(a) != string(b) {
		t.Errorf("legacy record reads as\n%s\nwant\n%s", a, b)
	}
	if !got.LastSuccess().Equal(imported) {
		t.Errorf("LastSuccess of a never-checked feed: %v, want its import %v", got.LastSuccess(), imported)
	}
	// And it can be updated: the first update has no validators to send.
	if _, err := s.UpdateFeed("u", numbered(t, "old", 0, 2), FeedUpdate{Based: imported}); err != nil {
		t.Errorf("updating a legacy feed: %v", err)
	}
}

func TestFeedInfoUpdatable(t *testing.T) {
	tests := []struct {
		info FeedInfo
		want string // "" = updatable
	}{
		{FeedInfo{Name: "ut1", Source: "/srv/lists/ut1", Format: "auto"}, ""},
		{FeedInfo{Name: "iwf", Source: "https://provider.example/iwf.txt", Format: "domains"}, ""},
		{FeedInfo{Name: "starter", Source: "embedded starter lists", Format: StarterFormat}, "embedded"},
		{FeedInfo{Name: LocalFeed, Source: "x"}, "added by hand"},
		{FeedInfo{Name: "blank", Source: " "}, "no source"},
	}
	for _, tc := range tests {
		err := tc.info.Updatable()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Updatable() = %v, want %q", tc.info.Name, err, tc.want)
		}
	}
}
