package identity

import (
	"encoding/binary"
	"hash/fnv"
	"maps"
	"net/netip"
	"strings"
)

// snapshot is what lookups read. Every interval of every address sits in one
// flat array, an address's leases and then its sessions side by side with
// the static names and groups already joined in; a map keyed by the address
// (IPv4 in a v4Table, IPv6 in a Go map) holds where they are, and the answer
// that holds for the time being. A lookup of the present is one map read;
// one of another moment also scans a few neighbouring entries. A snapshot is
// never changed once published: the next one appends the entries of the
// addresses that changed to the same array, past the end any older snapshot
// reads, and points its (copied) map at them; the space they leave behind is
// reclaimed by a full rebuild when it grows.
type snapshot struct {
	v4      *v4Table // every IPv4 address, as of the last fold
	v4new   *v4Table // IPv4 addresses changed since, or gone (header.gone)
	v6      map[[16]byte]header
	entries []entry
	statics []staticRec
	dead    int // entries no header points at any more
	stats   Stats
}

// header says where an address's history is, and what it says for a while
// around the moment the header was made.
type header struct {
	history
	gone bool // in v4new: the address is no longer known
	cur  answer
}

// history is where an address's intervals are in the snapshot.
type history struct {
	off    uint32 // its first entry
	static int32  // its static entry in statics, or -1
	leases uint8  // how many lease entries, then (at most maxHistory)
	sess   uint8  // how many session entries
}

// answer is who the history says held an address at every moment
// from <= t < until. Lookups, nearly all of the present, read it instead of
// the history: the history changes only at the starts and ends of its
// intervals, and a header is made anew whenever the history changes.
type answer struct {
	from, until int64
	who         Who
}

// entry is one interval: a lease or a session.
type entry struct {
	start, end int64
	macKey     uint64 // the MAC, packed for comparing; 0 for none
	mac        string
	name       string // the host name of a lease, the user name of a session
	userGroup  string // the group of a session's user
	macName    string // the static name of the MAC
	macGroup   string // the static group of the MAC
}

type staticRec struct{ name, group string }

// foldAfter is how many changed IPv4 addresses v4new holds before they are
// folded into v4. Copying v4 (half a megabyte for 10,000 addresses) on
// every RADIUS report would cost a millisecond; a small table of recent
// changes costs a few microseconds to copy and one probe more to read.
const foldAfter = 512

// maxHistory bounds the intervals kept per address (the newest are kept),
// so that a flood of reports for one address cannot grow it without end.
const maxHistory = 64

func v4Key(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// header finds an address; a is in normAddr form.
func (s *snapshot) header(a netip.Addr) (header, bool) {
	if a.Is4() {
		key := v4Key(a)
		if h, ok := s.v4new.get(key); ok {
			return h, !h.gone
		}
		return s.v4.get(key)
	}
	h, ok := s.v6[a.As16()]
	return h, ok
}

// lookup writes who held a (in normAddr form) at the moment t (Unix
// nanoseconds) into w, a zero Who; see the package comment for which source
// wins each part. An IPv4 address, the common case, is answered straight
// from its slot: copying a header out of the table would cost more than
// the rest of the lookup.
func (s *snapshot) lookup(a netip.Addr, t int64, w *Who) {
	if !a.Is4() {
		switch h, ok := s.v6[a.As16()]; {
		case !ok:
		case h.cur.from <= t && t < h.cur.until:
			*w = h.cur.who
		default:
			s.fill(w, h.history, t)
		}
		return
	}
	key := v4Key(a)
	tab, i := s.v4new, s.v4new.find(key)
	if i < 0 {
		if tab, i = s.v4, s.v4.find(key); i < 0 {
			return
		}
	}
	switch sl := &tab.slots[i]; {
	case sl.gone:
	case sl.holds(t):
		tab.answer(sl, w)
	default:
		s.fill(w, tab.hist[i], t)
	}
}

// answerAt is the answer for the moment t and the longest span around it
// in which nothing changes: from the last start or end of the address's
// intervals at or before t to the first after it.
func (s *snapshot) answerAt(h history, t int64) answer {
	a := answer{from: always, until: never}
	for _, e := range s.entries[h.off : h.off+uint32(h.leases)+uint32(h.sess)] {
		for _, b := range [2]int64{e.start, e.end} {
			if b <= t {
				a.from = max(a.from, b)
			} else {
				a.until = min(a.until, b)
			}
		}
	}
	s.fill(&a.who, h, t)
	return a
}

// fill answers for the moment t from the history, writing into w (a zero
// Who).
func (s *snapshot) fill(w *Who, h history, t int64) {
	var leaseMAC uint64
	leases := s.entries[h.off : h.off+uint32(h.leases)]
	if l := find(leases, t); l != nil {
		w.MAC, w.MACSource, leaseMAC = l.mac, SourceLease, l.macKey
		if l.name != "" {
			w.Device, w.DeviceSource = l.name, SourceLease
		}
		w.setStatic(l.macName, l.macGroup)
	}
	sessions := s.entries[h.off+uint32(h.leases) : h.off+uint32(h.leases)+uint32(h.sess)]
	// A session for another MAC than the lease's belongs to a device that
	// has left the address: its Stop was lost.
	if se := find(sessions, t); se != nil && (se.macKey == 0 || leaseMAC == 0 || se.macKey == leaseMAC) {
		w.User, w.UserSource = se.name, SourceRADIUS
		if w.MAC == "" && se.mac != "" {
			w.MAC, w.MACSource = se.mac, SourceRADIUS
			w.setStatic(se.macName, se.macGroup)
		}
		if se.userGroup != "" {
			w.Group, w.GroupSource = se.userGroup, SourceRADIUS
		}
	}
	if h.static >= 0 {
		st := &s.statics[h.static]
		if w.DeviceSource != SourceStatic && st.name != "" {
			w.Device, w.DeviceSource = st.name, SourceStatic
		}
		if w.deviceGroup == "" && st.group != "" {
			w.deviceGroup = st.group
			if w.Group == "" {
				w.Group, w.GroupSource = st.group, SourceStatic
			}
		}
	}
}

// setStatic applies the static entry of the device's MAC.
func (w *Who) setStatic(name, group string) {
	if name != "" {
		w.Device, w.DeviceSource = name, SourceStatic
	}
	if group != "" {
		w.deviceGroup = group
		w.Group, w.GroupSource = group, SourceStatic
	}
}

// find returns the interval holding the moment t, or nil. Histories are
// sorted, do not overlap and are a few intervals long, and lookups are
// mostly of the present, so it scans from the latest.
func find(es []entry, t int64) *entry {
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].start <= t {
			if t < es[i].end {
				return &es[i]
			}
			return nil
		}
	}
	return nil
}

// publish swaps in a snapshot with the dirty addresses' histories rebuilt.
// Callers hold mu.
func (t *Table) publish(dirty map[netip.Addr]bool) {
	if len(dirty) == 0 {
		return
	}
	old := t.snap.Load()
	if old.dead > len(old.entries)/2 && old.dead > 4096 {
		t.rebuild()
		return
	}
	next := *old
	now := t.now().UnixNano()
	set4, gone4 := map[uint32]header{}, map[uint32]bool{}
	ownV6 := false // whether next has its own copy of the v6 map yet
	for addr := range dirty {
		if h, ok := old.header(addr); ok {
			next.dead += int(h.leases) + int(h.sess)
			next.stats.Addresses--
			next.stats.Leases -= int(h.leases)
			next.stats.Sessions -= int(h.sess)
		}
		h, ok := t.appendAddr(&next, addr, now)
		if addr.Is4() {
			if ok {
				set4[v4Key(addr)] = h
			} else {
				gone4[v4Key(addr)] = true
			}
			continue
		}
		if !ownV6 {
			next.v6, ownV6 = maps.Clone(old.v6), true
		}
		if ok {
			next.v6[addr.As16()] = h
		} else {
			delete(next.v6, addr.As16())
		}
	}
	if len(set4)+len(gone4) > 0 {
		next.v4, next.v4new = old.v4changed(set4, gone4)
	}
	t.snap.Store(&next)
}

// v4changed returns the IPv4 tables with the addresses in set changed and
// those in gone removed: in v4new, until it holds foldAfter addresses.
func (s *snapshot) v4changed(set map[uint32]header, gone map[uint32]bool) (v4, v4new *v4Table) {
	for key := range gone {
		set[key] = header{gone: true}
	}
	if s.v4new.n+len(set) <= foldAfter {
		return s.v4, s.v4new.with(set, nil)
	}
	changed := s.v4new.all()
	maps.Copy(changed, set)
	set, gone = map[uint32]header{}, map[uint32]bool{}
	for key, h := range changed {
		if h.gone {
			gone[key] = true
		} else {
			set[key] = h
		}
	}
	return s.v4.with(set, gone), newV4Table(nil)
}

// rebuild swaps in a snapshot built afresh. Callers hold mu.
func (t *Table) rebuild() {
	all := map[netip.Addr]bool{}
	for _, m := range []map[netip.Addr][]binding{t.leases, t.sessions} {
		for a := range m {
			all[a] = true
		}
	}
	for a := range t.byAddr {
		all[a] = true
	}
	next := &snapshot{v4: newV4Table(nil), v4new: newV4Table(nil), v6: map[[16]byte]header{}}
	v4 := map[uint32]header{}
	now := t.now().UnixNano()
	for addr := range all {
		h, ok := t.appendAddr(next, addr, now)
		switch {
		case !ok:
		case addr.Is4():
			v4[v4Key(addr)] = h
		default:
			next.v6[addr.As16()] = h
		}
	}
	next.v4 = newV4Table(v4)
	t.snap.Store(next)
}

// appendAddr appends one address's history to s and returns its header,
// with the answer for the moment now; false when nothing is known of the
// address. Callers hold mu.
func (t *Table) appendAddr(s *snapshot, addr netip.Addr, now int64) (header, bool) {
	ls, ss := t.leases[addr], t.sessions[addr]
	st, hasStatic := t.byAddr[addr]
	if len(ls) == 0 && len(ss) == 0 && !hasStatic {
		return header{}, false
	}
	h := header{history: history{off: uint32(len(s.entries)), leases: uint8(len(ls)), sess: uint8(len(ss)), static: -1}}
	if old, ok := s.header(addr); ok && old.static >= 0 && hasStatic {
		h.static = old.static // statics change only through SetStatic, which rebuilds
	} else if hasStatic {
		h.static = int32(len(s.statics))
		s.statics = append(s.statics, staticRec{name: st.Name, group: st.Group})
	}
	for _, b := range ls {
		s.entries = append(s.entries, t.entry(b, ""))
	}
	for _, b := range ss {
		s.entries = append(s.entries, t.entry(b, t.userGroups[strings.ToLower(b.info.name)]))
	}
	s.stats.Addresses++
	s.stats.Leases += len(ls)
	s.stats.Sessions += len(ss)
	h.cur = s.answerAt(h.history, now)
	return h, true
}

func (t *Table) entry(b binding, userGroup string) entry {
	e := entry{start: b.start, end: b.end, mac: b.info.mac, macKey: macKey(b.info.mac), name: b.info.name, userGroup: userGroup}
	if d, ok := t.byMAC[b.info.mac]; ok && b.info.mac != "" {
		e.macName, e.macGroup = d.Name, d.Group
	}
	return e
}

// macKey packs a canonical MAC into a number that lookups compare instead
// of the string: the six octets of an Ethernet MAC with a marker bit, or a
// hash of a longer one. 0 stands for no MAC.
func macKey(mac string) uint64 {
	if mac == "" {
		return 0
	}
	if len(mac) == 17 {
		var k uint64
		for i := 0; i < 17; i += 3 {
			k = k<<8 | uint64(unhex(mac[i])<<4|unhex(mac[i+1]))
		}
		return k | 1<<48
	}
	h := fnv.New64a()
	h.Write([]byte(mac))
	return h.Sum64() | 1<<63
}

func unhex(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}
