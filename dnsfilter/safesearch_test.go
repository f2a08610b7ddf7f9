package dnsfilter

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestSafeSearchTarget(t *testing.T) {
	tests := []struct {
		host       string
		safe       bool
		youtube    string
		want       string
		wantExists bool
	}{
		{"www.google.com", true, "", "forcesafesearch.google.com.", true},
		{"google.com", true, "", "forcesafesearch.google.com.", true},
		{"www.google.co.uk", true, "", "forcesafesearch.google.com.", true},
		{"www.google.de", true, "", "forcesafesearch.google.com.", true},
		{"www.google.com", false, "strict", "", false},
		{"mail.google.com", true, "", "", false},
		{"www.google.example.com", true, "", "", false},
		{"notgoogle.com", true, "", "", false},
		{"www.bing.com", true, "", "strict.bing.com.", true},
		{"duckduckgo.com", true, "", "safe.duckduckgo.com.", true},
		{"www.youtube.com", false, "strict", "restrict.youtube.com.", true},
		{"m.youtube.com", true, "moderate", "restrictmoderate.youtube.com.", true},
		{"www.youtube.com", true, "", "", false},
		{"www.example.com", true, "strict", "", false},
	}
	for _, tc := range tests {
		got, ok := safeSearchTarget(tc.host, tc.safe, tc.youtube)
		if got != tc.want || ok != tc.wantExists {
			t.Errorf("safeSearchTarget(%q, %v, %q) = %q, %v; want %q, %v", tc.host, tc.safe, tc.youtube, got, ok, tc.want, tc.wantExists)
		}
	}
}

func TestMemoryRecorder(t *testing.T) {
	var drops []uint64
	r := NewMemoryRecorder(3, func(n uint64) { drops = append(drops, n) })
	for i := 1; i <= 5; i++ {
		r.Record(Attempt{Time: time.Unix(int64(i), 0), Client: netip.MustParseAddr("10.0.0.1"), Host: fmt.Sprint("h", i)})
	}
	got := r.Recent(10)
	if len(got) != 3 || got[0].Host != "h5" || got[2].Host != "h3" {
		t.Errorf("Recent = %+v, want h5, h4, h3", got)
	}
	if r.Dropped() != 2 || len(drops) != 2 || drops[1] != 2 {
		t.Errorf("dropped = %d (%v), want 2 counted", r.Dropped(), drops)
	}
}

func BenchmarkSafeSearchTarget(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		safeSearchTarget("www.example.co.uk", true, "strict")
	}
}
