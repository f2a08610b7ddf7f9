package identity

import "slices"

// v4Table is an open-addressing hash table from IPv4 addresses to headers,
// built once and never changed: a lookup is a multiply and, at the load of
// at most a half it is built with, one or two probes of one array. It does
// what a map[uint32]header does at about a quarter of the cost, which
// matters on the path of every DNS query.
type v4Table struct {
	slots []v4Slot
	shift uint // 64 - log2(len(slots))
	n     int
}

// v4Slot is an address and its header side by side, 16 bytes, so that a
// probe that finds the address reads one cache line.
type v4Slot struct {
	key    uint32
	off    uint32
	static int32
	leases uint8
	sess   uint8
	used   bool
	gone   bool
}

// newV4Table returns an empty table with room for n addresses.
func newV4Table(n int) *v4Table {
	size, bits := 16, uint(4)
	for size < 2*n {
		size, bits = size*2, bits+1
	}
	return &v4Table{slots: make([]v4Slot, size), shift: 64 - bits}
}

// home is the slot an address's probe starts at (Fibonacci hashing).
func (t *v4Table) home(key uint32) uint64 {
	return (uint64(key) * 0x9e3779b97f4a7c15) >> t.shift
}

func (t *v4Table) get(key uint32) (header, bool) {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(key); ; i = (i + 1) & mask {
		switch s := &t.slots[i]; {
		case !s.used:
			return header{}, false
		case s.key == key:
			return header{off: s.off, leases: s.leases, sess: s.sess, static: s.static, gone: s.gone}, true
		}
	}
}

// put adds or replaces an address; the table must have been made with room.
func (t *v4Table) put(key uint32, h header) {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(key); ; i = (i + 1) & mask {
		if s := &t.slots[i]; !s.used || s.key == key {
			if !s.used {
				t.n++
			}
			*s = v4Slot{key: key, off: h.off, static: h.static, leases: h.leases, sess: h.sess, used: true, gone: h.gone}
			return
		}
	}
}

// each calls f with every address and header.
func (t *v4Table) each(f func(uint32, header)) {
	for _, s := range t.slots {
		if s.used {
			f(s.key, header{off: s.off, leases: s.leases, sess: s.sess, static: s.static, gone: s.gone})
		}
	}
}

// del removes an address, shifting back the entries after it in its probe
// run so that every entry stays reachable from its home slot.
func (t *v4Table) del(key uint32) {
	mask := uint64(len(t.slots) - 1)
	i := t.home(key)
	for ; t.slots[i].key != key || !t.slots[i].used; i = (i + 1) & mask {
		if !t.slots[i].used {
			return
		}
	}
	for j := (i + 1) & mask; t.slots[j].used; j = (j + 1) & mask {
		// The entry at j may move to the hole at i unless its home lies
		// cyclically in (i, j].
		if home := t.home(t.slots[j].key); (j-home)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = v4Slot{}
	t.n--
}

// with returns a copy of t with the addresses in set added or replaced and
// those in gone removed; t itself, which lookups may be reading, does not
// change.
func (t *v4Table) with(set map[uint32]header, gone map[uint32]bool) *v4Table {
	added := 0
	for key := range set {
		if _, ok := t.get(key); !ok {
			added++
		}
	}
	var next *v4Table
	if 2*(t.n+added) <= len(t.slots) {
		next = &v4Table{slots: slices.Clone(t.slots), shift: t.shift, n: t.n}
	} else {
		next = newV4Table(t.n + added)
		t.each(next.put)
	}
	for key := range gone {
		next.del(key)
	}
	for key, h := range set {
		next.put(key, h)
	}
	return next
}
