package store

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Channels an attempt arrives on.
const (
	ChannelDNS   = "dns"
	ChannelHTTP  = "http"
	ChannelHTTPS = "https"
)

// Intents: what the proxy could tell about why a request was made.
const (
	IntentUnknown    = ""           // DNS, or a client that sends no Fetch metadata
	IntentNavigate   = "navigate"   // a page the pupil asked for: a top-level navigation or a typed search
	IntentBackground = "background" // embedded resources, adverts, search-suggestion keystrokes
)

// Attempt is a blocked request worth a human look, or a search term on a
// group whose searches are monitored: the raw material of a safeguarding
// incident. Empty fields were not known to the server that saw it.
type Attempt struct {
	Time       time.Time
	Channel    string // ChannelDNS, ChannelHTTP or ChannelHTTPS
	Client     netip.Addr
	User       string // proxy login or RADIUS session, when there was one
	Device     string // the device's name (DHCP lease or set by IT), when known
	MAC        string // the device's hardware address, when known
	Identified string // which source identified device and user, e.g. "device: lease, user: radius"
	Group      string
	Host       string
	URL        string // the full URL, where the proxy saw it
	SearchTerm string // the search typed, from a search engine's URL
	Category   string // slug of the deciding category
	Severity   string
	Rule       string
	Blocked    bool   // false for a monitored search that was allowed
	Intent     string // IntentNavigate, IntentBackground or IntentUnknown
}

// Recorder takes attempts from the hot path. Record must never wait on
// storage: the incident writer batches them behind this interface.
type Recorder interface {
	Record(Attempt)
}

// MemoryRecorder keeps the most recent attempts in a bounded ring in memory:
// for tests and tools that need a Recorder without a database (serve uses
// the IncidentWriter). When the ring is full the oldest attempt is
// overwritten and counted, never lost silently.
type MemoryRecorder struct {
	mu      sync.Mutex
	ring    []Attempt
	next    int
	full    bool
	dropped atomic.Uint64
	onDrop  func(total uint64)
}

// NewMemoryRecorder returns a recorder holding up to size attempts; onDrop,
// if not nil, is called with the running total whenever one is overwritten.
func NewMemoryRecorder(size int, onDrop func(total uint64)) *MemoryRecorder {
	return &MemoryRecorder{ring: make([]Attempt, max(size, 1)), onDrop: onDrop}
}

// Record stores an attempt in O(1), overwriting the oldest when full.
func (r *MemoryRecorder) Record(a Attempt) {
	r.mu.Lock()
	overwrote := r.full
	r.ring[r.next] = a
	r.next++
	if r.next == len(r.ring) {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
	if overwrote {
		n := r.dropped.Add(1)
		if r.onDrop != nil {
			r.onDrop(n)
		}
	}
}

// Recent returns up to n attempts, newest first.
func (r *MemoryRecorder) Recent(n int) []Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	size := r.next
	if r.full {
		size = len(r.ring)
	}
	n = min(n, size)
	out := make([]Attempt, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.ring[(r.next-i+len(r.ring))%len(r.ring)])
	}
	return out
}

// Dropped returns how many attempts were overwritten before anyone read them.
func (r *MemoryRecorder) Dropped() uint64 { return r.dropped.Load() }
