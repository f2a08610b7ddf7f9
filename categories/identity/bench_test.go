package identity

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"hedgerow/categories"
	"hedgerow/e2e/sharedlists"
)

// benchBase is 08:00 on the test day: the start of the bench histories.
var benchBase = utc(8, 0)

func addrOf(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func macOf(i int) string {
	return fmt.Sprintf("02:00:00:%02x:%02x:%02x", byte(i>>16), byte(i>>8), byte(i))
}

// benchTable is a school day's table of n addresses. Each moved once, from
// device n+i (08:00-09:00, user old<i> on it 08:05-08:50) to device i
// (09:00-16:00, user<i> on it from 09:05 and still on).
func benchTable(n int) *Table {
	tb := NewTable(Options{Now: func() time.Time { return benchBase.Add(2 * time.Hour) }})
	leases := make([]Lease, 0, 2*n)
	sessions := make([]Session, 0, 2*n)
	for i := range n {
		a := addrOf(i)
		leases = append(leases,
			Lease{Addr: a, MAC: macOf(n + i), Hostname: fmt.Sprintf("old-%d", i), Start: benchBase, End: benchBase.Add(time.Hour), Source: FormatISC},
			Lease{Addr: a, MAC: macOf(i), Hostname: fmt.Sprintf("pc-%d", i), Start: benchBase.Add(time.Hour), End: benchBase.Add(8 * time.Hour), Source: FormatISC})
		sessions = append(sessions,
			Session{Addr: a, User: fmt.Sprintf("old%d", i), MAC: macOf(n + i), NAS: "wlc", Start: benchBase.Add(5 * time.Minute), End: benchBase.Add(50 * time.Minute)},
			Session{Addr: a, User: fmt.Sprintf("user%d", i), MAC: macOf(i), NAS: "wlc", Start: benchBase.Add(65 * time.Minute)})
	}
	tb.ApplyLeases(LeaseRead{Origin: "dhcpd.leases", Format: FormatISC, At: benchBase, Leases: leases})
	if err := tb.ApplySessions(sessions); err != nil {
		panic(err) // the fixture is built right or the benchmark means nothing
	}
	return tb
}

// BenchmarkLookup answers: what does naming the client cost a DNS query, on
// a table of 10,000 addresses with 20,000 leases and 20,000 sessions? Target:
// well under 100 ns and no allocation.
func BenchmarkLookup(b *testing.B) {
	const n = 10000
	tb := benchTable(n)
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		addrs[i] = addrOf((i * 7919) % n)
	}
	unknown := make([]netip.Addr, len(addrs))
	for i := range unknown {
		unknown[i] = netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)})
	}
	for _, bc := range []struct {
		name  string
		addrs []netip.Addr
		at    time.Time
		want  string
	}{
		{"now", addrs, benchBase.Add(2 * time.Hour), "user"},
		{"before-move", addrs, benchBase.Add(30 * time.Minute), "old"},
		{"unknown-address", unknown, benchBase.Add(2 * time.Hour), ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if w := tb.Lookup(bc.addrs[0], bc.at); len(w.User) < len(bc.want) || w.User[:len(bc.want)] != bc.want {
				b.Fatalf("Lookup = %+v, want a user starting %q", w, bc.want)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tb.Lookup(bc.addrs[i&4095], bc.at)
				i++
			}
		})
	}
}

// BenchmarkApplySession answers: what does one RADIUS Start cost the
// listener on a table of 10,000 addresses (a merge and a new snapshot)?
func BenchmarkApplySession(b *testing.B) {
	const n = 10000
	tb := benchTable(n)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s := Session{Addr: addrOf(i % n), User: "roamer", Start: benchBase.Add(2*time.Hour + time.Duration(i)*time.Millisecond)}
		if err := tb.ApplySession(s); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkApplyLeases answers: what does re-reading a 20,000-lease file in
// which one lease changed cost?
func BenchmarkApplyLeases(b *testing.B) {
	const n = 10000
	tb := benchTable(n)
	leases := make([]Lease, 0, 2*n)
	for i := range n {
		leases = append(leases,
			Lease{Addr: addrOf(i), MAC: macOf(n + i), Hostname: fmt.Sprintf("old-%d", i), Start: benchBase, End: benchBase.Add(time.Hour), Source: FormatISC},
			Lease{Addr: addrOf(i), MAC: macOf(i), Hostname: fmt.Sprintf("pc-%d", i), Start: benchBase.Add(time.Hour), End: benchBase.Add(8 * time.Hour), Source: FormatISC})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		leases[len(leases)-1].End = benchBase.Add(8*time.Hour + time.Duration(i)*time.Second)
		tb.ApplyLeases(LeaseRead{Origin: "dhcpd.leases", Format: FormatISC, At: benchBase, Leases: leases})
		i++
	}
}

// BenchmarkParse answers: what does reading a 10,000-lease file cost the
// follower each time the DHCP server writes it?
func BenchmarkParse(b *testing.B) {
	const n = 10000
	var isc, kea, dnsmasq strings.Builder
	kea.WriteString(keaHeader4)
	for i := range n {
		a, mac, end := addrOf(i).String(), macOf(i), benchBase.Add(8*time.Hour)
		isc.WriteString(iscLease(a, mac, fmt.Sprintf("pc-%d", i), benchBase, end, "active"))
		kea.WriteString(keaRow4(a, mac, 28800, end, fmt.Sprintf("pc-%d", i), 0))
		fmt.Fprintf(&dnsmasq, "%d %s %s pc-%d 01:%s\n", end.Unix(), mac, a, i, mac)
	}
	for _, bc := range []struct {
		name  string
		parse Parser
		file  string
	}{
		{"isc", ParseISC, isc.String()},
		{"kea", ParseKea, kea.String()},
		{"dnsmasq", ParseDnsmasq, dnsmasq.String()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.file)))
			for b.Loop() {
				leases, err := bc.parse(strings.NewReader(bc.file), bc.name)
				if err != nil || len(leases) != n {
					b.Fatalf("%d leases, %v", len(leases), err)
				}
			}
		})
	}
}

// BenchmarkDecideWithIdentity is what a DNS query costs with identity on:
// naming the client on a table of 10,000 addresses (20,000 leases, 20,000
// sessions), then Decide for its group with every list of ../shared/lists
// loaded, for the 200,000 names of its query mix. The core's floor for the
// two together is a median of 300 ns and no allocation, so besides the mean
// it reports the median and the 99th percentile of calls timed one by one,
// and the medians of the two parts alone.
//
// Which client asks each query is the one thing the query mix does not
// say, so there are two models of it:
//   - spread: every query from the next of the 10,000 addresses in turn, a
//     device's queries 10,000 apart. Its slot has always left the cache,
//     so every lookup waits for memory: the worst case.
//   - bursts: devices ask in bursts, as a browser loading a page does, of
//     1 to 16 queries; 256 devices are mid-burst at any time, their
//     queries interleaved, each replaced by another of the 10,000 when its
//     burst ends. A device's slot stays cached through its burst.
func BenchmarkDecideWithIdentity(b *testing.B) {
	dir := sharedlists.Dir()
	if dir == "" {
		b.Skip(sharedlists.SkipMessage)
	}
	const n = 10000
	tb := benchTable(n)
	tax := categories.Builtin()
	ib := categories.NewIndexBuilder(1 << 20)
	if err := sharedlists.AddAll(context.Background(), dir, tax, ib, nil); err != nil {
		b.Fatal(err)
	}
	idx, err := ib.Build()
	if err != nil {
		b.Fatal(err)
	}
	snap, err := categories.NewSnapshot(tax, idx, categories.DefaultPolicy(tax))
	if err != nil {
		b.Fatal(err)
	}
	mix, err := sharedlists.QueryNames(dir)
	if err != nil {
		b.Fatal(err)
	}
	// One packed string, as names read from packets are, not strings
	// scattered over the heap.
	all := strings.Join(mix, "")
	queries := len(mix)
	names := make([]string, queries)
	for i, start := 0, 0; i < queries; i++ {
		names[i], start = all[start:start+len(mix[i])], start+len(mix[i])
	}
	mix = nil
	spread := make([]netip.Addr, queries)
	for i := range spread {
		spread[i] = addrOf((i * 7919) % n)
	}
	bursts := make([]netip.Addr, queries)
	rng := rand.New(rand.NewPCG(7, 8))
	type device struct{ addr, left int }
	active := make([]device, 256)
	for i := range active {
		active[i] = device{rng.IntN(n), 1 + rng.IntN(16)}
	}
	for i := range bursts {
		d := &active[rng.IntN(len(active))]
		bursts[i] = addrOf(d.addr)
		if d.left--; d.left == 0 {
			*d = device{rng.IntN(n), 1 + rng.IntN(16)}
		}
	}
	at := benchBase.Add(2 * time.Hour)
	timer := make([]time.Duration, 10000)
	for i := range timer {
		t := time.Now()
		timer[i] = time.Since(t)
	}
	slices.Sort(timer)
	for _, model := range []struct {
		name  string
		addrs []netip.Addr
	}{{"spread", spread}, {"bursts", bursts}} {
		b.Run(model.name, func(b *testing.B) {
			addrs := model.addrs
			query := func(i int) categories.Verdict {
				who := tb.Lookup(addrs[i], at)
				group := "ks2"
				if who.Group != "" {
					group = who.Group
				}
				return snap.Decide(group, names[i], "", at)
			}
			blocked := 0
			for i := range queries {
				if query(i).Action == categories.Block {
					blocked++
				}
			}
			b.Logf("%d entries, %d queries, %.1f%% blocked", idx.Len(), queries, 100*float64(blocked)/float64(queries))
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				query(i)
				if i++; i == queries {
					i = 0
				}
			}
			b.StopTimer()
			// Calls timed one by one, the parts alone (for seeing which
			// one moved) and the two together in turns, so that the
			// machine's changes of pace fall on all three alike.
			parts := []func(i int){
				func(i int) { tb.Lookup(addrs[i], at) },
				func(i int) { snap.Decide("ks2", names[i], "", at) },
				func(i int) { query(i) },
			}
			medians := make([][]float64, len(parts))
			d := make([]time.Duration, queries)
			for range 3 {
				for p, call := range parts {
					for i := range d {
						t := time.Now()
						call(i)
						d[i] = time.Since(t) - timer[len(timer)/2]
					}
					slices.Sort(d)
					medians[p] = append(medians[p], float64(d[len(d)/2].Nanoseconds()))
				}
			}
			median := func(p int) float64 { slices.Sort(medians[p]); return medians[p][len(medians[p])/2] }
			b.ReportMetric(median(0), "lookup-p50-ns")
			b.ReportMetric(median(1), "decide-p50-ns")
			b.ReportMetric(median(2), "p50-ns/call")
			b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), "p99-ns/call") // the last turn's
		})
	}
}
