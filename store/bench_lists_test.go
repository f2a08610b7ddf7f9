package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"hedgerow/categories"
	"hedgerow/categories/listfile"
	"hedgerow/e2e/sharedlists"
	"hedgerow/store"
)

// importShared imports every list in ../shared/lists into s, one feed per
// file (UT1 as one feed), as `hedgerow import` does.
func importShared(tb testing.TB, s *store.Store, tax *categories.Taxonomy, dir string) int {
	tb.Helper()
	total := 0
	one := func(feed, source, category string) {
		f := store.NewFeed(store.FeedInfo{Name: feed, Source: source, Reason: "benchmark"})
		rep, err := listfile.Read(context.Background(), source, listfile.Options{Category: category}, func(e listfile.Entry) error {
			m, err := tax.MaskOf(e.Category)
			if err != nil {
				return err
			}
			if e.Allow {
				f.AddException(e.Target, m)
			} else {
				f.Add(e.Target, m)
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		f.Info.Malformed = rep.Malformed
		if _, err := s.ReplaceFeed("bench", f); err != nil {
			tb.Fatal(err)
		}
		total += f.Len()
	}
	one(sharedlists.UT1Feed, filepath.Join(dir, "ut1"), "")
	for _, f := range sharedlists.Files {
		one(f.Feed, filepath.Join(dir, f.Path), f.Category)
	}
	return total
}

// BenchmarkImportSharedLists imports all of ../shared/lists into an empty
// store: the figure behind "import of everything in at most 60 s".
func BenchmarkImportSharedLists(b *testing.B) {
	dir := sharedlists.Dir()
	if dir == "" {
		b.Skip(sharedlists.SkipMessage)
	}
	tax := categories.Builtin()
	b.ReportAllocs()
	entries := 0
	for b.Loop() {
		b.StopTimer()
		s, err := store.Open(filepath.Join(b.TempDir(), "hedgerow.db"), tax, store.Options{
			Defaults: store.Defaults{Policy: categories.DefaultPolicy(tax)}})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		entries = importShared(b, s, tax, dir)
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(entries), "entries")
}

// BenchmarkLoadSnapshotSharedLists builds the Index and policy from a store
// holding all of ../shared/lists: the start-up cost of `hedgerow serve`.
func BenchmarkLoadSnapshotSharedLists(b *testing.B) {
	dir := sharedlists.Dir()
	if dir == "" {
		b.Skip(sharedlists.SkipMessage)
	}
	tax := categories.Builtin()
	s, err := store.Open(filepath.Join(b.TempDir(), "hedgerow.db"), tax, store.Options{
		Defaults: store.Defaults{Policy: categories.DefaultPolicy(tax)}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	importShared(b, s, tax, dir)
	b.ReportAllocs()
	var snap *categories.Snapshot
	for b.Loop() {
		if snap, err = s.LoadSnapshot(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(snap.Index().Len()), "entries")
}
