package store

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// sampleStore holds two feeds and a hand-added entry:
//   - adult: 40 domains in "vendor" (20 of them in "other" too), 5 URLs, 3 IPs;
//   - games: URL entries and IPv4/IPv6 addresses only;
//   - gambling: only exceptions, so it has nothing to sample;
//   - chat: one hand-added entry.
func sampleStore(t testing.TB) *Store {
	t.Helper()
	s, _ := openNew(t)
	vendor := map[string][]string{}
	other := map[string][]string{}
	for i := range 40 {
		name := fmt.Sprintf("site%02d.example", i)
		vendor[name] = []string{"adult"}
		if i%2 == 0 {
			other[name] = []string{"adult"}
		}
	}
	for i := range 5 {
		vendor[fmt.Sprintf("pages.example/adult/%d", i)] = []string{"adult"}
	}
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		vendor[ip] = []string{"adult"}
	}
	other["games.example/play"] = []string{"games"}
	other["games.example/more"] = []string{"games"}
	other["198.51.100.7"] = []string{"games"}
	other["2001:db8::7"] = []string{"games"}
	if _, err := s.ReplaceFeed("test", feedOf(t, FeedInfo{Name: "vendor", Reason: "test"}, vendor,
		map[string][]string{"casino.example": {"gambling"}})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceFeed("test", feedOf(t, FeedInfo{Name: "other", Reason: "test"}, other, nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEntry("test", "chat.example", []string{"chat"}, "test"); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSampleEntries(t *testing.T) {
	s := sampleStore(t)
	isDomain := func(n string) bool { return isDomainEntry([]byte(n)) }
	tests := []struct {
		per  int
		want map[string]int // category -> sample size
		// domainsOnly lists categories whose sample must be domains alone.
		domainsOnly []string
	}{
		{per: 1, want: map[string]int{"adult": 1, "games": 1, "chat": 1}, domainsOnly: []string{"adult", "chat"}},
		{per: 3, want: map[string]int{"adult": 3, "games": 3, "chat": 1}, domainsOnly: []string{"adult"}},
		{per: 40, want: map[string]int{"adult": 40, "games": 4, "chat": 1}, domainsOnly: []string{"adult"}},
		// Past the 40 domains, URL entries and addresses fill the rest.
		{per: 45, want: map[string]int{"adult": 45, "games": 4, "chat": 1}},
		{per: 1000, want: map[string]int{"adult": 48, "games": 4, "chat": 1}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.per), func(t *testing.T) {
			got, err := s.SampleEntries(tt.per)
			if err != nil {
				t.Fatal(err)
			}
			sizes := map[string]int{}
			for cat, names := range got {
				sizes[cat] = len(names)
			}
			if !reflect.DeepEqual(sizes, tt.want) {
				t.Fatalf("sample sizes %v, want %v (sample %v)", sizes, tt.want, got)
			}
			for cat, names := range got {
				seen := map[string]bool{}
				tail := false
				for _, n := range names {
					if seen[n] {
						t.Errorf("%s: %s sampled twice", cat, n)
					}
					seen[n] = true
					if !isDomain(n) {
						tail = true
					} else if tail {
						t.Errorf("%s: domain %s after a URL or address in %v: domains must come first", cat, n, names)
					}
					host, path, isURL := strings.Cut(n, "/")
					if isURL {
						path = "/" + path
					}
					found, err := s.Find(host, path)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.ContainsFunc(found, func(f Found) bool { return !f.Exception && slices.Contains(f.Categories, cat) }) {
						t.Errorf("%s: sampled %s is not an entry of the category (found %+v)", cat, n, found)
					}
				}
				if slices.Contains(tt.domainsOnly, cat) && tail {
					t.Errorf("%s: %v has non-domain entries although enough domains exist", cat, names)
				}
			}
			again, err := s.SampleEntries(tt.per)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("second sample differs: %v, %v; first %v", again, err, got)
			}
		})
	}
}

// TestSampleEntriesSpread: the sample is not simply the first names in
// alphabetical order, which would always test the same corner of a list.
func TestSampleEntriesSpread(t *testing.T) {
	s := sampleStore(t)
	got, err := s.SampleEntries(5)
	if err != nil {
		t.Fatal(err)
	}
	first := []string{"site00.example", "site01.example", "site02.example", "site03.example", "site04.example"}
	sorted := slices.Sorted(slices.Values(got["adult"]))
	if reflect.DeepEqual(sorted, first) {
		t.Errorf("sample %v is the alphabetical head of the list", got["adult"])
	}
}

func TestSampleEntriesEmptyAndBadArgs(t *testing.T) {
	s, _ := openNew(t)
	got, err := s.SampleEntries(3)
	if err != nil || len(got) != 0 {
		t.Errorf("empty store: %v, %v; want no categories", got, err)
	}
	for _, n := range []int{-1, 0, MaxSamplePerCategory + 1} {
		if _, err := s.SampleEntries(n); err == nil || !strings.Contains(err.Error(), "per category") {
			t.Errorf("SampleEntries(%d): %v; want an error naming the bound", n, err)
		}
	}
}

// TestBottomK checks the reservoir against the obvious definition: the k
// distinct names with the smallest hashes, in hash order.
func TestBottomK(t *testing.T) {
	var names []string
	for i := range 300 {
		names = append(names, fmt.Sprintf("n%d.example", i%200)) // 100 repeats
	}
	for _, k := range []int{1, 2, 7, 199, 200, 250} {
		b := bottomK{k: k}
		for _, n := range names {
			b.offer([]byte(n))
		}
		uniq := slices.Compact(slices.Sorted(slices.Values(names)))
		slices.SortFunc(uniq, func(x, y string) int {
			hx, hy := fnv64a([]byte(x)), fnv64a([]byte(y))
			switch {
			case hx < hy:
				return -1
			case hx > hy:
				return 1
			}
			return strings.Compare(x, y)
		})
		want := uniq[:min(k, len(uniq))]
		if got := b.names(); !reflect.DeepEqual(got, want) {
			t.Errorf("k=%d: got %v, want %v", k, got, want)
		}
	}
}

func TestIsDomainEntry(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"example.com", true}, {"123.example", true}, {"1.2.3.com", true}, {"xn--bcher-kva.example", true},
		{"192.0.2.1", false}, {"[2001:db8::1]", false}, {"2001:db8::1", false},
		{"example.com/path", false}, {"", false},
	} {
		if got := isDomainEntry([]byte(tt.in)); got != tt.want {
			t.Errorf("isDomainEntry(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRecordSelftest(t *testing.T) {
	s, _ := openNew(t)
	rec := SelftestRecord{Report: "/data/selftest/selftest-20260304-090000.html", Probes: 10, Passed: 9, Failed: 1,
		Probed: []string{"ks2"}, NotProbed: []string{"staff"}}
	if err := s.RecordSelftest("cli:it", rec); err != nil {
		t.Fatal(err)
	}
	recs, err := s.Audit(1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("Audit: %v, %v", recs, err)
	}
	r := recs[0]
	if r.Actor != "cli:it" || r.Action != "selftest" || r.Target != rec.Report || !strings.Contains(r.Reason, "9 of 10") {
		t.Errorf("audit record %+v", r)
	}
	var after SelftestRecord
	if err := json.Unmarshal(r.After, &after); err != nil || !reflect.DeepEqual(after, rec) {
		t.Errorf("audit after = %s (%v), want %+v", r.After, err, rec)
	}
	if !absent(r.Before) {
		t.Errorf("audit before = %s, want none", r.Before)
	}
}

// BenchmarkSampleEntries answers: how long does a self-test wait for its
// sample of a large database (a million entries in four feeds)?
func BenchmarkSampleEntries(b *testing.B) {
	s, _ := openNew(b)
	masks := []string{"adult", "games", "gambling", "social-networks"}
	for i, m := range masks {
		if _, err := s.ReplaceFeed("bench", genFeed(fmt.Sprintf("feed%d", i), 250_000, i*250_000, mask(b, m))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.SampleEntries(5)
		if err != nil || len(got) != len(masks) {
			b.Fatalf("%v %v", got, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/sample")
}
