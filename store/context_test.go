package store

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestContextWindow(t *testing.T) {
	c := NewContextWindow(30 * time.Minute)
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	c.Visited(a, "old.example", t0)
	c.Visited(a, "maths.example", t0.Add(20*time.Minute))
	c.Visited(a, "maths.example", t0.Add(21*time.Minute)) // a page's repeats are one visit
	c.Visited(netip.MustParseAddr("::ffff:10.0.0.1"), "video.example", t0.Add(35*time.Minute))
	c.Visited(b, "other.example", t0.Add(35*time.Minute))
	got := c.Before(a, t0.Add(40*time.Minute))
	want := []string{"maths.example", "video.example"}
	if len(got) != len(want) {
		t.Fatalf("Before: %v, want hosts %v", got, want)
	}
	for i, v := range got {
		if v.Host != want[i] {
			t.Errorf("visit %d: %s, want %s", i, v.Host, want[i])
		}
	}
	if got[0].Time != t0.Add(21*time.Minute) {
		t.Errorf("a repeat did not move the visit's time: %v", got[0].Time)
	}
	// What aged out of the window is forgotten, not merely hidden.
	if got := c.Before(a, t0.Add(10*time.Minute)); len(got) != 0 {
		t.Errorf("a visit older than the window is still kept: %v", got)
	}
	// Bounded per device.
	for i := range 3 * maxVisitsPerDevice {
		c.Visited(b, fmt.Sprintf("h%d.example", i), t0.Add(36*time.Minute))
	}
	if n := len(c.Before(b, t0.Add(37*time.Minute))); n != maxVisitsPerDevice {
		t.Errorf("%d visits kept, want the bound %d", n, maxVisitsPerDevice)
	}
}

func TestWriterAttachesContext(t *testing.T) {
	s, _ := openNew(t)
	ctx := NewContextWindow(30 * time.Minute)
	w := NewIncidentWriter(WriterConfig{Context: ctx}, func(fn func(*Store) error) error { return fn(s) }, nil, nil)
	a := netip.MustParseAddr("10.0.0.9")
	now := time.Now().UTC()
	w.Visited(a, "forum.example", now.Add(-5*time.Minute))
	w.fold(Attempt{Time: now, Channel: ChannelDNS, Client: a, Group: "ks3-ks4", Host: "self-harm.example", Category: "self-harm", Severity: "high", Rule: "category", Blocked: true})
	w.fold(Attempt{Time: now, Channel: ChannelDNS, Client: a, Group: "ks3-ks4", Host: "game.example", Category: "games", Severity: "low", Rule: "category", Blocked: true})
	for in := range w.dirty {
		switch in.Host {
		case "self-harm.example":
			if len(in.Context) != 1 || in.Context[0].Host != "forum.example" {
				t.Errorf("high incident context %v", in.Context)
			}
		case "game.example":
			if in.Context != nil {
				t.Errorf("a low incident carries context: %v", in.Context)
			}
		}
	}
}
