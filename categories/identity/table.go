package identity

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Source says which source identified a part of a Who. The zero Source is
// none.
type Source uint8

// The sources of identity.
const (
	SourceLease      Source = iota + 1 // a DHCP lease file
	SourceRADIUS                       // RADIUS accounting from the Wi-Fi controller or 802.1X switch
	SourceStatic                       // a name or group IT staff set by hand
	SourceProxyLogin                   // the user who authenticated to the proxy for the request
)

// String names a source as incidents record it: "lease", "radius",
// "static" or "proxy-login"; "" for none.
func (s Source) String() string {
	switch s {
	case SourceLease:
		return "lease"
	case SourceRADIUS:
		return "radius"
	case SourceStatic:
		return "static"
	case SourceProxyLogin:
		return "proxy-login"
	}
	return ""
}

// Who is what is known about whoever held an address at a moment. A part
// nobody identified is empty, and so is its source.
type Who struct {
	Device string // the device's name
	MAC    string // its hardware address, "aa:bb:cc:dd:ee:ff"
	User   string // the person logged in on it
	Group  string // the hedgerow group the user or the device is mapped to

	DeviceSource Source
	MACSource    Source
	UserSource   Source
	GroupSource  Source // the user's source when the user's group decided, else static

	// deviceGroup is the group the device alone is mapped to, kept so that
	// WithProxyLogin can fall back to it for a user with no group.
	deviceGroup string
}

// Known reports whether anything at all is known.
func (w Who) Known() bool {
	return w.Device != "" || w.MAC != "" || w.User != "" || w.Group != ""
}

// Sources says which source identified each part, for the incident record:
// "device: lease, user: radius".
func (w Who) Sources() string {
	var parts []string
	for _, p := range []struct {
		what string
		src  Source
		set  bool
	}{{"device", w.DeviceSource, w.Device != ""}, {"mac", w.MACSource, w.MAC != ""}, {"user", w.UserSource, w.User != ""}, {"group", w.GroupSource, w.Group != ""}} {
		if p.set && p.src != 0 {
			parts = append(parts, p.what+": "+p.src.String())
		}
	}
	return strings.Join(parts, ", ")
}

// WithProxyLogin returns w with the user who authenticated to the proxy for
// this request, and that user's group (empty when the user has none, which
// leaves the device's group). A proxy login speaks for the very request, so
// it replaces a user known from RADIUS.
func (w Who) WithProxyLogin(user, group string) Who {
	if user == "" {
		return w
	}
	w.User, w.UserSource = user, SourceProxyLogin
	switch {
	case group != "":
		w.Group, w.GroupSource = group, SourceProxyLogin
	case w.deviceGroup != "":
		w.Group, w.GroupSource = w.deviceGroup, SourceStatic
	default:
		w.Group, w.GroupSource = "", 0
	}
	return w
}

// StaticDevice is a name and, optionally, a group that IT staff gave a
// device: by MAC (that hardware wherever it is on the network) or by address
// (whatever holds the address, for fixed addresses).
type StaticDevice struct {
	Addr  netip.Addr // set exactly one of Addr and MAC
	MAC   string
	Name  string
	Group string
}

// Options tune a Table.
type Options struct {
	// Horizon is how long the history of an ended lease or session is kept
	// for lookups of past moments. Zero means 24 hours: attempts are looked
	// up when they happen, and identity is personal data kept no longer
	// than needed.
	Horizon time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Session is one user's accounting session on an address.
type Session struct {
	Addr  netip.Addr
	User  string
	MAC   string    // the device's MAC when the NAS sent one, canonical
	NAS   string    // who reported the session; its Accounting-On or Off ends it
	Start time.Time // zero: now
	End   time.Time // zero: still open
}

// LeaseRead is one reading of a lease file.
type LeaseRead struct {
	// Origin names the file. For a file that lists only current leases
	// (dnsmasq), a lease the last read of the same origin listed and this one
	// does not has ended.
	Origin string
	Format Format
	Leases []Lease
	// At is when the file last changed: when what it says became true, at
	// the latest. It is the start of leases whose start the file does not
	// give, and the end of those that left the file.
	At time.Time
}

// Stats counts what the Table holds.
type Stats struct {
	Addresses int // addresses with any history or a static entry
	Leases    int // lease intervals kept
	Sessions  int // RADIUS sessions kept
}

// binding is one holder of an address in the Table's history: a device
// (leases) or a user (sessions).
type binding = span[bindInfo]

// bindInfo is what a binding knows of its holder.
type bindInfo struct {
	mac    string
	name   string // the host name of a lease, the user name of a session
	origin string // the lease file or the NAS that reported it
}

// fillFrom keeps what newer news leaves out.
func (b bindInfo) fillFrom(older bindInfo) bindInfo {
	if b.mac == "" {
		b.mac = older.mac
	}
	if b.name == "" {
		b.name = older.name
	}
	return b
}

// Table answers who held an address at a moment. Lookups read an immutable
// snapshot through an atomic pointer: no lock, no allocation. Writers take
// a mutex, change the history and publish a new snapshot that shares with
// the last one everything but the addresses they changed. All methods are
// safe for concurrent use.
type Table struct {
	snap    atomic.Pointer[snapshot]
	horizon time.Duration
	now     func() time.Time

	mu         sync.Mutex
	leases     map[netip.Addr][]binding
	sessions   map[netip.Addr][]binding
	listed     map[string]map[netip.Addr]string // per origin listing only current leases: address → device
	byAddr     map[netip.Addr]StaticDevice
	byMAC      map[string]StaticDevice
	userGroups map[string]string // lower-case user name → group
}

// NewTable returns an empty Table.
func NewTable(opt Options) *Table {
	t := &Table{
		horizon:  opt.Horizon,
		now:      opt.Now,
		leases:   map[netip.Addr][]binding{},
		sessions: map[netip.Addr][]binding{},
		listed:   map[string]map[netip.Addr]string{},
		byAddr:   map[netip.Addr]StaticDevice{},
		byMAC:    map[string]StaticDevice{},
	}
	if t.horizon <= 0 {
		t.horizon = 24 * time.Hour
	}
	if t.now == nil {
		t.now = time.Now
	}
	t.snap.Store(&snapshot{v4: newV4Table(nil), v4new: newV4Table(nil), v6: map[[16]byte]header{}})
	return t
}

// Lookup returns who held addr at the moment at. It is safe to call from
// any number of goroutines while the Table changes, takes no lock and
// allocates nothing.
func (t *Table) Lookup(addr netip.Addr, at time.Time) (w Who) {
	t.snap.Load().lookup(addr.Unmap(), at.UnixNano(), &w) // As16 in lookup ignores any zone
	return w
}

// Stats counts what the Table holds now.
func (t *Table) Stats() Stats { return t.snap.Load().stats }

// ApplyLeases merges one reading of a lease file into the history: its
// leases (see merge for how they settle with what is known), and for a file
// that lists only current leases (dnsmasq) the end, at r.At, of those it no
// longer lists. It also prunes the whole history.
func (t *Table) ApplyLeases(r LeaseRead) {
	at := toNanos(r.At, always)
	if at == always {
		at = t.now().UnixNano()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	dirty := map[netip.Addr]bool{}
	var listed map[netip.Addr]string // what a file listing only current leases lists
	if r.Format == FormatDnsmasq {
		listed = make(map[netip.Addr]string, len(r.Leases))
	}
	for _, l := range r.Leases {
		addr := normAddr(l.Addr)
		if !addr.IsValid() {
			continue
		}
		b := binding{start: toNanos(l.Start, always), end: toNanos(l.End, never),
			holder: l.device(), info: bindInfo{mac: l.MAC, name: l.Hostname, origin: r.Origin}}
		if l.Start.IsZero() {
			b.start = startOf(t.leases[addr], b.holder, at)
		}
		t.mergeInto(t.leases, addr, b, dirty)
		if listed != nil {
			listed[addr] = b.holder
		}
	}
	if r.Format == FormatDnsmasq {
		for addr, holder := range t.listed[r.Origin] {
			if _, still := listed[addr]; !still {
				t.endOpen(t.leases, addr, holder, r.Origin, at, dirty)
			}
		}
		t.listed[r.Origin] = listed
	}
	t.prune(t.leases, dirty)
	t.prune(t.sessions, dirty)
	t.publish(dirty)
}

// ApplySession merges one report of a RADIUS session into the history.
func (t *Table) ApplySession(s Session) error { return t.ApplySessions([]Session{s}) }

// ApplySessions merges reports of sessions into the history at once, and
// publishes one snapshot for all of them. If any report lacks its address
// or user, none is applied.
func (t *Table) ApplySessions(ss []Session) error {
	bs := make([]binding, len(ss))
	addrs := make([]netip.Addr, len(ss))
	for i, s := range ss {
		addrs[i] = normAddr(s.Addr)
		switch {
		case !addrs[i].IsValid():
			return fmt.Errorf("session of %q: no address", s.User)
		case s.User == "":
			return fmt.Errorf("session on %s: no user name", addrs[i])
		}
		start := toNanos(s.Start, always)
		if start == always {
			start = t.now().UnixNano()
		}
		bs[i] = binding{start: start, end: toNanos(s.End, never), holder: s.User,
			info: bindInfo{mac: s.MAC, name: s.User, origin: s.NAS}}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	dirty := map[netip.Addr]bool{}
	for i, b := range bs {
		t.mergeInto(t.sessions, addrs[i], b, dirty)
	}
	cutoff := t.cutoff()
	for addr := range dirty {
		t.pruneAddr(t.sessions, addr, cutoff, dirty)
		t.pruneAddr(t.leases, addr, cutoff, dirty)
	}
	t.publish(dirty)
	return nil
}

// EndSessions ends, at the moment at, every session the NAS reported that
// is still open then: the NAS sent Accounting-On or Off, so it has
// restarted or is stopping and its sessions are over.
func (t *Table) EndSessions(nas string, at time.Time) {
	end := toNanos(at, never)
	t.mu.Lock()
	defer t.mu.Unlock()
	dirty := map[netip.Addr]bool{}
	other := func(b binding) bool { return b.info.origin != nas }
	for addr, h := range t.sessions {
		if h, changed := cutAt(h, end, other); changed {
			setHistory(t.sessions, addr, h)
			dirty[addr] = true
		}
	}
	t.publish(dirty)
}

// Prune drops history that ended before the horizon. Every lease file read
// and RADIUS report prunes too (the whole table and the addresses reported,
// respectively); a server with neither for long can call Prune now and then.
func (t *Table) Prune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	dirty := map[netip.Addr]bool{}
	t.prune(t.leases, dirty)
	t.prune(t.sessions, dirty)
	t.publish(dirty)
}

// SetStatic replaces the names and groups IT staff set: devices by address
// or MAC, and users (by name, compared without regard to case) to groups.
func (t *Table) SetStatic(devices []StaticDevice, userGroups map[string]string) error {
	byAddr := map[netip.Addr]StaticDevice{}
	byMAC := map[string]StaticDevice{}
	for i, d := range devices {
		switch {
		case d.Addr.IsValid() == (d.MAC != ""):
			return fmt.Errorf("static device %d (%q): set exactly one of address and MAC", i+1, d.Name)
		case d.Name == "" && d.Group == "":
			return fmt.Errorf("static device %d: want a name or a group", i+1)
		case d.Addr.IsValid():
			d.Addr = normAddr(d.Addr)
			if _, dup := byAddr[d.Addr]; dup {
				return fmt.Errorf("static device %d (%q): address %s is named twice", i+1, d.Name, d.Addr)
			}
			byAddr[d.Addr] = d
		default:
			mac, err := CanonicalMAC(d.MAC)
			if err != nil {
				return fmt.Errorf("static device %d (%q): %w", i+1, d.Name, err)
			}
			if _, dup := byMAC[mac]; dup {
				return fmt.Errorf("static device %d (%q): MAC %s is named twice", i+1, d.Name, mac)
			}
			d.MAC = mac
			byMAC[mac] = d
		}
	}
	groups := make(map[string]string, len(userGroups))
	for u, g := range userGroups {
		groups[strings.ToLower(u)] = g
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byAddr, t.byMAC, t.userGroups = byAddr, byMAC, groups
	t.rebuild()
	return nil
}

// mergeInto merges b into the history of addr in hist.
func (t *Table) mergeInto(hist map[netip.Addr][]binding, addr netip.Addr, b binding, dirty map[netip.Addr]bool) {
	if h, changed := merge(hist[addr], b); changed {
		setHistory(hist, addr, h)
		dirty[addr] = true
	}
}

// endOpen ends, at the moment at, the holder's binding from origin that is
// open then.
func (t *Table) endOpen(hist map[netip.Addr][]binding, addr netip.Addr, holder, origin string, at int64, dirty map[netip.Addr]bool) {
	other := func(b binding) bool { return b.holder != holder || b.info.origin != origin }
	if h, changed := cutAt(hist[addr], at, other); changed {
		setHistory(hist, addr, h)
		dirty[addr] = true
	}
}

// prune drops bindings that ended before the horizon.
func (t *Table) prune(hist map[netip.Addr][]binding, dirty map[netip.Addr]bool) {
	cutoff := t.cutoff()
	for addr := range hist {
		t.pruneAddr(hist, addr, cutoff, dirty)
	}
}

// pruneAddr drops one address's bindings that ended before cutoff.
func (t *Table) pruneAddr(hist map[netip.Addr][]binding, addr netip.Addr, cutoff int64, dirty map[netip.Addr]bool) {
	old := func(b binding) bool { return b.end < cutoff }
	if h := hist[addr]; slices.ContainsFunc(h, old) {
		setHistory(hist, addr, slices.DeleteFunc(slices.Clone(h), old))
		dirty[addr] = true
	}
}

// cutoff is the moment before which ended history is dropped.
func (t *Table) cutoff() int64 { return t.now().Add(-t.horizon).UnixNano() }

// setHistory stores an address's history, at most maxHistory of its
// latest intervals.
func setHistory(hist map[netip.Addr][]binding, addr netip.Addr, h []binding) {
	switch {
	case len(h) == 0:
		delete(hist, addr)
	case len(h) > maxHistory:
		hist[addr] = slices.Clone(h[len(h)-maxHistory:])
	default:
		hist[addr] = h
	}
}

// startOf gives a lease whose file does not say when it started a start:
// that of the same device's binding still running at the moment at, or else
// at itself, the earliest moment the lease is known to hold. Taking an
// earlier one could put on this device what the address's last holder did.
func startOf(h []binding, holder string, at int64) int64 {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].holder == holder && h[i].start <= at && at <= h[i].end {
			return h[i].start
		}
	}
	return at
}

// normAddr is the form addresses are kept in: IPv4 as IPv4 even when it
// came mapped into IPv6, and no zone.
func normAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }
