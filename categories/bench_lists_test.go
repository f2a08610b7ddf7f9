package categories_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"hedgerow/categories"
	"hedgerow/e2e/sharedlists"
)

// loadSharedIndex builds an Index from every list in ../shared/lists, the
// way the store does after `hedgerow import` of each of them, plus pad
// synthetic adult names; ref, when not nil, gets every domain entry too.
func loadSharedIndex(tb testing.TB, tax *categories.Taxonomy, ref map[string]categories.Mask, pad int) (*categories.Index, string) {
	tb.Helper()
	dir := sharedlists.Dir()
	if dir == "" {
		tb.Skip(sharedlists.SkipMessage)
	}
	b := categories.NewIndexBuilder(1 << 20)
	var each func(string, categories.Mask)
	if ref != nil {
		each = func(target string, m categories.Mask) {
			if !strings.Contains(target, "/") {
				ref[target] |= m
			}
		}
	}
	if err := sharedlists.AddAll(context.Background(), dir, tax, b, each); err != nil {
		tb.Fatal(err)
	}
	if pad > 0 {
		adult, _ := tax.MaskOf("adult")
		for _, n := range syntheticNames(1, pad) {
			if ref != nil {
				ref[n] |= adult
			}
			if err := b.Add(n, adult); err != nil {
				tb.Fatal(err)
			}
		}
	}
	idx, err := b.Build()
	if err != nil {
		tb.Fatal(err)
	}
	return idx, dir
}

// heapAfterGC returns the live heap after a full collection.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// reportIndexMemory measures the heap an index holds: the heap with it alive
// minus the heap once it is dropped.
func reportIndexMemory(b *testing.B, build func() *categories.Index) (*categories.Index, func()) {
	before := heapAfterGC()
	idx := build()
	after := heapAfterGC()
	bytes := float64(after) - float64(before)
	report := func() { // after the timed loop: ResetTimer drops reported metrics
		b.ReportMetric(bytes/float64(idx.Len()), "heap-B/entry")
		b.ReportMetric(float64(idx.Len()), "entries")
	}
	b.Logf("index: %d entries (%d domains, %d URL prefixes), %.1f MiB heap, %.1f bytes/entry",
		idx.Len(), idx.Domains(), idx.URLs(), bytes/(1<<20), bytes/float64(idx.Len()))
	return idx, report
}

// packed copies names into one contiguous string, as a server sees them:
// each name freshly read from a packet, not scattered over the heap (which
// would make every benchmark iteration pay a cache miss for the name itself).
func packed(names []string) []string {
	var sb strings.Builder
	for _, n := range names {
		sb.WriteString(n)
	}
	all := sb.String()
	out := make([]string, len(names))
	off := 0
	for i, n := range names {
		out[i] = all[off : off+len(n)]
		off += len(n)
	}
	return out
}

// perCall times calls one by one and returns the median and the 99th
// percentile per call (the timer's own cost, measured the same way, is
// subtracted): the mean ns/op hides that most names are never on a list.
func perCall(n int, call func(i int)) (p50, p99 time.Duration) {
	timerCost := make([]time.Duration, 10000)
	for i := range timerCost {
		t := time.Now()
		timerCost[i] = time.Since(t)
	}
	slices.Sort(timerCost)
	overhead := timerCost[len(timerCost)/2]
	d := make([]time.Duration, n)
	for i := range d {
		t := time.Now()
		call(i)
		d[i] = time.Since(t) - overhead
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100]
}

// mapWalk is the reference a Decide is measured against: the categories of
// every level of a host in a plain Go map, walked label by label, as the
// in-process floor of ../shared/bench (lookupbench) does.
func mapWalk(m map[string]categories.Mask, host string) (c categories.Mask) {
	for {
		c |= m[host]
		i := strings.IndexByte(host, '.')
		if i < 0 {
			return c
		}
		host = host[i+1:]
	}
}

// BenchmarkDecideQuerymix decides the 200,000-name DNS query mix of
// ../shared/lists/querymix against every real list, for ks2; "5M" pads the
// lists with synthetic adult names to 5 million entries, the size of the
// full UT1 adult list.
func BenchmarkDecideQuerymix(b *testing.B) {
	for _, bc := range []struct {
		name  string
		total int
	}{{"lists", 0}, {"5M", 5_000_000}} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.total > 0 && testing.Short() {
				b.Skip("5M-entry index: skipped in -short mode")
			}
			tax := categories.Builtin()
			pad := 0
			if bc.total > 0 {
				pad = bc.total - sharedListEntries
			}
			var dir string
			idx, reportMem := reportIndexMemory(b, func() *categories.Index {
				idx, d := loadSharedIndex(b, tax, nil, pad)
				dir = d
				return idx
			})
			snap, err := categories.NewSnapshot(tax, idx, categories.DefaultPolicy(tax))
			if err != nil {
				b.Fatal(err)
			}
			names, err := sharedlists.QueryNames(dir)
			if err != nil {
				b.Fatal(err)
			}
			// The reference map is read apart, so that the index's memory is
			// measured alone.
			ref := map[string]categories.Mask{}
			loadSharedIndex(b, tax, ref, pad)
			benchDecide(b, snap, packed(names), ref)
			reportMem()
		})
	}
}

// sharedListEntries is about how many entries ../shared/lists makes.
const sharedListEntries = 686_462

// benchDecide decides the queries for ks2 in a loop (after logging the
// share blocked), then reports per-call percentiles. The machines are
// shared and noisy, so the median is also measured against a plain Go map
// of the same entries (ref), in interleaved rounds: the ratio holds still
// where the nanoseconds do not.
func benchDecide(b *testing.B, snap *categories.Snapshot, queries []string, ref map[string]categories.Mask) {
	now := time.Now()
	blocked := 0
	for _, q := range queries {
		if snap.Decide("ks2", q, "", now).Action == categories.Block {
			blocked++
		}
	}
	b.Logf("%d queries, %.1f%% blocked for ks2", len(queries), 100*float64(blocked)/float64(len(queries)))
	// Building the index, the reference and the queries leaves hundreds of
	// megabytes of garbage: collect it now, as a server long has by the time
	// it answers, rather than under the timer.
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		snap.Decide("ks2", queries[i], "", now)
		i++
		if i == len(queries) {
			i = 0
		}
	}
	b.StopTimer()
	const rounds = 3
	var p50s, p99s, refs []time.Duration
	var sink categories.Mask
	for r := 0; r < rounds; r++ {
		p50, p99 := perCall(len(queries), func(i int) { snap.Decide("ks2", queries[i], "", now) })
		m50, _ := perCall(len(queries), func(i int) { sink |= mapWalk(ref, queries[i]) })
		p50s, p99s, refs = append(p50s, p50), append(p99s, p99), append(refs, m50)
	}
	_ = sink
	ratios := make([]float64, rounds)
	for r := range ratios {
		ratios[r] = float64(p50s[r]) / float64(refs[r])
	}
	med := func(d []time.Duration) float64 {
		d = slices.Clone(d)
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds())
	}
	slices.Sort(ratios)
	b.Logf("per-call median %v, map walk %v (interleaved rounds)", p50s, refs)
	b.ReportMetric(med(p50s), "p50-ns/call")
	b.ReportMetric(med(p99s), "p99-ns/call")
	b.ReportMetric(med(refs), "map-p50-ns/call")
	b.ReportMetric(ratios[len(ratios)/2], "p50-vs-map")
	b.StartTimer()
}

// syntheticNames makes n distinct, realistic domain names: two or three
// labels of words and numbers under a weighted mix of TLDs.
func syntheticNames(seed uint64, n int) []string {
	words := strings.Fields(`best free online top my the get buy cheap live news shop game games play bet casino
		poker slot win club hot girls dating chat video tube stream movie film music radio sport football
		travel hotel tickets deal sale store market trade crypto coin cash money loan bank pay health pharma
		pills style fashion beauty fit diet food recipe pizza coffee wine vape smoke tech soft app web net
		cloud host data code dev digital smart mobile phone cyber secure vpn proxy unblock hide anon fast easy
		pro max ultra mega star sun moon sky blue red green black gold city world euro london paris home
		kids teen family pet dog cat art photo pics gallery book read learn school exam quiz science story
		comic anime manga fan forum blog wiki info guide review social friend link share hub zone spot site`)
	tlds := []string{"com", "com", "com", "com", "com", "net", "org", "ru", "info", "de", "xyz", "co.uk",
		"top", "io", "online", "fr", "nl", "pl", "com.br", "in", "jp", "biz", "club", "me", "tv", "us", "xxx"}
	prefixes := []string{"www", "m", "cdn", "api", "static", "ads", "img", "mail", "app", "blog", "shop"}
	r := rand.New(rand.NewPCG(seed, seed))
	seen := make(map[string]struct{}, n)
	out := make([]string, 0, n)
	for len(out) < n {
		name := words[r.IntN(len(words))] + words[r.IntN(len(words))]
		if r.IntN(3) == 0 {
			name += fmt.Sprint(r.IntN(10000))
		}
		name += "." + tlds[r.IntN(len(tlds))]
		if r.IntN(5) == 0 {
			name = prefixes[r.IntN(len(prefixes))] + "." + name
		}
		if _, dup := seen[name]; dup {
			continue
		}
		seen[name] = struct{}{}
		out = append(out, name)
	}
	return out
}

// BenchmarkDecide5M decides a realistic mix (20% listed names, the rest not
// listed, with subdomain prefixes) against a synthetic 5-million-entry index,
// the size of the full UT1 adult list.
func BenchmarkDecide5M(b *testing.B) {
	if testing.Short() {
		b.Skip("5M-entry index: skipped in -short mode")
	}
	tax := categories.Builtin()
	adult, _ := tax.MaskOf("adult")
	const n = 5_000_000
	names := syntheticNames(1, n)
	idx, reportMem := reportIndexMemory(b, func() *categories.Index {
		bld := categories.NewIndexBuilder(n)
		for _, name := range names {
			if err := bld.Add(name, adult); err != nil {
				b.Fatal(err)
			}
		}
		idx, err := bld.Build()
		if err != nil {
			b.Fatal(err)
		}
		return idx
	})
	snap, err := categories.NewSnapshot(tax, idx, categories.DefaultPolicy(tax))
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 2))
	listed := make(map[string]struct{}, len(names))
	for _, n := range names {
		listed[n] = struct{}{}
	}
	queries := make([]string, 0, 250_000)
	for i := 0; i < 50_000; i++ {
		queries = append(queries, names[r.IntN(len(names))])
	}
	// Benign names share the lists' vocabulary but are not on them, nor
	// are their parents.
	for _, o := range syntheticNames(3, 1_000_000) {
		if len(queries) == cap(queries) {
			break
		}
		q, hit := "www."+o, false
		for i := 0; i >= 0 && !hit; {
			_, hit = listed[q[i:]]
			if j := strings.IndexByte(q[i:], '.'); j >= 0 {
				i += j + 1
			} else {
				i = -1
			}
		}
		if !hit {
			queries = append(queries, q)
		}
	}
	r.Shuffle(len(queries), func(i, j int) { queries[i], queries[j] = queries[j], queries[i] })
	names = nil
	ref := make(map[string]categories.Mask, len(listed))
	for n := range listed {
		ref[n] = adult
	}
	listed = nil
	benchDecide(b, snap, packed(queries), ref)
	reportMem()
}
