package store

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterr "go.etcd.io/bbolt/errors"

	"hedgerow/categories"
)

// feedOf builds a feed from target -> slugs maps.
func feedOf(t testing.TB, info FeedInfo, entries, exceptions map[string][]string) *Feed {
	t.Helper()
	f := NewFeed(info)
	for target, slugs := range entries {
		f.Add(target, mask(t, slugs...))
	}
	for target, slugs := range exceptions {
		f.AddException(target, mask(t, slugs...))
	}
	return f
}

func mustSnapshot(t testing.TB, s *Store) *categories.Snapshot {
	t.Helper()
	snap, err := s.LoadSnapshot()
	if err != nil {
		t.Fatalf("LoadSnapshot: %v", err)
	}
	return snap
}

// classify looks a target up in an index: "host" or "host/path".
func classify(x *categories.Index, target string) categories.Classification {
	host, path, isURL := strings.Cut(target, "/")
	if isURL {
		path = "/" + path
	}
	return x.Classify(host, path)
}

func feedInfo(t testing.TB, s *Store, name string) (FeedInfo, bool) {
	t.Helper()
	feeds, err := s.Feeds()
	if err != nil {
		t.Fatalf("Feeds: %v", err)
	}
	for _, f := range feeds {
		if f.Name == name {
			return f, true
		}
	}
	return FeedInfo{}, false
}

// hitFor returns the categories of the index entry that is exactly target
// ("host" or "host/path") among a classification's hits.
func hitFor(c categories.Classification, target string) (categories.Mask, bool) {
	for _, h := range c.Hits[:c.NHits] {
		if h.Entry+h.Path == target {
			return h.Mask &^ categories.FlagLocked, true
		}
	}
	return 0, false
}

// absent reports whether an audit record's before or after is missing. It
// accepts a JSON null too, so that the bug TestAuditOmitsMissingBeforeAndAfter
// shows does not fail every test that reads the audit trail.
func absent(raw json.RawMessage) bool { return raw == nil || string(raw) == "null" }

// storedNames reads a feed's entries back from its chunks.
func storedNames(t testing.TB, s *Store, name string) (entries, exceptions map[string]categories.Mask, chunkSizes []int) {
	t.Helper()
	entries, exceptions = map[string]categories.Mask{}, map[string]categories.Mask{}
	err := s.db.View(func(tx *bolt.Tx) error {
		fb := tx.Bucket(bFeeds).Bucket([]byte(name))
		if fb == nil {
			return fmt.Errorf("no feed %s", name)
		}
		_ = fb.Bucket([]byte("chunks")).ForEach(func(_, v []byte) error {
			chunkSizes = append(chunkSizes, len(v))
			return nil
		})
		return forEachChunk(fb, func(h chunkHeader, names [][]byte) error {
			m, err := testTax.MaskOf(h.cats...)
			if err != nil {
				return err
			}
			into := entries
			if h.exception {
				into = exceptions
			}
			for _, n := range names {
				if _, dup := into[string(n)]; dup {
					return fmt.Errorf("%s stored twice", n)
				}
				into[string(n)] = m
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return entries, exceptions, chunkSizes
}

func TestReplaceFeedReimport(t *testing.T) {
	s, c := openNew(t)
	type set = map[string][]string
	steps := []struct {
		name       string
		entries    set
		exceptions set
		want       FeedChange
	}{
		{
			name:       "first import",
			entries:    set{"a.example": {"adult"}, "b.example": {"games"}, "c.example/path": {"adult"}, "e.example": {"adult", "gambling"}},
			exceptions: set{"safe.a.example": {"adult"}},
			want:       FeedChange{Added: 5},
		},
		{
			name:    "re-import: some gone, one new, one with other categories",
			entries: set{"a.example": {"adult"}, "b.example": {"gambling"}, "d.example": {"chat"}, "e.example": {"adult", "gambling"}},
			want:    FeedChange{Added: 1, Removed: 2, Kept: 3},
		},
		{
			name:    "same again",
			entries: set{"a.example": {"adult"}, "b.example": {"gambling"}, "d.example": {"chat"}, "e.example": {"adult", "gambling"}},
			want:    FeedChange{Kept: 4},
		},
		{
			name: "empty",
			want: FeedChange{Removed: 4},
		},
		{
			name:       "from empty",
			entries:    set{"c.example/path": {"adult"}, "c.example/path/deeper": {"games"}},
			exceptions: set{"safe.a.example": {"adult"}},
			want:       FeedChange{Added: 3},
		},
	}
	// Every target any step mentions: each must classify exactly as the
	// current step says, which proves the old entries are gone.
	all := map[string]bool{}
	for _, st := range steps {
		for k := range st.entries {
			all[k] = true
		}
	}
	var prev *FeedInfo
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			auditBefore := auditLen(t, s)
			importedAt := c.peek()
			f := feedOf(t, FeedInfo{Name: "vendor", Source: "https://lists.example/v" + fmt.Sprint(i), Format: "hosts", Reason: "vendor list"}, st.entries, st.exceptions)
			ch, err := s.ReplaceFeed("it-alice", f)
			if err != nil {
				t.Fatalf("ReplaceFeed: %v", err)
			}
			mustCheck(t, s)
			if ch != st.want {
				t.Errorf("change %+v, want %+v", ch, st.want)
			}

			// Stored exactly.
			gotE, gotX, _ := storedNames(t, s, "vendor")
			wantE, wantX := map[string]categories.Mask{}, map[string]categories.Mask{}
			for k, v := range st.entries {
				wantE[k] = mask(t, v...)
			}
			for k, v := range st.exceptions {
				wantX[k] = mask(t, v...)
			}
			if !maps.Equal(gotE, wantE) || !maps.Equal(gotX, wantX) {
				t.Errorf("stored entries %v exceptions %v, want %v %v", gotE, gotX, wantE, wantX)
			}

			// The index holds exactly the new set.
			x := mustSnapshot(t, s).Index()
			if x.Len() != len(st.entries) {
				t.Errorf("index has %d entries, want %d", x.Len(), len(st.entries))
			}
			for target := range all {
				sl, want := st.entries[target]
				got, listed := hitFor(classify(x, target), target)
				if listed != want || (want && got != mask(t, sl...)) {
					t.Errorf("index entry %s: listed %v with %v, want listed %v with %v", target, listed, testTax.Slugs(got), want, sl)
				}
			}
			// Subdomains follow their domain; the exception cancels adult under safe.a.example.
			if _, listed := st.entries["a.example"]; listed {
				if got := classify(x, "www.a.example").Cats; got != mask(t, "adult") {
					t.Errorf("www.a.example = %v, want adult", testTax.Slugs(got))
				}
				wantSafe := mask(t, "adult")
				if _, exc := st.exceptions["safe.a.example"]; exc {
					wantSafe = 0
				}
				if got := classify(x, "www.safe.a.example").Cats; got != wantSafe {
					t.Errorf("www.safe.a.example = %v, want %v", testTax.Slugs(got), testTax.Slugs(wantSafe))
				}
			}

			// Feed info.
			info, ok := feedInfo(t, s, "vendor")
			if !ok {
				t.Fatal("feed not listed")
			}
			if !info.ImportedAt.Equal(importedAt) || info.ImportedBy != "it-alice" || info.Reason != "vendor list" || info.Format != "hosts" || !strings.HasSuffix(info.Source, fmt.Sprint(i)) {
				t.Errorf("info %+v", info)
			}

			// One audit record with before and after.
			recs, _ := s.Audit(0)
			if len(recs) != auditBefore+1 {
				t.Fatalf("%d audit records, want %d", len(recs), auditBefore+1)
			}
			r := recs[0]
			if r.Action != "import" || r.Target != "feed vendor" || r.Actor != "it-alice" || r.Reason != "vendor list" {
				t.Errorf("audit %+v", r)
			}
			var after struct {
				FeedInfo
				Change FeedChange `json:"change"`
			}
			if err := json.Unmarshal(r.After, &after); err != nil {
				t.Fatalf("audit after: %v", err)
			}
			if after.Change != st.want || after.Name != "vendor" || after.Domains != info.Domains {
				t.Errorf("audit after %+v, want change %+v", after, st.want)
			}
			if prev == nil {
				if !absent(r.Before) {
					t.Errorf("first import has a before: %s", r.Before)
				}
			} else {
				var before FeedInfo
				if err := json.Unmarshal(r.Before, &before); err != nil {
					t.Fatalf("audit before: %v", err)
				}
				if !reflect.DeepEqual(before, *prev) {
					t.Errorf("audit before %+v, want the previous info %+v", before, *prev)
				}
			}
			prev = &info
		})
	}
}

// A target that a feed lists both as an entry and as an exception is one
// entry and one exception: re-importing it as an entry only keeps one and
// removes one; FeedChange.Added can never be negative.
func TestReplaceFeedChangeCountsEntryAndExceptionOfOneName(t *testing.T) {
	s, _ := openNew(t)
	type set = map[string][]string
	f := feedOf(t, FeedInfo{Name: "adblock", Reason: "r"}, set{"x.example": {"advertising"}, "y.example": {"advertising"}}, set{"x.example": {"advertising"}})
	if ch, err := s.ReplaceFeed("it", f); err != nil || ch != (FeedChange{Added: 3}) {
		t.Fatalf("first import: %+v, %v", ch, err)
	}
	for _, tc := range []struct {
		name                string
		entries, exceptions set
		want                FeedChange
	}{
		{"exception dropped", set{"x.example": {"advertising"}, "y.example": {"advertising"}}, nil, FeedChange{Kept: 2, Removed: 1}},
		{"exception back", set{"x.example": {"advertising"}, "y.example": {"advertising"}}, set{"x.example": {"advertising"}}, FeedChange{Kept: 2, Added: 1}},
	} {
		ch, err := s.ReplaceFeed("it", feedOf(t, FeedInfo{Name: "adblock", Reason: "r"}, tc.entries, tc.exceptions))
		if err != nil {
			t.Fatal(err)
		}
		if ch != tc.want || ch.Added < 0 {
			t.Errorf("%s: change %+v, want %+v", tc.name, ch, tc.want)
		}
	}
}

func TestReplaceFeedRejects(t *testing.T) {
	s, _ := openNew(t)
	if _, err := s.ReplaceFeed("it", feedOf(t, FeedInfo{Name: "vendor", Reason: "r"}, map[string][]string{"a.example": {"adult"}}, nil)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, feed, reason, wantErr string
	}{
		{"no reason", "vendor", "", "reason is required"},
		{"blank reason", "vendor", " \t\n", "reason is required"},
		{"no reason, new feed", "other", "", "reason is required"},
		{"empty name", "", "r", "1 to 64 characters"},
		{"long name", strings.Repeat("a", 65), "r", "1 to 64 characters"},
		{"reserved name", LocalFeed, "r", "reserved"},
		{"space", "my list", "r", "letters, digits"},
		{"slash", "a/b", "r", "letters, digits"},
		{"non-ASCII", "liste-noire-é", "r", "letters, digits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, n := txID(t, s), auditLen(t, s)
			before, _ := s.Feeds()
			f := feedOf(t, FeedInfo{Name: tc.feed, Reason: tc.reason}, map[string][]string{"b.example": {"games"}}, nil)
			_, err := s.ReplaceFeed("it", f)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			if tc.feed != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.feed)) {
				t.Errorf("error %q does not name the feed", err)
			}
			if txID(t, s) != id || auditLen(t, s) != n {
				t.Error("a rejected import wrote to the database")
			}
			after, _ := s.Feeds()
			if !reflect.DeepEqual(after, before) {
				t.Errorf("feeds changed: %+v -> %+v", before, after)
			}
		})
	}
	// Valid names.
	for _, name := range []string{"a", "UT1.adult", "iwf_urls-2026", strings.Repeat("z", 64)} {
		if err := ValidFeedName(name); err != nil {
			t.Errorf("ValidFeedName(%q): %v", name, err)
		}
	}
}

// A re-import that fails half-way (here: the disk is full) leaves the
// previous version of the feed, its index and the audit trail as they were.
func TestReplaceFeedAtomicOnFailure(t *testing.T) {
	path := dbPath(t)
	c := newClock()
	s, err := Open(path, testTax, Options{Defaults: defaults(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	old := feedOf(t, FeedInfo{Name: "vendor", Reason: "r"}, map[string][]string{"a.example": {"adult"}, "b.example": {"games"}}, nil)
	if _, err := s.ReplaceFeed("it", old); err != nil {
		t.Fatal(err)
	}
	wantInfo, _ := feedInfo(t, s, "vendor")
	wantAudit, _ := s.Audit(0)
	s.Close()

	// bbolt refuses to grow the file past MaxSize: a full disk, as far as
	// the transaction can tell.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, MaxSize: 2 << 20, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		t.Fatal(err)
	}
	full := &Store{db: db, path: path, tax: testTax, now: c.Now}
	big := NewFeed(FeedInfo{Name: "vendor", Reason: "bigger list"})
	for i := range 200_000 {
		big.Add(fmt.Sprintf("host-%07d.example.org", i), mask(t, "adult"))
	}
	_, err = full.ReplaceFeed("it", big)
	if !errors.Is(err, bolterr.ErrMaxSizeReached) {
		t.Fatalf("ReplaceFeed on a full disk: %v, want ErrMaxSizeReached", err)
	}
	db.Close()

	s, err = Open(path, testTax, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustCheck(t, s)
	if info, _ := feedInfo(t, s, "vendor"); !reflect.DeepEqual(info, wantInfo) {
		t.Errorf("feed info %+v, want %+v", info, wantInfo)
	}
	if recs, _ := s.Audit(0); !reflect.DeepEqual(recs, wantAudit) {
		t.Errorf("audit changed by a failed import")
	}
	x := mustSnapshot(t, s).Index()
	if x.Len() != 2 || classify(x, "a.example").Cats != mask(t, "adult") || classify(x, "host-0000001.example.org").Cats != 0 {
		t.Errorf("index after a failed import: %d entries", x.Len())
	}
}

func TestLockedFeed(t *testing.T) {
	s, _ := openNew(t)
	type set = map[string][]string
	iwf := func(locked bool, entries set) *Feed {
		return feedOf(t, FeedInfo{Name: "iwf", Locked: locked, Reason: "IWF list via our provider"}, entries, nil)
	}
	if _, err := s.ReplaceFeed("it", iwf(true, set{"locked.example": {"adult"}, "abuse.example": {"child-abuse"}})); err != nil {
		t.Fatal(err)
	}
	// An unlocked feed tries to except part of it, and ks2 tries to allow it.
	if _, err := s.ReplaceFeed("it", feedOf(t, FeedInfo{Name: "vendor", Reason: "r"}, set{"open.example": {"adult"}}, set{"www.locked.example": {"adult"}})); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdatePolicy("it", PolicyChange{Action: "groups allow ks2", Reason: "teacher asked", Apply: func(p *categories.Policy) (string, error) {
		for i := range p.Groups {
			if p.Groups[i].Name == "ks2" {
				p.Groups[i].Allow = append(p.Groups[i].Allow, "locked.example", "open.example")
			}
		}
		p.School.Allow = append(p.School.Allow, "locked.example")
		return "ks2", nil
	}}); err != nil {
		t.Fatal(err)
	}

	for _, reimport := range []struct {
		name   string
		locked bool
	}{{"as imported", true}, {"re-imported without Locked", false}} {
		t.Run(reimport.name, func(t *testing.T) {
			if !reimport.locked {
				ch, err := s.ReplaceFeed("it", iwf(false, set{"locked.example": {"adult"}, "abuse.example": {"child-abuse"}, "new.example": {"adult"}}))
				if err != nil {
					t.Fatal(err)
				}
				if ch != (FeedChange{Added: 1, Kept: 2}) {
					t.Errorf("change %+v", ch)
				}
				mustCheck(t, s)
			}
			info, _ := feedInfo(t, s, "iwf")
			if !info.Locked {
				t.Error("feed is no longer locked")
			}
			found, err := s.Find("www.locked.example", "")
			if err != nil {
				t.Fatal(err)
			}
			var sawLocked bool
			for _, f := range found {
				if f.Feed == "iwf" {
					sawLocked = f.Locked
				}
			}
			if !sawLocked {
				t.Errorf("Find does not report the locked entry: %+v", found)
			}

			snap := mustSnapshot(t, s)
			now := time.Date(2026, 3, 4, 11, 0, 0, 0, time.UTC)
			for _, tc := range []struct {
				group, host string
				action      categories.Action
				rule        categories.Rule
			}{
				{"ks2", "locked.example", categories.Block, categories.RuleLocked},
				{"ks2", "www.locked.example", categories.Block, categories.RuleLocked},
				{"ks2", "open.example", categories.Allow, categories.RuleGroupAllow},
				{"staff", "locked.example", categories.Block, categories.RuleLocked},
				{"sixth-form", "abuse.example", categories.Block, categories.RuleCritical},
			} {
				v := snap.Decide(tc.group, tc.host, "", now)
				if v.Action != tc.action || v.Rule != tc.rule {
					t.Errorf("Decide(%s, %s) = %v by %v, want %v by %v", tc.group, tc.host, v.Action, v.Rule, tc.action, tc.rule)
				}
			}
			if !reimport.locked {
				if v := snap.Decide("ks2", "new.example", "", now); v.Rule != categories.RuleLocked {
					t.Errorf("new entry of the locked feed decided by %v, want locked", v.Rule)
				}
			}

			id, n := txID(t, s), auditLen(t, s)
			err = s.RemoveFeed("it", "iwf", "try")
			if err == nil || !strings.Contains(err.Error(), "locked") {
				t.Errorf("RemoveFeed of a locked feed: %v, want a 'locked' error", err)
			}
			if txID(t, s) != id || auditLen(t, s) != n {
				t.Error("refused RemoveFeed wrote to the database")
			}
			if _, ok := feedInfo(t, s, "iwf"); !ok {
				t.Error("locked feed removed")
			}
			err = s.RemoveEntry("it", "locked.example", nil, "try")
			if err == nil || !strings.Contains(err.Error(), "iwf") {
				t.Errorf("RemoveEntry of a locked feed's entry: %v, want an error naming the feed", err)
			}
		})
	}
}

func TestRemoveFeed(t *testing.T) {
	s, _ := openNew(t)
	type set = map[string][]string
	for _, f := range []*Feed{
		feedOf(t, FeedInfo{Name: "vendor", Reason: "r"}, set{"a.example": {"adult"}, "b.example/x": {"games"}}, set{"ok.a.example": {"adult"}}),
		feedOf(t, FeedInfo{Name: "other", Reason: "r"}, set{"a.example": {"gambling"}}, nil),
		feedOf(t, FeedInfo{Name: "iwf", Locked: true, Reason: "r"}, set{"c.example": {"child-abuse"}}, nil),
	} {
		if _, err := s.ReplaceFeed("it", f); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, feed, reason, wantErr string
		wantFeeds                   []string // after, sorted
		wantA                       []string // categories of a.example after
	}{
		{"no reason", "vendor", " ", "reason is required", []string{"iwf", "other", "vendor"}, []string{"adult", "gambling"}},
		{"unknown feed", "nope", "r", "no such feed", []string{"iwf", "other", "vendor"}, []string{"adult", "gambling"}},
		{"locked feed", "iwf", "r", "locked", []string{"iwf", "other", "vendor"}, []string{"adult", "gambling"}},
		{"unlocked feed", "vendor", "contract ended", "", []string{"iwf", "other"}, []string{"gambling"}},
		{"again", "vendor", "r", "no such feed", []string{"iwf", "other"}, []string{"gambling"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, n := txID(t, s), auditLen(t, s)
			err := s.RemoveFeed("it-bob", tc.feed, tc.reason)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.feed) {
					t.Errorf("err %v, want one naming %q and saying %q", err, tc.feed, tc.wantErr)
				}
				if txID(t, s) != id || auditLen(t, s) != n {
					t.Error("failed RemoveFeed wrote to the database")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				recs, _ := s.Audit(1)
				if r := recs[0]; r.Action != "remove-feed" || r.Target != "feed "+tc.feed || r.Actor != "it-bob" || r.Reason != tc.reason || r.Before == nil || r.After != nil {
					t.Errorf("audit %+v", r)
				}
			}
			mustCheck(t, s)
			feeds, _ := s.Feeds()
			var names []string
			for _, f := range feeds {
				names = append(names, f.Name)
			}
			slices.Sort(names)
			if !slices.Equal(names, tc.wantFeeds) {
				t.Errorf("feeds %v, want %v", names, tc.wantFeeds)
			}
			x := mustSnapshot(t, s).Index()
			if got := testTax.Slugs(classify(x, "www.a.example").Cats); !slices.Equal(got, tc.wantA) {
				t.Errorf("www.a.example in %v, want %v", got, tc.wantA)
			}
			if tc.wantErr == "" {
				if got := classify(x, "b.example/x/y").Cats; got != 0 {
					t.Errorf("removed feed's URL entry still classifies: %v", testTax.Slugs(got))
				}
				if found, _ := s.Find("b.example", "/x"); len(found) != 0 {
					t.Errorf("Find after removal: %+v", found)
				}
			}
		})
	}
}

func TestFeedInfoCounts(t *testing.T) {
	s, c := openNew(t)
	f := NewFeed(FeedInfo{Name: "ut1", Source: "/srv/lists/ut1", Format: "ut1", Reason: "UT1 blacklists", Malformed: 7})
	f.Add("a.example", mask(t, "adult"))
	f.Add("b.example", mask(t, "gambling"))
	f.Add("b.example", mask(t, "games")) // merged
	f.Add("c.example", mask(t, "kids"))
	f.Add("d.example/path", mask(t, "adult"))
	f.Add("d.example/other/", mask(t, "chat"))
	f.AddException("ok.a.example", mask(t, "adult"))
	f.AddException("fine.b.example", mask(t, "gambling", "games"))
	if f.Len() != 7 {
		t.Errorf("Feed.Len %d, want 7", f.Len())
	}
	at := c.peek()
	if _, err := s.ReplaceFeed("it-carol", f); err != nil {
		t.Fatal(err)
	}
	info, ok := feedInfo(t, s, "ut1")
	if !ok {
		t.Fatal("no feed")
	}
	want := FeedInfo{Name: "ut1", Source: "/srv/lists/ut1", Format: "ut1", Reason: "UT1 blacklists", Malformed: 7,
		ImportedAt: at, ImportedBy: "it-carol", Domains: 3, URLs: 2, Exceptions: 2,
		Categories: []string{"adult", "gambling", "chat", "games", "kids"}} // taxonomy order
	if !reflect.DeepEqual(info, want) {
		t.Errorf("info\n got  %+v\n want %+v", info, want)
	}
	x := mustSnapshot(t, s).Index()
	if x.Domains() != 3 || x.URLs() != 2 {
		t.Errorf("index %d domains %d URLs, want 3 and 2", x.Domains(), x.URLs())
	}
	if got := classify(x, "b.example").Cats; got != mask(t, "gambling", "games") {
		t.Errorf("b.example %v", testTax.Slugs(got))
	}
	if got := classify(x, "x.fine.b.example").Cats; got != 0 {
		t.Errorf("x.fine.b.example %v, want nothing (exception)", testTax.Slugs(got))
	}
}

func TestLargeFeedRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("large feed")
	}
	s, _ := openNew(t)
	const n = 300_000
	masks := []categories.Mask{mask(t, "adult"), mask(t, "games"), mask(t, "adult", "gambling")}
	f := NewFeed(FeedInfo{Name: "big", Reason: "large list"})
	want := map[string]categories.Mask{}
	for i := range n {
		name := fmt.Sprintf("host-%06d.sub%d.example-%d.org", i, i%7, i%13)
		if i%50 == 0 {
			name += fmt.Sprintf("/path/%d", i)
		}
		m := masks[i%len(masks)]
		f.Add(name, m)
		want[name] = m
	}
	for i := range 1000 {
		f.AddException(fmt.Sprintf("ok-%04d.example-1.org", i), mask(t, "games"))
	}
	ch, err := s.ReplaceFeed("it", f)
	if err != nil {
		t.Fatal(err)
	}
	if ch != (FeedChange{Added: n + 1000}) {
		t.Errorf("change %+v", ch)
	}
	mustCheck(t, s)

	gotE, gotX, sizes := storedNames(t, s, "big")
	if !maps.Equal(gotE, want) {
		t.Errorf("stored %d entries, want %d (sets differ)", len(gotE), len(want))
	}
	if len(gotX) != 1000 {
		t.Errorf("stored %d exceptions, want 1000", len(gotX))
	}
	total := 0
	for _, sz := range sizes {
		total += sz
		if sz > chunkLimit {
			t.Errorf("chunk of %d bytes, over the %d limit", sz, chunkLimit)
		}
	}
	if len(sizes) < 6 || total < 5*chunkLimit {
		t.Errorf("%d chunks, %d bytes: want several chunks over 1 MiB in all", len(sizes), total)
	}

	info, _ := feedInfo(t, s, "big")
	if info.Domains+info.URLs != n || info.URLs != n/50 || info.Exceptions != 1000 {
		t.Errorf("info %d domains %d URLs %d exceptions", info.Domains, info.URLs, info.Exceptions)
	}
	x := mustSnapshot(t, s).Index()
	if x.Len() != n {
		t.Errorf("index has %d entries, want %d", x.Len(), n)
	}
	for name, m := range want {
		if got := classify(x, name).Cats; got != m {
			t.Fatalf("classify %s = %v, want %v", name, testTax.Slugs(got), testTax.Slugs(m))
		}
	}

	// Re-import half: half removed, half kept, the index follows.
	half := NewFeed(FeedInfo{Name: "big", Reason: "large list"})
	for name, m := range want {
		if strings.HasPrefix(name, "host-") && name[len("host-000000")-1]%2 == 0 {
			half.Add(name, m)
		}
	}
	ch, err = s.ReplaceFeed("it", half)
	if err != nil {
		t.Fatal(err)
	}
	if ch != (FeedChange{Kept: half.Len(), Removed: n + 1000 - half.Len()}) {
		t.Errorf("change %+v, kept want %d", ch, half.Len())
	}
	mustCheck(t, s)
	x = mustSnapshot(t, s).Index()
	if x.Len() != half.Len() {
		t.Errorf("index has %d entries after re-import, want %d", x.Len(), half.Len())
	}
}

func TestAddEntry(t *testing.T) {
	s, _ := openNew(t)
	for _, tc := range []struct {
		name, target string
		cats         []string
		reason       string
		wantErr      string
		want         []string // categories stored after
		wantBefore   []string // categories in the audit's before; nil when new
	}{
		{name: "no reason", target: "x.example", cats: []string{"adult"}, wantErr: "reason is required"},
		{name: "blank reason", target: "x.example", cats: []string{"adult"}, reason: "  ", wantErr: "reason is required"},
		{name: "no category", target: "x.example", reason: "r", wantErr: "at least one category"},
		{name: "unknown category", target: "x.example", cats: []string{"games", "gamez"}, reason: "r", wantErr: `unknown category "gamez"`},
		{name: "add", target: "x.example", cats: []string{"games"}, reason: "reported by Y6 teacher", want: []string{"games"}},
		{name: "merge on re-add", target: "x.example", cats: []string{"games", "gambling"}, reason: "also gambling", want: []string{"gambling", "games"}, wantBefore: []string{"games"}},
		{name: "unknown category on an existing entry", target: "x.example", cats: []string{"nope"}, reason: "r", wantErr: "unknown category", want: []string{"gambling", "games"}},
		{name: "URL prefix", target: "forum.example/board", cats: []string{"forums"}, reason: "unmoderated", want: []string{"forums"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, n := txID(t, s), auditLen(t, s)
			err := s.AddEntry("it-dan", tc.target, tc.cats, tc.reason)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.target) {
					t.Fatalf("err %v, want one naming %s and saying %q", err, tc.target, tc.wantErr)
				}
				if txID(t, s) != id || auditLen(t, s) != n {
					t.Error("failed AddEntry wrote to the database")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				recs, _ := s.Audit(1)
				r := recs[0]
				if r.Action != "lists-add" || r.Target != tc.target || r.Actor != "it-dan" || r.Reason != tc.reason {
					t.Errorf("audit %+v", r)
				}
				var after LocalEntry
				json.Unmarshal(r.After, &after)
				if !slices.Equal(after.Categories, tc.want) {
					t.Errorf("audit after %s", r.After)
				}
				if tc.wantBefore == nil && !absent(r.Before) {
					t.Errorf("audit before %s, want none", r.Before)
				}
				if tc.wantBefore != nil {
					var before LocalEntry
					json.Unmarshal(r.Before, &before)
					if !slices.Equal(before.Categories, tc.wantBefore) {
						t.Errorf("audit before %s, want %v", r.Before, tc.wantBefore)
					}
				}
			}
			mustCheck(t, s)
			if tc.want == nil {
				return
			}
			host, path, _ := strings.Cut(tc.target, "/")
			if path != "" {
				path = "/" + path
			}
			found, _ := s.Find(host, path)
			if len(found) != 1 || found[0].Feed != LocalFeed || found[0].Entry != tc.target || !slices.Equal(found[0].Categories, tc.want) || found[0].AddedBy != "it-dan" {
				t.Errorf("Find %+v", found)
			}
			x := mustSnapshot(t, s).Index()
			if got := testTax.Slugs(classify(x, tc.target).Cats); !slices.Equal(got, tc.want) {
				t.Errorf("index: %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRemoveEntry(t *testing.T) {
	s, _ := openNew(t)
	if _, err := s.ReplaceFeed("it", feedOf(t, FeedInfo{Name: "vendor", Reason: "r"},
		map[string][]string{"feed.example": {"adult"}, "feed.example/x": {"adult"}}, map[string][]string{"ok.feed.example": {"adult"}})); err != nil {
		t.Fatal(err)
	}
	for target, cats := range map[string][]string{"a.example": {"chat", "gambling", "games"}, "b.example": {"adult"}, "c.example/p": {"forums"}} {
		if err := s.AddEntry("it", target, cats, "r"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, target string
		cats         []string
		reason       string
		wantErr      string
		want         []string // categories left; nil when the entry is gone
	}{
		{name: "no reason", target: "a.example", wantErr: "reason is required", want: []string{"gambling", "games", "chat"}},
		{name: "feed entry", target: "feed.example", reason: "r", wantErr: "comes from feed vendor"},
		{name: "feed URL entry", target: "feed.example/x", reason: "r", wantErr: "comes from feed vendor"},
		{name: "feed exception", target: "ok.feed.example", reason: "r", wantErr: "vendor"},
		{name: "unknown entry", target: "nope.example", reason: "r", wantErr: "no such entry"},
		{name: "parent of an entry", target: "example", reason: "r", wantErr: "no such entry"},
		{name: "category it is not in", target: "a.example", cats: []string{"dating"}, reason: "r", wantErr: "not in dating", want: []string{"gambling", "games", "chat"}},
		{name: "unknown category", target: "a.example", cats: []string{"chatt"}, reason: "r", wantErr: `unknown category "chatt"`, want: []string{"gambling", "games", "chat"}},
		{name: "some categories", target: "a.example", cats: []string{"games"}, reason: "games are fine", want: []string{"gambling", "chat"}},
		{name: "the last categories", target: "a.example", cats: []string{"gambling", "chat", "dating"}, reason: "r"},
		{name: "whole entry", target: "b.example", reason: "site cleaned up"},
		{name: "gone", target: "b.example", reason: "r", wantErr: "no such entry"},
		{name: "URL entry", target: "c.example/p", reason: "r"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, n := txID(t, s), auditLen(t, s)
			err := s.RemoveEntry("it-erin", tc.target, tc.cats, tc.reason)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.target) {
					t.Fatalf("err %v, want one naming %s and saying %q", err, tc.target, tc.wantErr)
				}
				if txID(t, s) != id || auditLen(t, s) != n {
					t.Error("failed RemoveEntry wrote to the database")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				recs, _ := s.Audit(1)
				r := recs[0]
				if r.Action != "lists-remove" || r.Target != tc.target || r.Actor != "it-erin" || r.Reason != tc.reason || r.Before == nil {
					t.Errorf("audit %+v", r)
				}
				if (tc.want == nil) != (r.After == nil) {
					t.Errorf("audit after %s, want categories %v", r.After, tc.want)
				}
			}
			mustCheck(t, s)

			var local []string
			found := false
			err = s.db.View(func(tx *bolt.Tx) error {
				raw := tx.Bucket(bEntries).Get([]byte(tc.target))
				if raw == nil {
					return nil
				}
				found = true
				var e LocalEntry
				if err := json.Unmarshal(raw, &e); err != nil {
					return err
				}
				local = e.Categories
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil && found && !strings.HasPrefix(tc.name, "feed") {
				t.Errorf("entry still there with %v", local)
			}
			if tc.want != nil {
				m := mask(t, tc.want...)
				if !found || mask(t, local...) != m {
					t.Errorf("entry has %v, want %v", local, tc.want)
				}
			}
			if !strings.HasPrefix(tc.name, "feed") {
				x := mustSnapshot(t, s).Index()
				if got := classify(x, tc.target).Cats; got != mask(t, tc.want...) {
					t.Errorf("index: %v, want %v", testTax.Slugs(got), tc.want)
				}
			}
		})
	}
}

func TestFind(t *testing.T) {
	s, _ := openNew(t)
	type set = map[string][]string
	if _, err := s.ReplaceFeed("it-vendor", feedOf(t, FeedInfo{Name: "vendor", Reason: "vendor list"}, set{
		"example.com":            {"adult"},
		"www.example.com/bad":    {"adult", "violence"},
		"www.example.com/badge":  {"games"}, // not a path-segment prefix of /bad/page
		"example.com/bad":        {"games"}, // URL entry of a parent
		"ample.com":              {"adult"}, // not a parent of example.com
		"deeper.www.example.com": {"adult"}, // a child, not a parent
		"other.org":              {"adult"},
	}, set{"www.example.com": {"adult"}})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceFeed("it-iwf", feedOf(t, FeedInfo{Name: "iwf", Locked: true, Reason: "IWF"}, set{"www.example.com": {"child-abuse"}}, nil)); err != nil {
		t.Fatal(err)
	}
	for target, cats := range map[string][]string{"example.com": {"gambling"}, "www.example.com/bad/page": {"chat"}, "com": {"shopping"}, "elsewhere.net": {"chat"}} {
		if err := s.AddEntry("it-hand", target, cats, "by hand"); err != nil {
			t.Fatal(err)
		}
	}
	type row struct {
		Feed, Entry string
		Cats        string
		Exception   bool
		Locked      bool
		By          string
	}
	rows := func(found []Found) []row {
		var out []row
		for _, f := range found {
			out = append(out, row{f.Feed, f.Entry, strings.Join(f.Categories, ","), f.Exception, f.Locked, f.AddedBy})
		}
		slices.SortFunc(out, func(a, b row) int {
			return cmp.Or(strings.Compare(a.Feed, b.Feed), strings.Compare(a.Entry, b.Entry), cmp.Compare(fmt.Sprint(a.Exception), fmt.Sprint(b.Exception)))
		})
		return out
	}
	for _, tc := range []struct {
		host, path string
		want       []row
	}{
		{"www.example.com", "/bad/page", []row{
			{"iwf", "www.example.com", "child-abuse", false, true, "it-iwf"},
			{"local", "com", "shopping", false, false, "it-hand"},
			{"local", "example.com", "gambling", false, false, "it-hand"},
			{"local", "www.example.com/bad/page", "chat", false, false, "it-hand"},
			{"vendor", "example.com", "adult", false, false, "it-vendor"},
			{"vendor", "example.com/bad", "games", false, false, "it-vendor"}, // a parent's URL entry covers the path too
			{"vendor", "www.example.com", "adult", true, false, "it-vendor"},
			{"vendor", "www.example.com/bad", "adult,violence", false, false, "it-vendor"},
		}},
		{"www.example.com", "", []row{
			{"iwf", "www.example.com", "child-abuse", false, true, "it-iwf"},
			{"local", "com", "shopping", false, false, "it-hand"},
			{"local", "example.com", "gambling", false, false, "it-hand"},
			{"vendor", "example.com", "adult", false, false, "it-vendor"},
			{"vendor", "www.example.com", "adult", true, false, "it-vendor"},
		}},
		{"example.com", "/bad", []row{
			{"local", "com", "shopping", false, false, "it-hand"},
			{"local", "example.com", "gambling", false, false, "it-hand"},
			{"vendor", "example.com", "adult", false, false, "it-vendor"},
			{"vendor", "example.com/bad", "games", false, false, "it-vendor"},
		}},
		{"example.com", "/badger", []row{
			{"local", "com", "shopping", false, false, "it-hand"},
			{"local", "example.com", "gambling", false, false, "it-hand"},
			{"vendor", "example.com", "adult", false, false, "it-vendor"},
		}},
		{"nowhere.invalid", "/", nil},
	} {
		t.Run(tc.host+tc.path, func(t *testing.T) {
			found, err := s.Find(tc.host, tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := rows(found); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Find(%q, %q):\n got  %v\n want %v", tc.host, tc.path, got, tc.want)
			}
			for _, f := range found {
				if f.Feed == "vendor" && f.Reason != "vendor list" || f.Feed == LocalFeed && f.Reason != "by hand" {
					t.Errorf("reason of %+v", f)
				}
			}
		})
	}
}

// ---- benchmarks ----

func genFeed(name string, n, offset int, m categories.Mask) *Feed {
	f := NewFeed(FeedInfo{Name: name, Reason: "benchmark"})
	for i := range n {
		j := i + offset
		f.Add(fmt.Sprintf("h%07d.d%04d.example-%d.com", j, j%9973, j%31), m)
	}
	return f
}

func BenchmarkReplaceFeed(b *testing.B) {
	s, _ := openNew(b)
	f := genFeed("vendor", 100_000, 0, mask(b, "adult"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ReplaceFeed("bench", f); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100_000, "ns/entry")
}

func BenchmarkLoadSnapshot(b *testing.B) {
	s, _ := openNew(b)
	const perFeed, feeds = 250_000, 4
	masks := []categories.Mask{mask(b, "adult"), mask(b, "games"), mask(b, "gambling", "adult"), mask(b, "social-networks")}
	for i := range feeds {
		f := genFeed(fmt.Sprintf("feed%d", i), perFeed, i*perFeed, masks[i])
		if _, err := s.ReplaceFeed("bench", f); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var snap *categories.Snapshot
	for b.Loop() {
		var err error
		if snap, err = s.LoadSnapshot(); err != nil {
			b.Fatal(err)
		}
	}
	if snap.Index().Len() != perFeed*feeds {
		b.Fatalf("index has %d entries", snap.Index().Len())
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/build")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(perFeed*feeds), "ns/entry")
}
