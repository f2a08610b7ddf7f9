package store

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

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
