package dnsfilter

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeClock is the cache's clock in tests: time moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 11, 2, 8, 30, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func testQuery(name string, qtype uint16) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.Id = 0x1234
	return q
}

func mustKey(t testing.TB, q *dns.Msg) Key {
	t.Helper()
	k, ok := KeyOf(q)
	if !ok {
		t.Fatalf("KeyOf(%v): not cacheable", q.Question)
	}
	return k
}

// aReply answers q with one A record per TTL.
func aReply(q *dns.Msg, ttls ...uint32) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	m.RecursionAvailable = true
	for i, ttl := range ttls {
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
			A:   net.IPv4(192, 0, 2, byte(i+1)),
		})
	}
	return m
}

func soa(name string, ttl, minttl uint32) *dns.SOA {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:  "ns1." + name, Mbox: "hostmaster." + name,
		Serial: 2026110201, Refresh: 7200, Retry: 900, Expire: 1209600, Minttl: minttl,
	}
}

// negReply is NXDOMAIN (or NODATA when rcode is NOERROR), with the SOA if
// soaRR is not nil.
func negReply(q *dns.Msg, rcode int, soaRR *dns.SOA) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	m.RecursionAvailable = true
	if soaRR != nil {
		m.Ns = []dns.RR{soaRR}
	}
	return m
}

func ttls(m *dns.Msg) []uint32 {
	var out []uint32
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			out = append(out, rr.Header().Ttl)
		}
	}
	return out
}

func allTTLs(t *testing.T, m *dns.Msg, want uint32) {
	t.Helper()
	for _, got := range ttls(m) {
		if got != want {
			t.Fatalf("TTLs %v, want all %d", ttls(m), want)
		}
	}
}

func TestCachePositiveTTLDecrement(t *testing.T) {
	tests := []struct {
		name      string
		recTTLs   []uint32
		after     time.Duration
		wantFresh bool
		wantTTLs  []uint32
	}{
		{"just stored", []uint32{300}, 0, true, []uint32{300}},
		{"100s later", []uint32{300}, 100 * time.Second, true, []uint32{200}},
		{"sub-second rounds down elapsed", []uint32{300}, 1500 * time.Millisecond, true, []uint32{299}},
		{"last second", []uint32{300}, 299 * time.Second, true, []uint32{1}},
		{"expired", []uint32{300}, 300 * time.Second, false, []uint32{30}},
		{"min of the RRset decides expiry", []uint32{600, 60}, 59 * time.Second, true, []uint32{541, 1}},
		{"min of the RRset expired", []uint32{600, 60}, 60 * time.Second, false, []uint32{30, 30}},
		{"top bit set counts as 0 (RFC 2181)", []uint32{1 << 31, 60}, 0, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			c := NewCache(CacheConfig{}, clk.Now)
			q := testQuery("www.example.org.", dns.TypeA)
			k := mustKey(t, q)
			c.Put(k, aReply(q, tt.recTTLs...))
			clk.Advance(tt.after)
			q2 := testQuery("www.example.org.", dns.TypeA)
			q2.Id = 777
			got, fresh, failed, ok := c.Get(k, q2)
			if tt.wantTTLs == nil {
				if ok || c.Len() != 0 {
					t.Fatalf("cached a reply with TTL 0: ok=%v len=%d", ok, c.Len())
				}
				return
			}
			if !ok || fresh != tt.wantFresh || failed {
				t.Fatalf("Get: ok=%v fresh=%v failed=%v, want ok fresh=%v", ok, fresh, failed, tt.wantFresh)
			}
			if fmt.Sprint(ttls(got)) != fmt.Sprint(tt.wantTTLs) {
				t.Errorf("TTLs %v, want %v", ttls(got), tt.wantTTLs)
			}
			if got.Id != 777 || got.Rcode != dns.RcodeSuccess || !got.Response || len(got.Answer) != len(tt.recTTLs) {
				t.Errorf("reply header/answers wrong:\n%v", got)
			}
		})
	}
}

func TestCacheTTLClamp(t *testing.T) {
	tests := []struct {
		name         string
		cfg          CacheConfig
		recTTL       uint32
		wantTTL      uint32        // right after Put
		freshUntil   time.Duration // fresh before, stale from then
		notCacheable bool
	}{
		{"MinTTL raises", CacheConfig{MinTTL: time.Minute}, 5, 60, time.Minute, false},
		{"MinTTL leaves higher", CacheConfig{MinTTL: time.Minute}, 600, 600, 10 * time.Minute, false},
		{"MaxTTL caps", CacheConfig{MaxTTL: time.Hour}, 7 * 86400, 3600, time.Hour, false},
		{"default MaxTTL is a day", CacheConfig{}, 7 * 86400, 86400, 24 * time.Hour, false},
		{"MinTTL above MaxTTL is MaxTTL", CacheConfig{MinTTL: time.Hour, MaxTTL: time.Minute}, 5, 60, time.Minute, false},
		{"TTL 0 not cached", CacheConfig{}, 0, 0, 0, true},
		{"TTL 0 with MinTTL cached", CacheConfig{MinTTL: 10 * time.Second}, 0, 10, 10 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			c := NewCache(tt.cfg, clk.Now)
			q := testQuery("clamp.example.", dns.TypeA)
			k := mustKey(t, q)
			c.Put(k, aReply(q, tt.recTTL))
			got, fresh, _, ok := c.Get(k, q)
			if tt.notCacheable {
				if ok {
					t.Fatalf("cached: %v", got)
				}
				return
			}
			if !ok || !fresh {
				t.Fatalf("Get: ok=%v fresh=%v", ok, fresh)
			}
			allTTLs(t, got, tt.wantTTL)
			clk.Advance(tt.freshUntil - time.Second)
			if got, fresh, _, ok = c.Get(k, q); !ok || !fresh {
				t.Fatalf("1s before expiry: ok=%v fresh=%v", ok, fresh)
			}
			allTTLs(t, got, 1)
			clk.Advance(time.Second)
			if _, fresh, _, ok = c.Get(k, q); !ok || fresh {
				t.Fatalf("at expiry: ok=%v fresh=%v, want stale", ok, fresh)
			}
		})
	}
}

func TestCacheNegative(t *testing.T) {
	const zone = "example.org."
	tests := []struct {
		name       string
		cfg        CacheConfig
		rcode      int
		soa        *dns.SOA
		cname      bool // answer holds a CNAME to a name without the type
		wantTTL    uint32
		notCached  bool
		wantRcode  int
		wantNumNs  int
		wantNumAns int
	}{
		{"NXDOMAIN uses SOA minimum", CacheConfig{}, dns.RcodeNameError, soa(zone, 3600, 300), false, 300, false, dns.RcodeNameError, 1, 0},
		{"NXDOMAIN uses SOA TTL when lower", CacheConfig{}, dns.RcodeNameError, soa(zone, 100, 900), false, 100, false, dns.RcodeNameError, 1, 0},
		{"NXDOMAIN capped by NegativeTTL", CacheConfig{NegativeTTL: time.Minute}, dns.RcodeNameError, soa(zone, 3600, 3600), false, 60, false, dns.RcodeNameError, 1, 0},
		{"NXDOMAIN default cap 1h", CacheConfig{}, dns.RcodeNameError, soa(zone, 86400, 86400), false, 3600, false, dns.RcodeNameError, 1, 0},
		{"NXDOMAIN without SOA 60s", CacheConfig{}, dns.RcodeNameError, nil, false, 60, false, dns.RcodeNameError, 0, 0},
		{"NODATA uses SOA minimum", CacheConfig{}, dns.RcodeSuccess, soa(zone, 3600, 900), false, 900, false, dns.RcodeSuccess, 1, 0},
		{"NODATA without SOA 60s", CacheConfig{}, dns.RcodeSuccess, nil, false, 60, false, dns.RcodeSuccess, 0, 0},
		{"NODATA after CNAME: min with the CNAME", CacheConfig{}, dns.RcodeSuccess, soa(zone, 3600, 900), true, 120, false, dns.RcodeSuccess, 1, 1},
		{"NXDOMAIN with SOA minimum 0 not cached", CacheConfig{}, dns.RcodeNameError, soa(zone, 3600, 0), false, 0, true, 0, 0, 0},
		{"negative caching disabled", CacheConfig{NegativeTTL: -1}, dns.RcodeNameError, soa(zone, 3600, 300), false, 0, true, 0, 0, 0},
		{"MinTTL does not raise negative TTLs", CacheConfig{MinTTL: time.Hour}, dns.RcodeNameError, soa(zone, 3600, 30), false, 30, false, dns.RcodeNameError, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			c := NewCache(tt.cfg, clk.Now)
			q := testQuery("nope."+zone, dns.TypeAAAA)
			k := mustKey(t, q)
			r := negReply(q, tt.rcode, tt.soa)
			if tt.cname {
				r.Answer = []dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: "nope." + zone, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 120}, Target: "v4only." + zone}}
			}
			c.Put(k, r)
			got, fresh, _, ok := c.Get(k, q)
			if tt.notCached {
				if ok || c.Len() != 0 {
					t.Fatalf("cached: %v", got)
				}
				return
			}
			if !ok || !fresh {
				t.Fatalf("Get: ok=%v fresh=%v", ok, fresh)
			}
			if got.Rcode != tt.wantRcode || len(got.Ns) != tt.wantNumNs || len(got.Answer) != tt.wantNumAns {
				t.Fatalf("reply:\n%v", got)
			}
			allTTLs(t, got, tt.wantTTL)
			if tt.soa != nil && got.Ns[0].(*dns.SOA).Minttl != tt.soa.Minttl {
				t.Errorf("SOA MINIMUM changed: %v", got.Ns[0])
			}
			clk.Advance(time.Duration(tt.wantTTL-1) * time.Second)
			if got, fresh, _, ok = c.Get(k, q); !ok || !fresh {
				t.Fatalf("1s before expiry: ok=%v fresh=%v", ok, fresh)
			}
			allTTLs(t, got, 1)
			clk.Advance(time.Second)
			if _, fresh, _, _ = c.Get(k, q); fresh {
				t.Fatal("fresh after the negative TTL")
			}
		})
	}
}

func TestCacheNotCached(t *testing.T) {
	q := testQuery("www.example.org.", dns.TypeA)
	k := mustKey(t, q)
	big := aReply(q, 300)
	for i := range 300 { // 300 × 255-byte TXT strings do not compress
		big.Answer = append(big.Answer, &dns.TXT{
			Hdr: dns.RR_Header{Name: "www.example.org.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300},
			Txt: []string{fmt.Sprintf("%03d", i) + strings.Repeat("x", 252)},
		})
	}
	tests := []struct {
		name  string
		reply func() *dns.Msg
	}{
		{"nil", func() *dns.Msg { return nil }},
		{"truncated", func() *dns.Msg { m := aReply(q, 300); m.Truncated = true; return m }},
		{"SERVFAIL", func() *dns.Msg { return negReply(q, dns.RcodeServerFailure, nil) }},
		{"REFUSED", func() *dns.Msg { return negReply(q, dns.RcodeRefused, nil) }},
		{"FORMERR", func() *dns.Msg { return negReply(q, dns.RcodeFormatError, nil) }},
		{"NOTIMP", func() *dns.Msg { return negReply(q, dns.RcodeNotImplemented, nil) }},
		{"SERVFAIL with answers", func() *dns.Msg { m := aReply(q, 300); m.Rcode = dns.RcodeServerFailure; return m }},
		{"other name", func() *dns.Msg { return aReply(testQuery("evil.example.", dns.TypeA), 300) }},
		{"other type", func() *dns.Msg { return aReply(testQuery("www.example.org.", dns.TypeAAAA), 300) }},
		{"other class", func() *dns.Msg { m := aReply(q, 300); m.Question[0].Qclass = dns.ClassCHAOS; return m }},
		{"no question", func() *dns.Msg { m := aReply(q, 300); m.Question = nil; return m }},
		{"two questions", func() *dns.Msg { m := aReply(q, 300); m.Question = append(m.Question, m.Question[0]); return m }},
		{"not a response", func() *dns.Msg { m := aReply(q, 300); m.Response = false; return m }},
		{"not a query", func() *dns.Msg { m := aReply(q, 300); m.Opcode = dns.OpcodeUpdate; return m }},
		{"nil record", func() *dns.Msg { m := aReply(q, 300); m.Answer = append(m.Answer, nil); return m }},
		{"typed nil record", func() *dns.Msg { m := aReply(q, 300); m.Answer = append(m.Answer, (*dns.A)(nil)); return m }},
		{"larger than 64 KiB", func() *dns.Msg { return big }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache(CacheConfig{}, newFakeClock().Now)
			c.Put(k, tt.reply())
			if got, _, _, ok := c.Get(k, q); ok || c.Len() != 0 {
				t.Fatalf("cached (len %d): %v", c.Len(), got)
			}
		})
	}
	if m, err := big.Pack(); err != nil || len(m) <= 64<<10 {
		t.Fatalf("the large reply packs to %d bytes (%v), want > 64 KiB", len(m), err)
	}
}

func TestCacheKeyOf(t *testing.T) {
	edns := func(q *dns.Msg, do bool) *dns.Msg { q.SetEdns0(1232, do); return q }
	cd := func(q *dns.Msg) *dns.Msg { q.CheckingDisabled = true; return q }
	tests := []struct {
		name string
		q    *dns.Msg
		want Key
		ok   bool
	}{
		{"plain", testQuery("www.example.org.", dns.TypeA), Key{Name: "www.example.org.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, true},
		{"lower-cased", testQuery("WwW.ExAmple.ORG.", dns.TypeAAAA), Key{Name: "www.example.org.", Qtype: dns.TypeAAAA, Qclass: dns.ClassINET}, true},
		{"escaped bytes kept", testQuery(`A\255b.example.`, dns.TypeA), Key{Name: `a\255b.example.`, Qtype: dns.TypeA, Qclass: dns.ClassINET}, true},
		{"EDNS without DO", edns(testQuery("x.example.", dns.TypeA), false), Key{Name: "x.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, true},
		{"DO", edns(testQuery("x.example.", dns.TypeA), true), Key{Name: "x.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET, DO: true}, true},
		{"CD", cd(testQuery("x.example.", dns.TypeA)), Key{Name: "x.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET, CD: true}, true},
		{"DO and CD", cd(edns(testQuery("x.example.", dns.TypeA), true)), Key{Name: "x.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET, DO: true, CD: true}, true},
		{"nil", nil, Key{}, false},
		{"no question", &dns.Msg{}, Key{}, false},
		{"two questions", func() *dns.Msg {
			q := testQuery("x.example.", dns.TypeA)
			q.Question = append(q.Question, q.Question[0])
			return q
		}(), Key{}, false},
		{"update", func() *dns.Msg { q := testQuery("x.example.", dns.TypeSOA); q.Opcode = dns.OpcodeUpdate; return q }(), Key{}, false},
		{"AXFR", testQuery("example.", dns.TypeAXFR), Key{}, false},
		{"IXFR", testQuery("example.", dns.TypeIXFR), Key{}, false},
		{"class ANY", func() *dns.Msg {
			q := testQuery("x.example.", dns.TypeA)
			q.Question[0].Qclass = dns.ClassANY
			return q
		}(), Key{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := KeyOf(tt.q)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("KeyOf = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestCacheKeySeparates(t *testing.T) {
	c := NewCache(CacheConfig{}, newFakeClock().Now)
	stored := testQuery("Www.Example.ORG.", dns.TypeA)
	c.Put(mustKey(t, stored), aReply(stored, 300))

	withDO := testQuery("www.example.org.", dns.TypeA)
	withDO.SetEdns0(1232, true)
	withCD := testQuery("www.example.org.", dns.TypeA)
	withCD.CheckingDisabled = true
	withEDNS := testQuery("www.example.org.", dns.TypeA)
	withEDNS.SetEdns0(1232, false)

	tests := []struct {
		name string
		q    *dns.Msg
		hit  bool
	}{
		{"same spelling", testQuery("Www.Example.ORG.", dns.TypeA), true},
		{"lower case", testQuery("www.example.org.", dns.TypeA), true},
		{"0x20 mixed case", testQuery("wWW.eXAMPLE.oRg.", dns.TypeA), true},
		{"EDNS without DO", withEDNS, true},
		{"DO set", withDO, false},
		{"CD set", withCD, false},
		{"other type", testQuery("www.example.org.", dns.TypeAAAA), false},
		{"other name", testQuery("ww.example.org.", dns.TypeA), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, _, ok := c.Get(mustKey(t, tt.q), tt.q)
			if ok != tt.hit {
				t.Fatalf("hit=%v, want %v", ok, tt.hit)
			}
			if ok && got.Question[0] != tt.q.Question[0] {
				t.Errorf("question %v, want the query's %v", got.Question[0], tt.q.Question[0])
			}
			if ok && got.IsEdns0() != nil {
				t.Error("cached reply carries an OPT record")
			}
		})
	}

	// A key built by hand with upper case finds the same entry, and a query
	// whose question is not the key's is a miss.
	q := testQuery("www.example.org.", dns.TypeA)
	if _, _, _, ok := c.Get(Key{Name: "WWW.EXAMPLE.ORG.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, q); !ok {
		t.Error("upper-case key missed")
	}
	if _, _, _, ok := c.Get(mustKey(t, q), testQuery("other.example.", dns.TypeA)); ok {
		t.Error("answered a query whose question is not the key's")
	}
}

func TestCacheStale(t *testing.T) {
	tests := []struct {
		name     string
		cfg      CacheConfig
		after    time.Duration // after expiry
		wantOK   bool
		wantTTL  uint32
		wantLen  int
		recTTL   uint32
		negative bool
	}{
		{"just expired", CacheConfig{StaleFor: time.Hour}, 0, true, 30, 1, 300, false},
		{"custom StaleTTL", CacheConfig{StaleFor: time.Hour, StaleTTL: 10}, time.Minute, true, 10, 1, 300, false},
		{"last moment", CacheConfig{StaleFor: time.Hour}, time.Hour - time.Nanosecond, true, 30, 1, 300, false},
		{"beyond StaleFor", CacheConfig{StaleFor: time.Hour}, time.Hour, false, 0, 0, 300, false},
		{"default StaleFor is a day", CacheConfig{}, 24*time.Hour - time.Second, true, 30, 1, 300, false},
		{"beyond default StaleFor", CacheConfig{}, 24 * time.Hour, false, 0, 0, 300, false},
		{"stale disabled", CacheConfig{StaleFor: -1}, 0, false, 0, 0, 300, false},
		{"stale negative answer", CacheConfig{StaleFor: time.Hour}, time.Minute, true, 30, 1, 300, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			c := NewCache(tt.cfg, clk.Now)
			q := testQuery("stale.example.", dns.TypeA)
			k := mustKey(t, q)
			r := aReply(q, tt.recTTL, tt.recTTL+100)
			if tt.negative {
				r = negReply(q, dns.RcodeNameError, soa("example.", tt.recTTL, tt.recTTL))
			}
			c.Put(k, r)
			clk.Advance(time.Duration(tt.recTTL)*time.Second + tt.after)
			got, fresh, failed, ok := c.Get(k, q)
			if ok != tt.wantOK || fresh || failed {
				t.Fatalf("Get: ok=%v fresh=%v failed=%v, want ok=%v, not fresh, not failed", ok, fresh, failed, tt.wantOK)
			}
			if ok {
				allTTLs(t, got, tt.wantTTL)
				if got.Id != q.Id || len(ttls(got)) == 0 {
					t.Fatalf("stale reply:\n%v", got)
				}
			} else if got != nil {
				t.Fatal("ok=false with a reply")
			}
			if c.Len() != tt.wantLen {
				t.Errorf("Len %d, want %d (dead entries are dropped)", c.Len(), tt.wantLen)
			}
		})
	}
}

func TestCacheFailure(t *testing.T) {
	q := testQuery("down.example.", dns.TypeA)
	k := mustKey(t, q)
	type step struct {
		do                          string // "put", "fail", "wait"
		wait                        time.Duration
		ok, fresh, failed, checkGet bool
	}
	get := func(ok, fresh, failed bool) step {
		return step{ok: ok, fresh: fresh, failed: failed, checkGet: true}
	}
	tests := []struct {
		name  string
		cfg   CacheConfig
		steps []step
	}{
		{"failure only, default 5s", CacheConfig{}, []step{
			{do: "fail"}, get(false, false, true),
			{do: "wait", wait: 4 * time.Second}, get(false, false, true),
			{do: "wait", wait: time.Second}, get(false, false, false),
		}},
		{"FailureTTL capped at 5 minutes", CacheConfig{FailureTTL: time.Hour}, []step{
			{do: "fail"}, {do: "wait", wait: 5*time.Minute - time.Second}, get(false, false, true),
			{do: "wait", wait: time.Second}, get(false, false, false),
		}},
		{"failure caching disabled", CacheConfig{FailureTTL: -1}, []step{
			{do: "fail"}, get(false, false, false),
		}},
		{"fresh answer wins over failure", CacheConfig{}, []step{
			{do: "put"}, {do: "fail"}, get(true, true, false),
		}},
		{"stale answer with failure", CacheConfig{}, []step{
			{do: "put"}, {do: "wait", wait: 61 * time.Second}, get(true, false, false),
			{do: "fail"}, get(true, false, true),
			{do: "wait", wait: 5 * time.Second}, get(true, false, false),
		}},
		{"failure outlives stale window", CacheConfig{StaleFor: 10 * time.Second, FailureTTL: time.Minute}, []step{
			{do: "put"}, {do: "wait", wait: 65 * time.Second}, {do: "fail"}, get(true, false, true),
			{do: "wait", wait: 10 * time.Second}, get(false, false, true),
			{do: "wait", wait: time.Minute}, get(false, false, false),
		}},
		{"answer clears failure", CacheConfig{}, []step{
			{do: "fail"}, {do: "put"}, get(true, true, false),
			{do: "wait", wait: 61 * time.Second}, get(true, false, false),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			c := NewCache(tt.cfg, clk.Now)
			for i, s := range tt.steps {
				switch {
				case s.do == "put":
					c.Put(k, aReply(q, 60))
				case s.do == "fail":
					c.PutFailure(k)
				case s.do == "wait":
					clk.Advance(s.wait)
				case s.checkGet:
					got, fresh, failed, ok := c.Get(k, q)
					if ok != s.ok || fresh != s.fresh || failed != s.failed || ok != (got != nil) {
						t.Fatalf("step %d: Get ok=%v fresh=%v failed=%v reply=%v; want ok=%v fresh=%v failed=%v",
							i, ok, fresh, failed, got != nil, s.ok, s.fresh, s.failed)
					}
				}
			}
		})
	}
}

func TestCacheEvictionBound(t *testing.T) {
	for _, limit := range []int{1, 5, 31, 100, 1000, 4096} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			c := NewCache(CacheConfig{MaxEntries: limit}, newFakeClock().Now)
			const n = 20_000
			var last Key
			for i := range n {
				q := testQuery(fmt.Sprintf("h%d.example.", i), dns.TypeA)
				last = mustKey(t, q)
				if i%3 == 0 {
					c.PutFailure(last)
				} else {
					c.Put(last, aReply(q, 300))
				}
				if i%97 == 0 && c.Len() > limit {
					t.Fatalf("after %d inserts Len %d > MaxEntries %d", i+1, c.Len(), limit)
				}
			}
			if c.Len() > limit || c.Len() == 0 {
				t.Fatalf("Len %d, MaxEntries %d", c.Len(), limit)
			}
			if ev := c.Stats().Evictions; ev < uint64(n-limit) {
				t.Errorf("Evictions %d, want >= %d", ev, n-limit)
			}
			if _, _, failed, ok := c.Get(last, nil); !ok && !failed {
				t.Error("the last insert was evicted")
			}
		})
	}

	// LRU: a key that is read stays, the others go.
	c := NewCache(CacheConfig{MaxEntries: 3}, newFakeClock().Now)
	keys := make([]Key, 4)
	for i := range keys {
		q := testQuery(fmt.Sprintf("lru%d.example.", i), dns.TypeA)
		keys[i] = mustKey(t, q)
		if i == 3 {
			c.Get(keys[0], nil) // touch the oldest
		}
		c.Put(keys[i], aReply(q, 300))
	}
	for i, want := range []bool{true, false, true, true} {
		if _, _, _, ok := c.Get(keys[i], nil); ok != want {
			t.Errorf("lru%d present=%v, want %v", i, ok, want)
		}
	}
}

func TestCacheDeadEntriesDropped(t *testing.T) {
	clk := newFakeClock()
	c := NewCache(CacheConfig{MaxEntries: 10, StaleFor: time.Minute}, clk.Now)
	for i := range 10 {
		q := testQuery(fmt.Sprintf("old%d.example.", i), dns.TypeA)
		c.Put(mustKey(t, q), aReply(q, 60))
	}
	clk.Advance(time.Hour) // all beyond StaleFor
	for i := range 10 {
		q := testQuery(fmt.Sprintf("new%d.example.", i), dns.TypeA)
		c.Put(mustKey(t, q), aReply(q, 60))
	}
	if ev := c.Stats().Evictions; ev != 0 {
		t.Errorf("%d live evictions; dead entries should have made room", ev)
	}
	if c.Len() != 10 {
		t.Errorf("Len %d, want 10", c.Len())
	}
}

func TestCacheReturnsCopies(t *testing.T) {
	clk := newFakeClock()
	c := NewCache(CacheConfig{}, clk.Now)
	q := testQuery("copy.example.", dns.TypeA)
	q.SetEdns0(1232, false)
	k := mustKey(t, q)
	r := aReply(q, 300)
	r.SetEdns0(4096, false)
	r.Authoritative = true
	before := r.String()
	c.Put(k, r)
	if r.String() != before || r.IsEdns0() == nil {
		t.Fatalf("Put modified the reply:\n%v\nwas\n%v", r, before)
	}

	// Mutating the stored-from message doesn't reach the cache.
	r.Answer[0].(*dns.A).A = net.IPv4(203, 0, 113, 66)
	r.Answer[0].Header().Ttl = 1

	q1 := testQuery("copy.example.", dns.TypeA)
	q1.Id = 4242
	a, _, _, ok := c.Get(k, q1)
	if !ok {
		t.Fatal("miss")
	}
	if a.Id != 4242 || a.Authoritative || a.IsEdns0() != nil || a.Answer[0].(*dns.A).A.String() != "192.0.2.1" || a.Answer[0].Header().Ttl != 300 {
		t.Fatalf("first Get:\n%v", a)
	}
	// Mutating a returned reply doesn't reach the cache either.
	a.Answer[0].(*dns.A).A[3] = 99
	a.Answer[0].Header().Ttl = 7
	a.Answer = append(a.Answer, a.Answer[0])
	a.Question[0].Name = "mutated."
	a.Rcode = dns.RcodeRefused

	q2 := testQuery("copy.example.", dns.TypeA)
	q2.Id = 99
	b, _, _, _ := c.Get(k, q2)
	if b.Id != 99 || b.Rcode != dns.RcodeSuccess || len(b.Answer) != 1 ||
		b.Answer[0].(*dns.A).A.String() != "192.0.2.1" || b.Answer[0].Header().Ttl != 300 || b.Question[0].Name != "copy.example." {
		t.Fatalf("second Get sees mutations:\n%v", b)
	}
	if q1.Question[0].Name != "copy.example." {
		t.Fatal("Get shares the query's question slice")
	}
}

func TestCacheStats(t *testing.T) {
	clk := newFakeClock()
	c := NewCache(CacheConfig{}, clk.Now)
	q := testQuery("stats.example.", dns.TypeA)
	k := mustKey(t, q)
	c.Get(k, q) // miss
	c.Put(k, aReply(q, 60))
	c.Get(k, q) // hit
	c.Get(k, q) // hit
	clk.Advance(time.Minute)
	c.Get(k, q) // stale
	fk := mustKey(t, testQuery("fail.example.", dns.TypeA))
	c.PutFailure(fk)
	c.Get(fk, nil) // failure only: a miss
	want := CacheStats{Hits: 2, Misses: 2, Stale: 1}
	if got := c.Stats(); got != want {
		t.Fatalf("Stats %+v, want %+v", got, want)
	}
}

func TestCacheConcurrent(t *testing.T) {
	clk := newFakeClock()
	const limit = 512
	c := NewCache(CacheConfig{MaxEntries: limit, StaleFor: time.Minute}, clk.Now)
	const workers, ops = 8, 3000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range ops {
				n := (i*7 + w*131) % 1500
				q := testQuery(fmt.Sprintf("c%d.Example.", n), dns.TypeA)
				q.Id = uint16(i)
				k, _ := KeyOf(q)
				switch i % 10 {
				case 0:
					c.PutFailure(k)
				case 1, 2, 3:
					c.Put(k, aReply(q, uint32(1+n%120)))
				case 4:
					clk.Advance(time.Second)
				case 5:
					if c.Len() > limit {
						t.Errorf("Len %d > %d", c.Len(), limit)
					}
					_ = c.Stats()
				default:
					if r, _, _, ok := c.Get(k, q); ok {
						if r.Id != q.Id || r.Question[0] != q.Question[0] {
							t.Errorf("reply for the wrong query: %v", r)
						}
						r.Answer = nil // mutate our copy
					}
				}
			}
		})
	}
	wg.Wait()
	if c.Len() > limit {
		t.Fatalf("Len %d > %d", c.Len(), limit)
	}
	st := c.Stats()
	if st.Hits+st.Misses+st.Stale == 0 {
		t.Fatalf("no Gets counted: %+v", st)
	}
}

func FuzzCachePut(f *testing.F) {
	q := testQuery("www.example.org.", dns.TypeA)
	for _, m := range []*dns.Msg{
		aReply(q, 300, 60),
		negReply(q, dns.RcodeNameError, soa("example.org.", 3600, 300)),
		negReply(q, dns.RcodeSuccess, nil),
		negReply(q, dns.RcodeServerFailure, nil),
		func() *dns.Msg { m := aReply(q, 30); m.SetEdns0(1232, true); m.Truncated = true; return m }(),
	} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if m.Unpack(data) != nil {
			return
		}
		clk := newFakeClock()
		c := NewCache(CacheConfig{MaxEntries: 4, MinTTL: time.Second}, clk.Now)
		keys := []Key{{Name: "www.example.org.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}
		if k, ok := KeyOf(m); ok {
			keys = append(keys, k)
		}
		if len(m.Question) > 0 {
			qq := m.Question[0]
			keys = append(keys, Key{Name: qq.Name, Qtype: qq.Qtype, Qclass: qq.Qclass})
		}
		for _, k := range keys {
			c.Put(k, m)
			for _, q := range []*dns.Msg{nil, m} {
				for _, d := range []time.Duration{0, time.Hour, 48 * time.Hour} {
					clk.Advance(d)
					r, _, _, ok := c.Get(k, q)
					if ok != (r != nil) {
						t.Fatalf("ok=%v with reply %v", ok, r)
					}
					if ok {
						if len(r.Question) == 0 || r.IsEdns0() != nil {
							t.Fatalf("bad cached reply:\n%v", r)
						}
						if _, err := r.Pack(); err != nil {
							t.Fatalf("cached reply does not pack: %v\n%v", err, r)
						}
					}
				}
			}
			c.PutFailure(k)
			c.Get(k, m)
		}
		if c.Len() > 4 {
			t.Fatalf("Len %d", c.Len())
		}
	})
}

func benchReply() (*dns.Msg, Key) {
	q := testQuery("www.example.org.", dns.TypeA)
	q.SetEdns0(1232, false)
	r := aReply(q, 300, 300, 300)
	r.Answer = append([]dns.RR{&dns.CNAME{
		Hdr:    dns.RR_Header{Name: "www.example.org.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 300},
		Target: "edge.cdn.example.net.",
	}}, r.Answer...)
	for _, rr := range r.Answer[1:] {
		rr.Header().Name = "edge.cdn.example.net."
	}
	k, _ := KeyOf(q)
	return r, k
}

func BenchmarkCacheGetHit(b *testing.B) {
	clk := newFakeClock()
	c := NewCache(CacheConfig{}, clk.Now)
	r, k := benchReply()
	c.Put(k, r)
	q := testQuery("www.example.org.", dns.TypeA)
	b.ReportAllocs()
	for b.Loop() {
		if _, fresh, _, ok := c.Get(k, q); !ok || !fresh {
			b.Fatal("miss")
		}
	}
}

func BenchmarkCacheGetHitParallel(b *testing.B) {
	c := NewCache(CacheConfig{}, newFakeClock().Now)
	r, _ := benchReply()
	const n = 1024
	keys := make([]Key, n)
	qs := make([]*dns.Msg, n)
	for i := range n {
		qs[i] = testQuery(fmt.Sprintf("h%d.example.org.", i), dns.TypeA)
		keys[i] = mustKey(b, qs[i])
		m := r.Copy()
		m.Question[0].Name = qs[i].Question[0].Name
		c.Put(keys[i], m)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, _, _, ok := c.Get(keys[i%n], qs[i%n]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}

func BenchmarkCachePut(b *testing.B) {
	c := NewCache(CacheConfig{MaxEntries: 10_000}, newFakeClock().Now)
	r, _ := benchReply()
	const n = 50_000 // more keys than entries: Put also evicts
	keys := make([]Key, n)
	msgs := make([]*dns.Msg, n)
	for i := range n {
		name := fmt.Sprintf("h%d.example.org.", i)
		keys[i] = Key{Name: name, Qtype: dns.TypeA, Qclass: dns.ClassINET}
		msgs[i] = r.Copy()
		msgs[i].Question[0].Name = name
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Put(keys[i%n], msgs[i%n])
		i++
	}
	if c.Len() == 0 {
		b.Fatal("nothing cached")
	}
}

// mixedReply answers q with records of the hand-copied types and of others
// (TXT, HINFO: dns.Copy) in every section, and an OPT record.
func mixedReply(q *dns.Msg) *dns.Msg {
	name := q.Question[0].Name
	hdr := func(t uint16, ttl uint32) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	m := aReply(q, 300, 200)
	m.Answer = append([]dns.RR{&dns.CNAME{Hdr: hdr(dns.TypeCNAME, 400), Target: "Alias.Example."}}, m.Answer...)
	m.Answer = append(m.Answer,
		&dns.AAAA{Hdr: hdr(dns.TypeAAAA, 250), AAAA: net.ParseIP("2001:db8::1")},
		&dns.TXT{Hdr: hdr(dns.TypeTXT, 500), Txt: []string{"v=spf1 -all", "x"}},
		&dns.MX{Hdr: hdr(dns.TypeMX, 600), Preference: 10, Mx: "mx.example."},
		&dns.PTR{Hdr: hdr(dns.TypePTR, 0x80000000), Ptr: "p.example."},
	)
	m.Ns = []dns.RR{
		&dns.NS{Hdr: hdr(dns.TypeNS, 3600), Ns: "ns1.example."},
		soa("example.", 900, 60),
	}
	m.Extra = []dns.RR{
		&dns.A{Hdr: dns.RR_Header{Name: "ns1.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600}, A: net.IPv4(198, 51, 100, 1).To4()},
		&dns.AAAA{Hdr: dns.RR_Header{Name: "ns1.example.", Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 30}, AAAA: net.ParseIP("2001:db8::53")},
		&dns.HINFO{Hdr: hdr(dns.TypeHINFO, 100), Cpu: "c", Os: "o"},
	}
	m.SetEdns0(1232, true)
	return m
}

// TestCacheCopiesMatchUnpack checks the copies Get builds against what a
// pack/unpack round trip of the stored reply gives, fresh and stale.
func TestCacheCopiesMatchUnpack(t *testing.T) {
	clk := newFakeClock()
	c := NewCache(CacheConfig{MinTTL: 10 * time.Second, MaxTTL: time.Hour, StaleTTL: 17}, clk.Now)
	q := testQuery("Mixed.Example.", dns.TypeA)
	k := mustKey(t, q)
	r := mixedReply(q)
	c.Put(k, r)

	want := func(f func(uint32) uint32) string {
		m := r.Copy()
		m.Id, m.Authoritative = 0, false
		m.Extra = m.Extra[:len(m.Extra)-1] // the OPT
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		u := new(dns.Msg)
		if err := u.Unpack(b); err != nil {
			t.Fatal(err)
		}
		for _, sec := range [][]dns.RR{u.Answer, u.Ns, u.Extra} {
			for _, rr := range sec {
				rr.Header().Ttl = f(ttlValue(rr.Header().Ttl))
			}
		}
		u.Id = q.Id
		u.Question = []dns.Question{q.Question[0]}
		return u.String()
	}

	clk.Advance(5500 * time.Millisecond) // the PTR (TTL 0, so MinTTL) expires after 10 s
	got, fresh, _, ok := c.Get(k, q)
	if !ok || !fresh {
		t.Fatalf("ok=%v fresh=%v", ok, fresh)
	}
	if w := want(func(t uint32) uint32 { return min(max(t, 10), 3600) - 5 }); got.String() != w {
		t.Fatalf("fresh Get:\n%v\nwant\n%v", got, w)
	}

	// Mutate everything reachable in the reply, including appending to a
	// section (which must not run into the next one).
	for _, sec := range [][]dns.RR{got.Answer, got.Ns, got.Extra} {
		for _, rr := range sec {
			rr.Header().Ttl, rr.Header().Name = 1, "x."
			switch rr := rr.(type) {
			case *dns.A:
				rr.A[0] = 1
			case *dns.AAAA:
				rr.AAAA[0] = 1
			case *dns.TXT:
				rr.Txt[0] = "mutated"
			case *dns.SOA:
				rr.Serial = 1
			case *dns.MX:
				rr.Mx = "m."
			}
		}
	}
	got.Answer = append(got.Answer, got.Extra[0])
	got.Ns = append(got.Ns, got.Answer[0])
	if len(got.Extra) != 3 || got.Extra[0].Header().Rrtype != dns.TypeA {
		t.Fatalf("appending to a section changed the next one: %v", got.Extra)
	}

	clk.Advance(time.Hour)
	got, fresh, _, ok = c.Get(k, q)
	if !ok || fresh {
		t.Fatalf("ok=%v fresh=%v", ok, fresh)
	}
	if w := want(func(uint32) uint32 { return 17 }); got.String() != w {
		t.Fatalf("stale Get:\n%v\nwant\n%v", got, w)
	}
	got, _, _, _ = c.Get(k, nil)
	if got.Id != 0 || len(got.Question) != 1 || got.Question[0].Name != "Mixed.Example." {
		t.Fatalf("Get with no query:\n%v", got)
	}
	got.Question[0].Name = "mutated."
	if got, _, _, _ = c.Get(k, nil); got.Question[0].Name != "Mixed.Example." {
		t.Fatalf("Get shares the stored question: %v", got.Question)
	}
}
