package identity

import (
	"math"
	"slices"
	"strings"
	"time"
)

// v4Table is an open-addressing hash table from IPv4 addresses to headers,
// built once and never changed: a lookup is a multiply and, at the load of
// at most a half it is built with, one or two probes of one array. Each
// slot holds the address and the answer that holds for the time being in
// half a cache line, so that naming a client on the path of a DNS query
// waits for one read from memory, not for a map's and then the history's,
// and two addresses share each line the cache keeps. Where each address's
// history is, needed only for other moments, sits in an array alongside.
type v4Table struct {
	slots []v4Slot
	hist  []history // hist[i] is where the history of slots[i] is
	text  string    // the strings of every slot's answer, back to back
	live  int       // how much of text the slots' answers take
	shift uint      // 64 - log2(len(slots))
	n     int
}

// v4Slot is one address and its answer, the strings packed as lengths of
// consecutive pieces of the table's text. 32 bytes.
type v4Slot struct {
	key         uint32
	from, until uint32 // the answer holds from <= t < until, in Unix seconds
	text        uint32
	lens        [whoStrings]uint8
	sources     [whoSources]Source
	used, gone  bool
	_           [5]byte
}

// whoStrings and whoSources are how many strings and sources a Who has.
const (
	whoStrings = 5
	whoSources = 4
)

// strings lists the strings of w in the order a slot packs them.
func (w *Who) strings() [whoStrings]*string {
	return [whoStrings]*string{&w.Device, &w.MAC, &w.User, &w.Group, &w.deviceGroup}
}

// newV4Table returns a table of the addresses in set.
func newV4Table(set map[uint32]header) *v4Table {
	size, bits := 16, uint(4)
	for size < 2*len(set) {
		size, bits = size*2, bits+1
	}
	t := &v4Table{slots: make([]v4Slot, size), hist: make([]history, size), shift: 64 - bits}
	var text strings.Builder
	for key, h := range set {
		t.put(key, h, &text)
	}
	t.text = text.String()
	return t
}

// home is the slot an address's probe starts at (Fibonacci hashing).
func (t *v4Table) home(key uint32) uint64 {
	return (uint64(key) * 0x9e3779b97f4a7c15) >> t.shift
}

// find returns the index of an address's slot, or -1.
func (t *v4Table) find(key uint32) int {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(key); ; i = (i + 1) & mask {
		switch s := &t.slots[i]; {
		case !s.used:
			return -1
		case s.key == key:
			return int(i)
		}
	}
}

// holds reports whether slot s's answer holds at the moment t (Unix
// nanoseconds).
func (s *v4Slot) holds(t int64) bool {
	return int64(s.from)*int64(time.Second) <= t && t < int64(s.until)*int64(time.Second)
}

// get finds an address.
func (t *v4Table) get(key uint32) (header, bool) {
	if i := t.find(key); i >= 0 {
		return t.header(i), true
	}
	return header{}, false
}

// header unpacks slot i.
func (t *v4Table) header(i int) header {
	s := &t.slots[i]
	h := header{history: t.hist[i], gone: s.gone}
	if s.from < s.until {
		h.cur.from, h.cur.until = int64(s.from)*int64(time.Second), int64(s.until)*int64(time.Second)
		t.answer(s, &h.cur.who)
	}
	return h
}

// answer writes a slot's answer into w, a zero Who. It is on the path of
// every lookup, so it is written out rather than looped.
func (t *v4Table) answer(s *v4Slot, w *Who) {
	l := s.lens
	a := s.text
	b := a + uint32(l[0])
	c := b + uint32(l[1])
	d := c + uint32(l[2])
	e := d + uint32(l[3])
	f := e + uint32(l[4])
	text := t.text[a:f]
	w.Device, w.MAC, w.User, w.Group, w.deviceGroup = text[:b-a], text[b-a:c-a], text[c-a:d-a], text[d-a:e-a], text[e-a:]
	w.DeviceSource, w.MACSource, w.UserSource, w.GroupSource = s.sources[0], s.sources[1], s.sources[2], s.sources[3]
}

// put adds or replaces an address, appending its answer's strings to text;
// the table must have been made with room.
func (t *v4Table) put(key uint32, h header, text *strings.Builder) {
	mask := uint64(len(t.slots) - 1)
	i := t.home(key)
	for t.slots[i].used && t.slots[i].key != key {
		i = (i + 1) & mask
	}
	s := &t.slots[i]
	if s.used {
		t.live -= s.textLen()
	} else {
		t.n++
	}
	*s = v4Slot{key: key, used: true, gone: h.gone}
	t.hist[i] = h.history
	from, until, ok := seconds(h.cur.from, h.cur.until)
	if !ok {
		return
	}
	w := &h.cur.who
	str := w.strings()
	for i, p := range str {
		if len(*p) > 255 {
			return // an answer that does not pack is left to the history
		}
		s.lens[i] = uint8(len(*p))
	}
	s.from, s.until, s.text = from, until, uint32(text.Len())
	s.sources = [whoSources]Source{w.DeviceSource, w.MACSource, w.UserSource, w.GroupSource}
	for _, p := range str {
		text.WriteString(*p)
	}
	t.live += s.textLen()
}

// textLen is how much of the table's text a slot's answer takes.
func (s *v4Slot) textLen() int {
	n := 0
	for _, l := range s.lens {
		n += int(l)
	}
	return n
}

// all returns every address and header.
func (t *v4Table) all() map[uint32]header {
	m := make(map[uint32]header, t.n)
	for i := range t.slots {
		if s := &t.slots[i]; s.used {
			m[s.key] = t.header(i)
		}
	}
	return m
}

// seconds narrows the span [from, until) (Unix nanoseconds) to whole
// seconds that fit a slot: an answer may claim less time than it holds,
// never more. False when no whole second is left.
func seconds(from, until int64) (uint32, uint32, bool) {
	const sec = int64(time.Second)
	f := (max(from, 0) + sec - 1) / sec
	u := min(max(until, 0)/sec, math.MaxUint32)
	return uint32(f), uint32(u), f < u
}

// with returns a table of t's addresses with those in set added or
// replaced and those in gone removed; t itself, which lookups may be
// reading, does not change. Changes to a table with room left, the table
// of recent changes on every RADIUS report, copy its arrays and append to
// its text; removals, growth and a text mostly of answers since replaced
// build the table afresh.
func (t *v4Table) with(set map[uint32]header, gone map[uint32]bool) *v4Table {
	if len(gone) == 0 && 2*(t.n+len(set)) <= len(t.slots) && len(t.text) <= 2*t.live+4096 {
		next := &v4Table{slots: slices.Clone(t.slots), hist: slices.Clone(t.hist), shift: t.shift, n: t.n, live: t.live}
		var text strings.Builder
		text.WriteString(t.text)
		for key, h := range set {
			next.put(key, h, &text)
		}
		next.text = text.String()
		return next
	}
	next := t.all()
	for key := range gone {
		delete(next, key)
	}
	for key, h := range set {
		next[key] = h
	}
	return newV4Table(next)
}
