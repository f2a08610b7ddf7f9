package dnsfilter

import (
	"errors"
	"hash/maphash"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// The answer cache of the forwarder path. Put packs the reply (for the size
// check, and to normalise it exactly as a round trip through the wire would)
// and unpacks those bytes once into a private template *dns.Msg that is never
// modified or handed out. Every Get builds a new message from the template:
// a new header, new record slices and a new copy of every record with its TTL
// rewritten, which is several times cheaper than unpacking bytes per hit. It is a hand-written sharded LRU: hashicorp/golang-lru's
// expirable LRU has one TTL for the whole cache, drops entries the moment they
// expire (no serve-stale, RFC 8767) and sits behind a single lock.

const (
	defaultCacheEntries = 100_000
	defaultCacheMaxTTL  = 24 * time.Hour
	defaultNegativeTTL  = time.Hour
	noSOANegativeTTL    = 60 * time.Second // negative reply without an SOA
	defaultFailureTTL   = 5 * time.Second
	maxFailureTTL       = 5 * time.Minute // RFC 9520 §3.2: MUST NOT exceed five minutes
	defaultStaleFor     = 24 * time.Hour
	defaultStaleTTL     = 30 // RFC 8767 §4
	maxCachedReply      = 64 << 10
	maxCacheShards      = 16
	minShardEntries     = 32
	maxTTLSeconds       = math.MaxInt32 // RFC 2181 §8
)

// CacheConfig bounds the cache. Zero fields take the defaults given below.
type CacheConfig struct {
	MaxEntries  int           // bound on memory (default 100_000)
	MinTTL      time.Duration // floor on positive TTLs (default 0)
	MaxTTL      time.Duration // cap on TTLs (default 24h)
	NegativeTTL time.Duration // cap for NXDOMAIN/NODATA, from the SOA minimum per RFC 2308 (default 1h cap; 60s when no SOA); < 0 disables negative caching
	FailureTTL  time.Duration // how long an upstream failure (SERVFAIL/timeout) is cached, RFC 9520 (default 5s, at most 5 minutes); < 0 disables
	StaleFor    time.Duration // how long an expired answer may still be served stale, RFC 8767 (default 1 day); < 0 disables
	StaleTTL    uint32        // TTL put on stale answers (RFC 8767 recommends 30 s; the default)
}

// Key identifies a cacheable question: lower-cased name, type, class, and the
// DO and CD bits (answers differ with them: DNSSEC records, unvalidated data).
type Key struct {
	Name          string
	Qtype, Qclass uint16
	DO, CD        bool
}

// CacheStats for metrics: fresh hits, misses (including Gets that found only
// a cached failure), stale hits, and entries evicted to stay within
// MaxEntries.
type CacheStats struct{ Hits, Misses, Stale, Evictions uint64 }

// Cache is a DNS answer cache, safe for concurrent use and sharded so that
// goroutines rarely wait on the same lock. Each shard is an LRU list.
type Cache struct {
	now      func() time.Time
	seed     maphash.Seed
	mask     uint64
	shards   []cacheShard
	minTTL   uint32 // seconds
	maxTTL   uint32
	negTTL   uint32 // 0: negative answers are not cached
	failTTL  time.Duration
	staleFor time.Duration
	staleTTL uint32
}

type cacheShard struct {
	mu       sync.Mutex
	m        map[Key]*cacheEntry
	root     cacheEntry // sentinel of the LRU list: root.next is the most recent
	capacity int

	hits, misses, stale, evictions atomic.Uint64
	_                              [64]byte // keep shards on separate cache lines
}

type cacheEntry struct {
	key        Key
	prev, next *cacheEntry

	// tmpl is the reply as unpacked from its packed form (ID 0, no OPT or
	// TSIG), nil for an entry that only remembers a failure. Neither it nor
	// its records are ever modified or handed out once stored, so it may be
	// read outside the lock.
	tmpl   *dns.Msg
	stored time.Time
	ttl    uint32 // seconds the reply is fresh after stored
	lo, hi uint32 // every record's TTL is clamped to [lo, hi] before the elapsed time is taken off

	failUntil time.Time // upstreams failed for this key until then (RFC 9520)
}

// NewCache returns an empty cache. now is the clock (time.Now if nil).
func NewCache(cfg CacheConfig, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = defaultCacheEntries
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = defaultCacheMaxTTL
	}
	if cfg.NegativeTTL == 0 {
		cfg.NegativeTTL = defaultNegativeTTL
	}
	switch {
	case cfg.FailureTTL == 0:
		cfg.FailureTTL = defaultFailureTTL
	case cfg.FailureTTL > maxFailureTTL:
		cfg.FailureTTL = maxFailureTTL
	}
	if cfg.StaleFor == 0 {
		cfg.StaleFor = defaultStaleFor
	}
	if cfg.StaleTTL == 0 {
		cfg.StaleTTL = defaultStaleTTL
	}
	c := &Cache{
		now:      now,
		seed:     maphash.MakeSeed(),
		minTTL:   seconds(cfg.MinTTL),
		maxTTL:   seconds(cfg.MaxTTL),
		negTTL:   seconds(cfg.NegativeTTL),
		failTTL:  max(cfg.FailureTTL, 0),
		staleFor: max(cfg.StaleFor, 0),
		staleTTL: min(cfg.StaleTTL, maxTTLSeconds),
	}
	c.minTTL = min(c.minTTL, c.maxTTL)
	c.negTTL = min(c.negTTL, c.maxTTL)

	// Fewer shards for small caches so that every shard keeps a useful
	// share; the shares add up to MaxEntries exactly.
	n := maxCacheShards
	for n > 1 && cfg.MaxEntries < n*minShardEntries {
		n /= 2
	}
	c.mask = uint64(n - 1)
	c.shards = make([]cacheShard, n)
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[Key]*cacheEntry)
		s.root.next, s.root.prev = &s.root, &s.root
		s.capacity = cfg.MaxEntries / n
		if i < cfg.MaxEntries%n {
			s.capacity++
		}
	}
	return c
}

// KeyOf returns the cache key of query q, false when q is not cacheable:
// not exactly one question, not a standard query, a zone transfer or
// meta-type, or class ANY/NONE.
func KeyOf(q *dns.Msg) (Key, bool) {
	if q == nil || len(q.Question) != 1 || q.Opcode != dns.OpcodeQuery {
		return Key{}, false
	}
	qq := q.Question[0]
	switch qq.Qtype {
	case dns.TypeNone, dns.TypeAXFR, dns.TypeIXFR, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeMAILA, dns.TypeMAILB:
		return Key{}, false
	}
	if qq.Qclass == dns.ClassANY || qq.Qclass == dns.ClassNONE || qq.Name == "" {
		return Key{}, false
	}
	k := Key{Name: lowerASCII(qq.Name), Qtype: qq.Qtype, Qclass: qq.Qclass, CD: q.CheckingDisabled}
	if o := q.IsEdns0(); o != nil {
		k.DO = o.Do()
	}
	return k, true
}

// Put stores reply, an upstream's answer to the question k. Only NOERROR
// (with answers, or NODATA) and NXDOMAIN replies are stored; truncated
// replies, other rcodes, replies that are not responses to a standard query,
// replies whose question is not k's, replies packing to more than 64 KiB and
// replies whose TTL works out at 0 are not. The TTL is the smallest TTL in
// the answer section (positive, clamped to [MinTTL, MaxTTL]), or in the answer
// and authority sections with the SOA counted as min(TTL, MINIMUM) (negative,
// RFC 2308 §5, capped by NegativeTTL, or 60 s when there is no SOA). OPT and
// TSIG records are not stored. A stored answer clears a cached failure.
// reply is not modified.
func (c *Cache) Put(k Key, reply *dns.Msg) {
	k.Name = lowerASCII(k.Name)
	tmpl, ttl, lo, hi, ok := c.prepare(k, reply)
	if !ok {
		return
	}
	now := c.now()
	s := c.shard(k)
	s.mu.Lock()
	e := s.entry(k, now, c)
	e.tmpl, e.stored, e.ttl, e.lo, e.hi = tmpl, now, ttl, lo, hi
	e.failUntil = time.Time{}
	s.mu.Unlock()
}

// PutFailure remembers that upstreams failed for k (SERVFAIL, timeout) for
// FailureTTL (RFC 9520). An answer already cached for k is kept, so that it
// can still be served stale.
func (c *Cache) PutFailure(k Key) {
	if c.failTTL <= 0 {
		return
	}
	k.Name = lowerASCII(k.Name)
	now := c.now()
	s := c.shard(k)
	s.mu.Lock()
	e := s.entry(k, now, c)
	e.failUntil = now.Add(c.failTTL)
	s.mu.Unlock()
}

// Get looks k up for query q. The reply returned is always a new message
// with q's ID, RD bit and question (so the client's spelling of the name),
// and:
//   - fresh=true when the answer has not expired: each TTL is decremented by
//     the whole seconds elapsed since it was stored, never below 0;
//   - fresh=false when it expired less than StaleFor ago: every TTL is
//     StaleTTL (RFC 8767). failed then tells whether upstreams failed
//     recently, i.e. whether to serve it right away.
//
// With no usable answer, reply is nil and ok false; failed=true then means
// that a failure is cached (RFC 9520): answer SERVFAIL without asking the
// upstreams. ok is true exactly when reply is not nil. q may be nil (the
// reply then has ID 0 and the stored question); a q whose question is not
// k's is a miss.
func (c *Cache) Get(k Key, q *dns.Msg) (reply *dns.Msg, fresh, failed, ok bool) {
	k.Name = lowerASCII(k.Name)
	s := c.shard(k)
	if q != nil && len(q.Question) > 0 && !questionIs(q.Question[0], k) {
		s.misses.Add(1)
		return nil, false, false, false
	}
	now := c.now()

	s.mu.Lock()
	e := s.m[k]
	if e == nil {
		s.mu.Unlock()
		s.misses.Add(1)
		return nil, false, false, false
	}
	usable := false
	if e.tmpl != nil {
		expiry := e.stored.Add(time.Duration(e.ttl) * time.Second)
		switch {
		case now.Before(expiry):
			fresh, usable = true, true
		case c.staleFor > 0 && now.Before(expiry.Add(c.staleFor)):
			usable = true
		default:
			e.tmpl = nil // beyond StaleFor: let the answer go
		}
	}
	failed = !fresh && now.Before(e.failUntil)
	if !usable && !failed {
		s.remove(e)
		s.mu.Unlock()
		s.misses.Add(1)
		return nil, false, false, false
	}
	s.toFront(e)
	tmpl, stored, lo, hi := e.tmpl, e.stored, e.lo, e.hi
	s.mu.Unlock()

	if !usable {
		s.misses.Add(1)
		return nil, false, true, false
	}
	var ttl ttlRewrite
	if fresh {
		ttl.lo, ttl.hi = lo, hi
		if d := now.Sub(stored); d > 0 {
			ttl.elapsed = uint32(min(d/time.Second, maxTTLSeconds))
		}
	} else {
		ttl.stale, ttl.staleTTL = true, c.staleTTL
	}
	m := new(dns.Msg)
	m.MsgHdr = tmpl.MsgHdr
	m.Compress = tmpl.Compress
	if q != nil {
		m.Id = q.Id
		m.RecursionDesired = q.RecursionDesired
	}
	if q != nil && len(q.Question) > 0 {
		m.Question = []dns.Question{q.Question[0]}
	} else {
		m.Question = slices.Clone(tmpl.Question)
	}
	copyRecords(m, tmpl, &ttl)
	if fresh {
		s.hits.Add(1)
	} else {
		s.stale.Add(1)
	}
	return m, fresh, failed, true
}

// ttlRewrite gives the TTL of a record served from the cache.
type ttlRewrite struct {
	lo, hi, elapsed uint32 // fresh: clamp to [lo, hi], then take off elapsed (not below 0)
	stale           bool   // stale: every TTL is staleTTL
	staleTTL        uint32
}

func (r *ttlRewrite) ttl(t uint32) uint32 {
	if r.stale {
		return r.staleTTL
	}
	t = min(max(ttlValue(t), r.lo), r.hi)
	if t <= r.elapsed {
		return 0
	}
	return t - r.elapsed
}

// Records of the common types are copied by hand, with the address bytes of
// A and AAAA records in the same allocation as the record.
type (
	aBox struct {
		rr dns.A
		ip [net.IPv4len]byte
	}
	aaaaBox struct {
		rr dns.AAAA
		ip [net.IPv6len]byte
	}
)

// copyRecords fills m's record sections with copies of tmpl's records, TTLs
// rewritten. The copies share nothing mutable with tmpl (names and other
// strings are immutable), and the three sections share one backing array
// whose parts are capped, so that appending to one section never overwrites
// another.
func copyRecords(m, tmpl *dns.Msg, ttl *ttlRewrite) {
	na, nn, nx := len(tmpl.Answer), len(tmpl.Ns), len(tmpl.Extra)
	if na+nn+nx == 0 {
		return
	}
	var nA, nAAAA int
	for _, sec := range [3][]dns.RR{tmpl.Answer, tmpl.Ns, tmpl.Extra} {
		for _, rr := range sec {
			switch rr := rr.(type) {
			case *dns.A:
				if len(rr.A) == net.IPv4len {
					nA++
				}
			case *dns.AAAA:
				if len(rr.AAAA) == net.IPv6len {
					nAAAA++
				}
			}
		}
	}
	var as []aBox
	var aaaas []aaaaBox
	if nA > 0 {
		as = make([]aBox, nA)
	}
	if nAAAA > 0 {
		aaaas = make([]aaaaBox, nAAAA)
	}
	all := make([]dns.RR, na+nn+nx)
	cp := func(dst, src []dns.RR) {
		for i, rr := range src {
			var c dns.RR
			switch rr := rr.(type) {
			case *dns.A:
				if len(rr.A) == net.IPv4len {
					b := &as[0]
					as = as[1:]
					b.rr.Hdr = rr.Hdr
					copy(b.ip[:], rr.A)
					b.rr.A = b.ip[:]
					c = &b.rr
				}
			case *dns.AAAA:
				if len(rr.AAAA) == net.IPv6len {
					b := &aaaas[0]
					aaaas = aaaas[1:]
					b.rr.Hdr = rr.Hdr
					copy(b.ip[:], rr.AAAA)
					b.rr.AAAA = b.ip[:]
					c = &b.rr
				}
			// No slices or pointers in these: a value copy is a deep copy.
			case *dns.CNAME:
				c = valueCopy(rr)
			case *dns.NS:
				c = valueCopy(rr)
			case *dns.PTR:
				c = valueCopy(rr)
			case *dns.MX:
				c = valueCopy(rr)
			case *dns.SOA:
				c = valueCopy(rr)
			}
			if c == nil {
				c = dns.Copy(rr)
			}
			h := c.Header()
			h.Ttl = ttl.ttl(h.Ttl)
			dst[i] = c
		}
	}
	if tmpl.Answer != nil {
		m.Answer = all[:na:na]
		cp(m.Answer, tmpl.Answer)
	}
	if tmpl.Ns != nil {
		m.Ns = all[na : na+nn : na+nn]
		cp(m.Ns, tmpl.Ns)
	}
	if tmpl.Extra != nil {
		m.Extra = all[na+nn:]
		cp(m.Extra, tmpl.Extra)
	}
}

// Len returns the number of entries, including stale answers and cached
// failures.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// Stats returns the running totals.
func (c *Cache) Stats() CacheStats {
	var st CacheStats
	for i := range c.shards {
		s := &c.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		st.Stale += s.stale.Load()
		st.Evictions += s.evictions.Load()
	}
	return st
}

// prepare checks that reply may be cached for k, packs it and unpacks the
// bytes into the template that Get copies.
func (c *Cache) prepare(k Key, reply *dns.Msg) (tmpl *dns.Msg, ttl, lo, hi uint32, ok bool) {
	defer func() {
		// A message built by hand (a typed nil RR, odd rdata) must not take
		// the resolver down; it is simply not cached.
		if recover() != nil {
			tmpl, ok = nil, false
		}
	}()
	if reply == nil || !reply.Response || reply.Opcode != dns.OpcodeQuery || reply.Truncated ||
		len(reply.Question) != 1 || !questionIs(reply.Question[0], k) {
		return nil, 0, 0, 0, false
	}
	for _, sec := range [][]dns.RR{reply.Answer, reply.Ns, reply.Extra} {
		if slices.Contains(sec, nil) {
			return nil, 0, 0, 0, false
		}
	}

	var negative bool
	switch reply.Rcode {
	case dns.RcodeSuccess:
		negative = !answers(reply.Answer, k.Qtype)
	case dns.RcodeNameError:
		negative = true
	default:
		return nil, 0, 0, 0, false
	}

	ttl = math.MaxUint32
	for _, rr := range reply.Answer {
		ttl = min(ttl, rrTTL(rr))
	}
	if negative {
		if c.negTTL == 0 {
			return nil, 0, 0, 0, false
		}
		negCap := c.negTTL
		soa := false
		for _, rr := range reply.Ns {
			t := rrTTL(rr)
			if s, isSOA := rr.(*dns.SOA); isSOA {
				soa = true
				t = min(t, s.Minttl) // RFC 2308 §5
			}
			ttl = min(ttl, t)
		}
		if !soa {
			negCap = min(negCap, uint32(noSOANegativeTTL/time.Second))
		}
		ttl = min(ttl, negCap)
		lo, hi = 0, ttl
	} else {
		ttl = min(max(ttl, c.minTTL), c.maxTTL)
		lo, hi = c.minTTL, c.maxTTL
	}
	if ttl == 0 {
		return nil, 0, 0, 0, false
	}

	m := *reply // shallow: the records are shared, and only read by Pack
	m.Id = 0
	m.Authoritative = false // a cached answer is not authoritative
	m.Compress = true
	if slices.ContainsFunc(m.Extra, notCached) {
		m.Extra = slices.DeleteFunc(slices.Clone(m.Extra), notCached)
	}
	packed, err := m.Pack()
	if err != nil || len(packed) > maxCachedReply {
		return nil, 0, 0, 0, false
	}
	tmpl, err = unpackReply(packed)
	if err != nil {
		return nil, 0, 0, 0, false // cannot happen for bytes that Pack produced
	}
	return tmpl, ttl, lo, hi, true
}

// unpackReply unpacks bytes that prepare packed.
func unpackReply(wire []byte) (m *dns.Msg, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, errUnpackPanic
		}
	}()
	m = new(dns.Msg)
	if err := m.Unpack(wire); err != nil {
		return nil, err
	}
	return m, nil
}

var errUnpackPanic = errors.New("dns: unpack panicked")

// entry returns k's entry, creating it at the front of the LRU list (making
// room if needed) or moving it there. Called with s.mu held.
func (s *cacheShard) entry(k Key, now time.Time, c *Cache) *cacheEntry {
	if e := s.m[k]; e != nil {
		s.toFront(e)
		return e
	}
	// Drop dead entries at the cold end first: they are not evictions.
	for range 2 {
		if t := s.root.prev; t != &s.root && c.dead(t, now) {
			s.remove(t)
		}
	}
	for len(s.m) >= s.capacity && s.root.prev != &s.root {
		s.remove(s.root.prev)
		s.evictions.Add(1)
	}
	e := &cacheEntry{key: k}
	s.m[k] = e
	e.prev, e.next = &s.root, s.root.next
	e.prev.next, e.next.prev = e, e
	return e
}

// dead reports whether e can no longer give anything: no answer, even stale,
// and no recent failure.
func (c *Cache) dead(e *cacheEntry, now time.Time) bool {
	if now.Before(e.failUntil) {
		return false
	}
	if e.tmpl == nil {
		return true
	}
	return !now.Before(e.stored.Add(time.Duration(e.ttl)*time.Second + c.staleFor))
}

func (s *cacheShard) toFront(e *cacheEntry) {
	if s.root.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = &s.root, s.root.next
	e.prev.next, e.next.prev = e, e
}

func (s *cacheShard) remove(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	delete(s.m, e.key)
}

func (c *Cache) shard(k Key) *cacheShard {
	if c.mask == 0 {
		return &c.shards[0]
	}
	h := maphash.String(c.seed, k.Name) ^ uint64(k.Qtype)*0x9e3779b97f4a7c15
	return &c.shards[(h^h>>32)&c.mask]
}

// answers reports whether the answer section holds a record of type qtype
// (anything, for ANY); otherwise a NOERROR reply is NODATA.
func answers(rrs []dns.RR, qtype uint16) bool {
	for _, rr := range rrs {
		if t := rr.Header().Rrtype; t == qtype || qtype == dns.TypeANY {
			return true
		}
	}
	return false
}

// notCached reports the records that belong to one message exchange.
func notCached(rr dns.RR) bool {
	t := rr.Header().Rrtype
	return t == dns.TypeOPT || t == dns.TypeTSIG
}

func rrTTL(rr dns.RR) uint32 { return ttlValue(rr.Header().Ttl) }

// ttlValue treats TTLs with the top bit set as 0 (RFC 2181 §8).
func ttlValue(t uint32) uint32 {
	if t > maxTTLSeconds {
		return 0
	}
	return t
}

func seconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32(min(d/time.Second, maxTTLSeconds))
}

func questionIs(q dns.Question, k Key) bool {
	return q.Qtype == k.Qtype && q.Qclass == k.Qclass && equalFoldASCII(q.Name, k.Name)
}

// lowerASCII lower-cases A-Z only (names are in presentation format, with
// other bytes escaped) and does not allocate when s is already lower case.
func lowerASCII(s string) string {
	i := 0
	for i < len(s) && (s[i] < 'A' || s[i] > 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if 'A' <= b[i] && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// valueCopy copies a record that holds no slices or pointers.
func valueCopy[T any](rr *T) *T {
	c := *rr
	return &c
}
