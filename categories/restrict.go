package categories

import (
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Restrictions are devices that a pattern of blocked attempts has switched
// to approved sites only, each until a set time. It is off unless the school
// turns it on (incidents.pattern_restrict), lives in memory only, and ends
// at its time or when hedgerow restarts.
//
// Every query asks whether its device is restricted, so the check is one
// atomic load and, only when any device is restricted, one map lookup; the
// rare changes copy the map.
type Restrictions struct {
	mu      sync.Mutex // serialises writers
	current atomic.Pointer[map[netip.Addr]time.Time]
}

// NewRestrictions returns an empty set.
func NewRestrictions() *Restrictions {
	r := &Restrictions{}
	empty := map[netip.Addr]time.Time{}
	r.current.Store(&empty)
	return r
}

// Restrict restricts a device until a time (extending, never shortening, a
// restriction it is already under).
func (r *Restrictions) Restrict(addr netip.Addr, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := maps.Clone(*r.current.Load())
	if until.After(next[addr.Unmap()]) {
		next[addr.Unmap()] = until
	}
	r.current.Store(&next)
}

// Lift ends a device's restriction early.
func (r *Restrictions) Lift(addr netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := maps.Clone(*r.current.Load())
	delete(next, addr.Unmap())
	r.current.Store(&next)
}

// Active reports whether a device is restricted at a time.
func (r *Restrictions) Active(addr netip.Addr, now time.Time) bool {
	if r == nil {
		return false
	}
	m := *r.current.Load()
	if len(m) == 0 {
		return false
	}
	until, ok := m[addr]
	return ok && now.Before(until)
}

// Restriction is one restricted device.
type Restriction struct {
	Addr  netip.Addr `json:"addr"`
	Until time.Time  `json:"until"`
}

// List returns the restrictions in force at a time, dropping those that
// have ended.
func (r *Restrictions) List(now time.Time) []Restriction {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := *r.current.Load()
	next := make(map[netip.Addr]time.Time, len(cur))
	var out []Restriction
	for a, u := range cur {
		if now.Before(u) {
			next[a] = u
			out = append(out, Restriction{a, u})
		}
	}
	if len(next) != len(cur) {
		r.current.Store(&next)
	}
	slices.SortFunc(out, func(a, b Restriction) int { return a.Addr.Compare(b.Addr) })
	return out
}

// DecideFor decides for a device: restricted devices get DecideRestricted.
func (s *Snapshot) DecideFor(r *Restrictions, addr netip.Addr, group, host, path string, now time.Time) Verdict {
	return s.decide(group, host, path, now, r.Active(addr, now))
}

// KeepsContext reports whether a group keeps the context window.
func (s *Snapshot) KeepsContext(group string) bool {
	if !s.anyContext {
		return false // the default: no group scan on every allowed query
	}
	g := s.group(group)
	return g != nil && g.context
}

// IsNoise reports whether a host is an advert or tracker, which the
// context window leaves out: a page's own requests are not what a pupil
// chose to visit.
func (s *Snapshot) IsNoise(host string) bool {
	var w walk
	s.index.walk(host, "", nil, &w)
	return w.cats&s.noise != 0
}
