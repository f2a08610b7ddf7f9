package categories

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"unsafe"
)

// Flags carried in the top bits of an entry's Mask. Category IDs stay below
// them (the taxonomy has far fewer than 62 categories).
const (
	// FlagLocked marks categories that come from a locked feed (IWF, Home
	// Office): no override of any kind can unblock them.
	FlagLocked Mask = 1 << 63
	// flagBits are the bits that are not categories.
	flagBits = FlagLocked
)

// maxHits bounds how many matching levels a Classification records for
// attribution; further matches still count in its masks.
const maxHits = 8

// Hit is one entry that matched a host or URL.
type Hit struct {
	Entry  string // the matching domain, or the host part of a URL entry
	Path   string // the URL entry's path prefix; "" for a domain entry
	Mask   Mask   // the entry's categories, with FlagLocked when some came from a locked feed
	Locked Mask   // the entry's categories that came from a locked feed
}

// entrySet is what the Index holds for one name: its categories and which
// of them came from a locked feed (a name listed by a locked feed in one
// category and by an ordinary feed in another locks only the first), the
// categories a feed exception takes away from it and the domains above it,
// and whether it is a domain entry and has URL entries under it.
type entrySet struct {
	cats, locked Mask
	cancel       Mask // a feed exception ("@@" rule) for this name
	flags        uint8
}

const (
	setDomain uint8 = 1 << iota // the name is a domain entry
	setURLs                     // the name has URL entries
)

// setOf reads a Mask as given to IndexBuilder.Add: FlagLocked locks all of
// its categories.
func setOf(m Mask) entrySet {
	s := entrySet{cats: m &^ flagBits, flags: setDomain}
	if m&FlagLocked != 0 {
		s.locked = s.cats
	}
	return s
}

// or merges two sets of the same name.
func (s entrySet) or(t entrySet) entrySet {
	return entrySet{cats: s.cats | t.cats, locked: s.locked | t.locked, cancel: s.cancel | t.cancel, flags: s.flags | t.flags}
}

// mask encodes the categories the way Add takes them (FlagLocked when any
// category is locked).
func (s entrySet) mask() Mask {
	if s.locked != 0 {
		return s.cats | FlagLocked
	}
	return s.cats
}

// Classification is everything the Index knows about one target.
type Classification struct {
	Cats   Mask // union of the categories of every matching entry
	Locked Mask // the categories that came from locked feeds
	Hits   [maxHits]Hit
	NHits  int
}

// Index is an immutable, compact set of domain and URL-prefix entries with
// their categories. Every name the Index knows (domain entries, the hosts of
// URL entries, feed exceptions) is a record in one packed string (length,
// set number, name); a hash table of 8-slot groups holds each record's
// offset, with an 8-bit tag of its hash kept apart in a dense array (a byte
// per slot, small enough to stay in cache where the offsets and records
// cannot). A lookup of a name that is not listed, most of them, reads one
// tag word; a listed name also reads its offset and record. It takes no lock
// and allocates nothing.
type Index struct {
	records string     // per name: len byte, set number (2 bytes, little endian), name
	tags    []uint64   // hash table, 8 slots a word: one tag byte per slot, 0 = empty
	offs    []uint32   // the record offset of each slot, 8 per tag word
	sets    []entrySet // distinct sets, by set number
	hash    nameHasher
	domains int

	urls       map[string][]urlRule // host -> path prefixes, longest first
	urlEntries int
}

type urlRule struct {
	prefix string
	set    entrySet
}

// Len returns the number of distinct entries (domains plus URL prefixes).
func (x *Index) Len() int { return x.domains + x.urlEntries }

// Domains returns the number of distinct domain entries.
func (x *Index) Domains() int { return x.domains }

// URLs returns the number of distinct URL-prefix entries.
func (x *Index) URLs() int { return x.urlEntries }

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// slot splits a name's hash into its home group and its tag (never 0,
// which marks an empty slot).
func (x *Index) slot(h uint64) (group int, tag uint64) {
	tag = h & 0xff
	if tag == 0 {
		tag = 1
	}
	return reduce(h, len(x.tags)), tag
}

// find returns what the Index holds for exactly this name.
func (x *Index) find(name string) (entrySet, bool) {
	if len(x.tags) == 0 {
		return entrySet{}, false
	}
	g, tag := x.slot(x.hash.name(name))
	return x.probe(g, tag, name)
}

// lookup returns the categories of exactly this domain entry, encoded as
// Add takes them.
func (x *Index) lookup(name string) (Mask, bool) {
	s, ok := x.find(name)
	if !ok || s.flags&setDomain == 0 {
		return 0, false
	}
	return s.mask(), true
}

// probe searches for name from its home group g with its tag.
func (x *Index) probe(g int, tag uint64, name string) (entrySet, bool) {
	for {
		tags := x.tags[g]
		// Bytes of tags equal to tag become zero in v; the classic
		// zero-byte test finds them (a borrow can flag a byte after a real
		// match, which the record comparison then rejects).
		v := tags ^ (tag * lsb)
		for m := (v - lsb) &^ v & msb; m != 0; m &= m - 1 {
			i := bits.TrailingZeros64(m) >> 3
			off := int(x.offs[g*8+i])
			if n := int(x.records[off]); n == len(name) && x.records[off+3:off+3+n] == name {
				return x.sets[int(x.records[off+1])|int(x.records[off+2])<<8], true
			}
		}
		// Slots fill in probe order and nothing is ever deleted, so a group
		// with an empty slot ends the probe sequence.
		if (tags-lsb)&^tags&msb != 0 {
			return entrySet{}, false
		}
		g++
		if g == len(x.tags) {
			g = 0
		}
	}
}

// window is how many levels of a host walk reads the hash table for at once.
const window = 8

// reduce maps a hash onto [0, n) without a division (Lemire's fast range).
func reduce(h uint64, n int) int {
	return int((h >> 32) * uint64(n) >> 32)
}

// Classify returns the categories of a canonical host (see NormalizeHost)
// and, when path is not empty, of the URL entries under that host, with the
// entries that matched. A domain entry matches itself and every subdomain, so
// the host is looked up at every level from the full name up to its parent
// below the top-level label (single-label entries are refused when the index
// is built); IP addresses match only exactly. Matches at several levels give
// the union of their categories.
func (x *Index) Classify(host, path string) Classification {
	var hits hitRing
	w := walk{hits: &hits}
	x.walk(host, path, nil, &w)
	c := Classification{Cats: w.cats, Locked: w.locked}
	for _, h := range hits.settled() {
		c.Hits[c.NHits] = Hit{Entry: host[h.start:], Path: h.prefix, Mask: h.set.mask(), Locked: h.set.locked}
		c.NHits++
	}
	return c
}

// walk is what one pass over a host's levels finds: the categories and the
// most specific override of each set looked at and, when hits is not nil,
// the entries that matched. Only verdicts that name a category need the
// entries, and recording them on every walk would cost more than walking a
// second time for those.
type walk struct {
	cats, locked Mask
	over         [2]overrideHit
	hits         *hitRing
	// matches counts the entries and exceptions that matched; last is the
	// most specific. A host that matched once, most listed hosts, needs no
	// second walk to name its entry.
	matches int
	last    levelHit
}

// record notes a matching entry or exception.
func (w *walk) record(start int, prefix string, s entrySet) {
	h := levelHit{start: int32(start), prefix: prefix, set: s}
	w.matches++
	w.last = h
	if w.hits != nil {
		// h, not w.last: storing what w holds through w.hits would make
		// escape analysis move every walk to the heap.
		w.hits.push(h)
	}
}

// overrideHit is the most specific override found in one set.
type overrideHit struct {
	found, allow bool
	start        int32 // where the override's host starts in the host
	prefix       string
}

// hitRing keeps the last maxHits matches of a walk: the walk goes from the
// top-level domain down, so these are the most specific ones.
type hitRing struct {
	hits [maxHits]levelHit
	n    int
}

// levelHit is one matching entry, or a feed exception, at one level.
type levelHit struct {
	start  int32  // where the entry's name starts in the host
	prefix string // a URL entry's path prefix; "" for a domain entry
	set    entrySet
}

func (r *hitRing) push(h levelHit) {
	r.hits[r.n%maxHits] = h
	r.n++
}

// settled returns the recorded entries, most specific first, each with
// what is left of it after the exceptions at its level and below; entries
// left with nothing and the exceptions themselves are dropped. It reorders
// the ring, so it is called once.
func (r *hitRing) settled() []levelHit {
	var out [maxHits]levelHit
	n := 0
	var cancelled Mask
	for i := r.n - 1; i >= 0 && i >= r.n-maxHits; i-- {
		h := r.hits[i%maxHits]
		cancelled |= h.set.cancel
		h.set.cats &^= cancelled &^ h.set.locked
		if h.set.cats != 0 {
			out[n] = h
			n++
		}
	}
	r.hits, r.n = out, 0
	return r.hits[:n]
}

// walk looks a canonical host (and, when path is not empty, its URL
// entries) up at every level and, for each non-nil override set, finds its
// most specific override. It goes from the top-level domain down, hashing
// each label once; the hash of a level is what the hash table and the
// override sets are looked up with.
//
// Up to a window of levels at a time, it first reads the hash-table word of
// each, then looks at them: the cache misses of a host's levels overlap
// instead of queueing one behind another.
//
// An exception at a level takes its categories away from the entries at
// that level and above (unless they came from a locked feed), so the
// categories not from locked feeds are kept apart until the end.
func (x *Index) walk(host, path string, over *[2]*overrideSet, w *walk) {
	if host == "" {
		return
	}
	// Names almost always end in a letter that is not a hex digit: no scan.
	ip := false
	if c := host[len(host)-1]; c <= '9' || c <= 'f' && c >= 'a' {
		ip = isIPLiteral(host)
	}
	var open Mask // categories not from a locked feed, still open to exceptions
	p := unsafe.Slice(unsafe.StringData(host), len(host))
	h, end, labels := x.hash.k0, len(host), 0
	var (
		starts [window]int32
		hashes [window]uint64
		words  [window]uint64
	)
	for end >= 0 {
		n := 0
		for ; n < window && end >= 0; end-- {
			start := 0
			// Most labels are shorter than a word and found in the word
			// that ends with them: hash them here, as nameHasher.label would.
			found := false
			if end >= 8 {
				wd := binary.LittleEndian.Uint64(p[end-8:])
				if m := dotBytes(wd); m != 0 {
					found = true
					start = end - 8 + bits.Len64(m)>>3
					h = mum(h^(wd>>(64-8*(end-start))<<8|uint64(end-start))^x.hash.k0, x.hash.k2)
				}
			}
			if !found {
				start = labelStart(p, end)
				h = x.hash.label(h, host, start, end)
			}
			labels++
			end = start // the loop's end-- steps over the dot
			// An IP address is one level. The top-level label alone is
			// never an entry, unless it is the whole host (a single-label
			// host only URL entries, an intranet path, can match), but an
			// override can name a whole top-level domain.
			if ip && start > 0 {
				continue
			}
			if labels == 1 && start > 0 {
				w.override(over, host, path, start, h)
				continue
			}
			starts[n], hashes[n] = int32(start), h
			if len(x.tags) > 0 {
				words[n] = x.tags[reduce(h, len(x.tags))]
			}
			n++
		}
		for k := 0; k < n; k++ {
			start, h := int(starts[k]), hashes[k]
			if len(x.tags) > 0 {
				g, tag := x.slot(h)
				t := words[k]
				// No tag match in a home group that still has an empty
				// slot: the name is certainly absent, without another
				// memory access.
				if v := t ^ (tag * lsb); (v-lsb)&^v&msb != 0 || (t-lsb)&^t&msb == 0 {
					if s, ok := x.probe(g, tag, host[start:]); ok {
						open = x.apply(s, host[start:], path, start, open, w)
					}
				}
			}
			w.override(over, host, path, start, h)
		}
	}
	w.cats = open | w.locked
}

// override notes the overrides of each set for the level of host that
// starts at start and has the hash h; the walk goes from the top-level
// domain down, so the last one noted is the most specific.
func (w *walk) override(over *[2]*overrideSet, host, path string, start int, h uint64) {
	if over == nil {
		return
	}
	for j, o := range over {
		if o != nil && o.mightHave(h) {
			if allow, found, prefix := o.match(host[start:], path); found {
				w.over[j] = overrideHit{found: true, allow: allow, start: int32(start), prefix: prefix}
			}
		}
	}
}

// apply adds what the Index holds for one level of the host: its domain
// entry, its URL entries that cover path, and its exception.
func (x *Index) apply(s entrySet, name, path string, start int, open Mask, w *walk) Mask {
	if s.cats != 0 {
		open |= s.cats &^ s.locked
		w.locked |= s.locked
		w.record(start, "", s)
	}
	if s.flags&setURLs != 0 && path != "" {
		open = x.walkURLs(name, path, start, open, w)
	}
	if s.cancel != 0 {
		open &^= s.cancel
		w.record(start, "", entrySet{cancel: s.cancel})
	}
	return open
}

// walkURLs adds the URL entries under one level that cover path: every one
// counts (a listing of /adult is not hidden by one of /adult/games), and
// the longest is recorded last, as the most specific.
func (x *Index) walkURLs(name, path string, start int, open Mask, w *walk) Mask {
	rules := x.urls[name]
	for i := len(rules) - 1; i >= 0; i-- {
		if r := rules[i]; pathHasPrefix(path, r.prefix) {
			open |= r.set.cats &^ r.set.locked
			w.locked |= r.set.locked
			w.record(start, r.prefix, r.set)
		}
	}
	return open
}

// hasURLRules reports whether host or a domain above it has URL entries.
func (x *Index) hasURLRules(host string) bool {
	return len(x.urls) > 0 && anyLevel(host, func(name string) bool { _, ok := x.urls[name]; return ok })
}

// anyLevel reports whether f holds for host or any domain above it.
func anyLevel(host string, f func(name string) bool) bool {
	for name := host; name != ""; {
		if f(name) {
			return true
		}
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return false
		}
		name = name[i+1:]
	}
	return false
}

// pathHasPrefix reports whether a URL entry's path prefix covers path: the
// prefix must end at a path-segment boundary, so "/bar" covers "/bar" and
// "/bar/x" but not "/barbara".
func pathHasPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// isIPLiteral reports whether a canonical host is an IP address: canonical
// names never end in a digit-only label (Normalize turns those into IPv4),
// and only IPv6 contains a colon.
func isIPLiteral(host string) bool {
	if host == "" {
		return false
	}
	// Names almost always end in a letter that is not a hex digit: no scan.
	if c := host[len(host)-1]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
		return false
	}
	if strings.IndexByte(host, ':') >= 0 {
		return true
	}
	for i := len(host) - 1; i >= 0 && host[i] != '.'; i-- {
		if host[i] < '0' || host[i] > '9' {
			return false
		}
	}
	return true
}

// IndexBuilder collects entries for a new Index. Adding the same entry
// several times (from several feeds or categories) merges its categories.
type IndexBuilder struct {
	arena      []byte
	recs       []buildRec
	urls       map[string]map[string]entrySet
	exceptions map[string]Mask
}

type buildRec struct {
	off uint32
	n   uint32
	set entrySet
}

// NewIndexBuilder returns an empty builder; sizeHint is the expected number
// of entries (0 if unknown).
func NewIndexBuilder(sizeHint int) *IndexBuilder {
	return &IndexBuilder{
		arena: make([]byte, 0, sizeHint*20),
		recs:  make([]buildRec, 0, sizeHint),
		urls:  map[string]map[string]entrySet{},
	}
}

// Add records an entry: a canonical host (a domain entry) or host+path (a
// URL-prefix entry, recognised by its '/'). The caller has normalised it.
func (b *IndexBuilder) Add(target string, m Mask) error {
	if target == "" {
		return fmt.Errorf("index entry: empty target")
	}
	if slash := strings.IndexByte(target, '/'); slash >= 0 {
		host, path := target[:slash], target[slash:]
		if host == "" {
			return fmt.Errorf("index entry %q: URL entry without a host", target)
		}
		p := b.urls[host]
		if p == nil {
			p = map[string]entrySet{}
			b.urls[host] = p
		}
		old, ns := p[path], setOf(m)
		p[path] = entrySet{cats: old.cats | ns.cats, locked: old.locked | ns.locked}
		return nil
	}
	return b.AddBytes([]byte(target), m)
}

// checkName refuses domain entries the label walk never looks up: a single
// label (a top-level domain) would block every site under it.
func checkName(target []byte) error {
	if bytes.IndexByte(target, '.') < 0 && bytes.IndexByte(target, ':') < 0 {
		return fmt.Errorf("index entry %q: a single label (a whole top-level domain) cannot be an entry", target)
	}
	return nil
}

// AddBytes is Add for a name read from storage; it copies the bytes, so
// loading millions of entries does not allocate a string for each.
func (b *IndexBuilder) AddBytes(target []byte, m Mask) error {
	if bytes.IndexByte(target, '/') >= 0 || len(target) == 0 {
		return b.Add(string(target), m)
	}
	if err := checkName(target); err != nil {
		return err
	}
	if len(target) > 255 {
		return fmt.Errorf("index entry %q: longer than 255 bytes", target)
	}
	if len(b.arena)+len(target) > 1<<32-1 {
		return fmt.Errorf("index entry %q: more than 4 GiB of names", target)
	}
	b.recs = append(b.recs, buildRec{off: uint32(len(b.arena)), n: uint32(len(target)), set: setOf(m)})
	b.arena = append(b.arena, target...)
	return nil
}

// AddException records a feed exception: the name (and its subdomains) is
// not in the categories m, whatever less specific entries say. Exceptions
// never remove categories that come from locked feeds.
func (b *IndexBuilder) AddException(name string, m Mask) {
	if b.exceptions == nil {
		b.exceptions = map[string]Mask{}
	}
	b.exceptions[name] |= m &^ flagBits
}

// Build compiles the entries into an Index. The builder must not be used
// afterwards.
func (b *IndexBuilder) Build() (*Index, error) {
	// The hosts of URL entries and the names of exceptions are records too,
	// so that one probe per level finds everything about a name.
	extra := func(n string, s entrySet) {
		if len(n) > 0 && len(n) <= 255 {
			b.recs = append(b.recs, buildRec{off: uint32(len(b.arena)), n: uint32(len(n)), set: s})
			b.arena = append(b.arena, n...)
		}
	}
	for host := range b.urls {
		extra(host, entrySet{flags: setURLs})
	}
	for n, m := range b.exceptions {
		extra(n, entrySet{cancel: m})
	}
	if len(b.arena) > 1<<32-1 {
		return nil, fmt.Errorf("index: %d bytes of names, more than 4 GiB", len(b.arena))
	}
	name := func(r buildRec) []byte { return b.arena[r.off : r.off+r.n] }
	slices.SortFunc(b.recs, func(p, q buildRec) int { return bytes.Compare(name(p), name(q)) })

	// Merge duplicates and pack the records in sorted order.
	x := &Index{hash: newNameHasher()}
	setIDs := map[entrySet]uint16{}
	n := 0
	size := 0
	for i := 0; i < len(b.recs); {
		r := b.recs[i]
		set := r.set
		j := i + 1
		for ; j < len(b.recs) && bytes.Equal(name(b.recs[j]), name(r)); j++ {
			set = set.or(b.recs[j].set)
		}
		b.recs[n] = buildRec{off: r.off, n: r.n, set: set}
		if set.flags&setDomain != 0 {
			x.domains++
		}
		size += 3 + int(r.n)
		n++
		i = j
	}
	if size > 1<<32-1 {
		return nil, fmt.Errorf("index: %d bytes of names, more than 4 GiB", size)
	}
	recs := b.recs[:n]
	packed := make([]byte, 0, size)
	if size > 0 {
		adviseHugePages(unsafe.Pointer(unsafe.SliceData(packed[:1])), uintptr(size), false)
	}
	offsets := make([]uint32, n)
	for i, r := range recs {
		id, ok := setIDs[r.set]
		if !ok {
			if len(x.sets) == 1<<16 {
				return nil, fmt.Errorf("index: more than %d distinct category combinations", 1<<16)
			}
			id = uint16(len(x.sets))
			setIDs[r.set] = id
			x.sets = append(x.sets, r.set)
		}
		offsets[i] = uint32(len(packed))
		packed = append(packed, byte(r.n), byte(id), byte(id>>8))
		packed = append(packed, name(r)...)
	}
	// The records are never written again: share the bytes rather than copy
	// a buffer that can be hundreds of megabytes.
	if len(packed) > 0 {
		x.records = unsafe.String(unsafe.SliceData(packed), len(packed))
	}
	packed = nil
	b.arena, b.recs = nil, nil

	// Groups of 8 slots, twice as many slots as names (a load of 0.5): a
	// probe for an absent name almost always ends in its home group.
	if n > 0 {
		groups := (n*2+7)/8 + 1
		x.tags = make([]uint64, groups)
		x.offs = make([]uint32, groups*8)
		adviseHugePages(unsafe.Pointer(unsafe.SliceData(x.tags)), uintptr(len(x.tags))*8, false)
		adviseHugePages(unsafe.Pointer(unsafe.SliceData(x.offs)), uintptr(len(x.offs))*4, false)
		for e := 0; e < n; e++ {
			off := offsets[e]
			g, tag := x.slot(x.hash.name(x.records[off+3 : off+3+uint32(x.records[off])]))
			for {
				t := x.tags[g]
				if empty := (t - lsb) &^ t & msb; empty != 0 {
					// The lowest flagged byte is always a truly empty slot.
					i := bits.TrailingZeros64(empty) >> 3
					x.tags[g] = t | tag<<(8*i)
					x.offs[g*8+i] = off
					break
				}
				g++
				if g == len(x.tags) {
					g = 0
				}
			}
		}
		adviseHugePages(unsafe.Pointer(unsafe.StringData(x.records)), uintptr(len(x.records)), true)
		adviseHugePages(unsafe.Pointer(unsafe.SliceData(x.tags)), uintptr(len(x.tags))*8, true)
		adviseHugePages(unsafe.Pointer(unsafe.SliceData(x.offs)), uintptr(len(x.offs))*4, true)
	}

	x.urls = make(map[string][]urlRule, len(b.urls))
	for host, paths := range b.urls {
		rules := make([]urlRule, 0, len(paths))
		for p, m := range paths {
			rules = append(rules, urlRule{prefix: p, set: m})
		}
		slices.SortFunc(rules, func(a, c urlRule) int {
			if d := len(c.prefix) - len(a.prefix); d != 0 {
				return d
			}
			return strings.Compare(a.prefix, c.prefix)
		})
		x.urls[host] = rules
		x.urlEntries += len(rules)
	}
	b.urls = nil
	return x, nil
}
