package dnsfilter

import (
	"net/netip"
	"sync"
	"time"
)

// rateLimiter bounds the responses per second to each client address, so
// one misbehaving device cannot starve the rest of a school's network. It
// counts in one-second windows, sharded by address; its memory is bounded
// because each shard forgets every client at the start of a new second.
type rateLimiter struct {
	perSecond int
	now       func() time.Time
	shards    [64]limiterShard
}

type limiterShard struct {
	mu     sync.Mutex
	second int64
	counts map[netip.Addr]int
}

func newRateLimiter(perSecond int, now func() time.Time) *rateLimiter {
	l := &rateLimiter{perSecond: perSecond, now: now}
	for i := range l.shards {
		l.shards[i].counts = map[netip.Addr]int{}
	}
	return l
}

// allow reports whether addr may have another response this second.
func (l *rateLimiter) allow(addr netip.Addr) bool {
	b := addr.As16()
	sh := &l.shards[(b[15]^b[14]^b[13]^b[11]^b[7])%uint8(len(l.shards))]
	sec := l.now().Unix()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.second != sec {
		sh.second = sec
		clear(sh.counts)
	}
	n := sh.counts[addr] + 1
	sh.counts[addr] = n
	return n <= l.perSecond
}
