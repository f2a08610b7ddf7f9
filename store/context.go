package store

import (
	"net/netip"
	"sync"
	"time"
)

// Visit is one site a device reached, kept as context for an incident.
type Visit struct {
	Time time.Time `json:"time"`
	Host string    `json:"host"`
}

// VisitRecorder takes the sites devices reach, for the context window.
// Visited must not wait: it is called on the query path.
type VisitRecorder interface {
	Visited(client netip.Addr, host string, at time.Time)
}

// Bounds on what the context window holds, so memory stays small whatever
// the traffic: per device, and devices at once.
const (
	maxVisitsPerDevice = 256
	maxContextDevices  = 20_000
)

// ContextWindow keeps, in memory only, the sites each device reached in the
// last few minutes, so that a high or critical incident can show the DSL
// what led up to it. It is kept only for groups whose policy turns it on
// (Group.Context), never written to disk on its own, and forgotten as it
// ages out of the window.
type ContextWindow struct {
	window time.Duration
	mu     sync.Mutex
	visits map[netip.Addr][]Visit
}

// NewContextWindow keeps visits for window (default 30 minutes).
func NewContextWindow(window time.Duration) *ContextWindow {
	if window <= 0 {
		window = 30 * time.Minute
	}
	return &ContextWindow{window: window, visits: map[netip.Addr][]Visit{}}
}

// Visited notes that a device reached a site. A repeat of the device's last
// site only moves its time: a page's dozens of lookups are one visit.
func (c *ContextWindow) Visited(client netip.Addr, host string, at time.Time) {
	client = client.Unmap()
	c.mu.Lock()
	defer c.mu.Unlock()
	vs, known := c.visits[client]
	if n := len(vs); n > 0 && vs[n-1].Host == host {
		vs[n-1].Time = at
		return
	}
	if !known && len(c.visits) >= maxContextDevices {
		c.pruneLocked(at)
		if len(c.visits) >= maxContextDevices {
			return // every device busy at once: context is a nicety, memory is not
		}
	}
	// Drop what has aged out, and the oldest past the bound.
	cut := 0
	for cut < len(vs) && at.Sub(vs[cut].Time) > c.window {
		cut++
	}
	if len(vs)-cut >= maxVisitsPerDevice {
		cut = len(vs) - maxVisitsPerDevice + 1
	}
	if cut > 0 {
		vs = append(vs[:0], vs[cut:]...)
	}
	c.visits[client] = append(vs, Visit{Time: at.UTC(), Host: host})
}

func (c *ContextWindow) pruneLocked(now time.Time) {
	for a, vs := range c.visits {
		if len(vs) == 0 || now.Sub(vs[len(vs)-1].Time) > c.window {
			delete(c.visits, a)
		}
	}
}

// Before returns the sites a device reached within the window before a
// time, oldest first.
func (c *ContextWindow) Before(client netip.Addr, at time.Time) []Visit {
	client = client.Unmap()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Visit
	for _, v := range c.visits[client] {
		if !v.Time.After(at) && at.Sub(v.Time) <= c.window {
			out = append(out, v)
		}
	}
	return out
}
