package dnsfilter

import (
	"net/netip"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	l := newRateLimiter(3, func() time.Time { return clock })
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")
	for i := 1; i <= 5; i++ {
		if got, want := l.allow(a), i <= 3; got != want {
			t.Errorf("query %d from a: allow = %v, want %v", i, got, want)
		}
	}
	if !l.allow(b) {
		t.Error("another client is limited by a's queries")
	}
	clock = clock.Add(time.Second)
	if !l.allow(a) {
		t.Error("a is still limited in the next second")
	}
}

func BenchmarkRateLimiter(b *testing.B) {
	l := newRateLimiter(1<<30, time.Now)
	a := netip.MustParseAddr("10.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		l.allow(a)
	}
}
