package categories

import (
	"bytes"
	"fmt"
	"hash/maphash"
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

// entrySet is the categories of one entry and which of them came from a
// locked feed. Keeping both means that a name listed by a locked feed in one
// category and by an ordinary feed in another locks only the first.
type entrySet struct {
	cats, locked Mask
}

// setOf reads a Mask as given to IndexBuilder.Add: FlagLocked locks all of
// its categories.
func setOf(m Mask) entrySet {
	s := entrySet{cats: m &^ flagBits}
	if m&FlagLocked != 0 {
		s.locked = s.cats
	}
	return s
}

// mask encodes the set the way Add takes it (FlagLocked when any category is
// locked).
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
// their categories. Domain entries are records in one packed string (length,
// category-set number, name); a hash table of 8-slot groups holds each
// record's offset, with an 8-bit tag of its hash kept apart in a dense array
// (a byte per slot, small enough to stay in cache where the offsets and
// records cannot). A lookup of a name that is not listed, most of them, reads
// one tag word; a listed name also reads its offset and record. It takes no
// lock and allocates nothing.
type Index struct {
	records string     // per entry: len byte, set number (2 bytes, little endian), name
	tags    []uint64   // hash table, 8 slots a word: one tag byte per slot, 0 = empty
	offs    []uint32   // the record offset of each slot, 8 per tag word
	sets    []entrySet // distinct category sets, by set number
	seed    maphash.Seed
	domains int

	urls       map[string][]urlRule // host -> path prefixes, longest first
	urlEntries int
	exceptions map[string]Mask // feed exceptions ("@@" rules): name -> categories it is not in
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

// hashSlot splits a name's hash into its home group and its tag (never 0,
// which marks an empty slot).
func (x *Index) hashSlot(name string) (group int, tag uint64) {
	h := maphash.String(x.seed, name)
	tag = h & 0xff
	if tag == 0 {
		tag = 1
	}
	return reduce(h, len(x.tags)), tag
}

// lookup returns the categories of exactly this domain entry, encoded as
// Add takes them.
func (x *Index) lookup(name string) (Mask, bool) {
	if len(x.tags) == 0 {
		return 0, false
	}
	g, tag := x.hashSlot(name)
	s, ok := x.probe(g, tag, name)
	return s.mask(), ok
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

// reduce maps a hash onto [0, n) without a division (Lemire's fast range).
func reduce(h uint64, n int) int {
	return int((h >> 32) * uint64(n) >> 32)
}

// window is how many levels Classify looks up together.
const window = 8

// Classify returns the categories of a canonical host (see NormalizeHost)
// and, when path is not empty, of the URL entries under that host, with the
// entries that matched. A domain entry matches itself and every subdomain, so
// the host is looked up at every level from the full name up to its parent
// below the top-level label (single-label entries are refused when the index
// is built); IP addresses match only exactly. Matches at several levels give
// the union of their categories.
func (x *Index) Classify(host, path string) Classification {
	var c Classification
	c.Cats, c.Locked = x.classify(host, path, &c)
	return c
}

// classify is Classify for the hot path: with hits nil it records no
// entries and touches nothing but the index.
func (x *Index) classify(host, path string, hits *Classification) (cats, locked Mask) {
	var cancelled Mask // categories an exception removed from less specific levels
	if host == "" {
		return 0, 0
	}
	ip := isIPLiteral(host)
	// Up to a window of levels at a time: their hash-table groups are read
	// in one pass of independent loads, so the cache misses overlap instead
	// of queueing one behind another.
	var starts [window]uint8 // canonical hosts are at most 253 bytes
	var homes [window]int32
	var tags [window]uint8
	var pre [window]uint64
	next := 0 // where the next level starts; -1 when there is none
	for next >= 0 {
		n := 0
		for n < window && next >= 0 {
			j := next
			for j < len(host) && host[j] != '.' {
				j++
			}
			starts[n] = uint8(next)
			switch {
			case ip || (j == len(host) && next == 0):
				// An IP address is one level; so is a single-label host,
				// which only URL entries (an intranet path) can match.
				n++
				next = -1
			case j == len(host):
				next = -1 // the top-level label alone is never an entry
			default:
				n++
				next = j + 1
			}
		}
		if len(x.tags) > 0 {
			for k := 0; k < n; k++ {
				g, tag := x.hashSlot(host[starts[k]:])
				homes[k], tags[k] = int32(g), uint8(tag)
				pre[k] = x.tags[g]
			}
		}
		for k := 0; k < n; k++ {
			name := host[starts[k]:]
			if len(x.exceptions) > 0 {
				if m, ok := x.exceptions[name]; ok {
					cancelled |= m
				}
			}
			if path != "" && len(x.urls) > 0 {
				if rules, ok := x.urls[name]; ok {
					// Every matching prefix counts (a listing of /adult is not
					// hidden by one of /adult/games); longest first, so the
					// most specific is recorded first.
					for _, r := range rules {
						if pathHasPrefix(path, r.prefix) {
							cats, locked = hits.add(cats, locked, name, r.prefix, r.set, cancelled)
						}
					}
				}
			}
			if len(x.tags) == 0 {
				continue
			}
			// No tag match in a home group that still has an empty slot:
			// the name is certainly absent, without another memory access.
			tag := uint64(tags[k])
			v := pre[k] ^ (tag * lsb)
			if (v-lsb)&^v&msb == 0 && (pre[k]-lsb)&^pre[k]&msb != 0 {
				continue
			}
			if set, ok := x.probe(int(homes[k]), tag, name); ok {
				cats, locked = hits.add(cats, locked, name, "", set, cancelled)
			}
		}
	}
	return cats, locked
}

// add folds a matching entry into the running sets and, when c is not nil,
// records it. Exceptions cancel only categories not from a locked feed.
func (c *Classification) add(cats, locked Mask, entry, path string, s entrySet, cancelled Mask) (Mask, Mask) {
	s.cats &^= cancelled &^ s.locked
	if c != nil && c.NHits < maxHits {
		c.Hits[c.NHits] = Hit{Entry: entry, Path: path, Mask: s.mask(), Locked: s.locked}
		c.NHits++
	}
	return cats | s.cats, locked | s.locked
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
	name := func(r buildRec) []byte { return b.arena[r.off : r.off+r.n] }
	slices.SortFunc(b.recs, func(p, q buildRec) int { return bytes.Compare(name(p), name(q)) })

	// Merge duplicates and pack the records in sorted order.
	x := &Index{seed: maphash.MakeSeed(), exceptions: b.exceptions}
	setIDs := map[entrySet]uint16{}
	n := 0
	size := 0
	for i := 0; i < len(b.recs); {
		r := b.recs[i]
		set := r.set
		j := i + 1
		for ; j < len(b.recs) && bytes.Equal(name(b.recs[j]), name(r)); j++ {
			set.cats |= b.recs[j].set.cats
			set.locked |= b.recs[j].set.locked
		}
		b.recs[n] = buildRec{off: r.off, n: r.n, set: set}
		size += 3 + int(r.n)
		n++
		i = j
	}
	if size > 1<<32-1 {
		return nil, fmt.Errorf("index: %d bytes of names, more than 4 GiB", size)
	}
	recs := b.recs[:n]
	x.domains = n
	packed := make([]byte, 0, size)
	if size > 0 {
		adviseHugePages(unsafe.Pointer(unsafe.SliceData(packed[:1])), uintptr(size))
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

	// Groups of 8 slots at a load of about 0.8: most probes end in the home group.
	if n > 0 {
		groups := (n*2+7)/8 + 1
		x.tags = make([]uint64, groups)
		x.offs = make([]uint32, groups*8)
		adviseHugePages(unsafe.Pointer(unsafe.SliceData(x.tags)), uintptr(len(x.tags))*8)
		adviseHugePages(unsafe.Pointer(unsafe.SliceData(x.offs)), uintptr(len(x.offs))*4)
		for e := 0; e < n; e++ {
			off := offsets[e]
			g, tag := x.hashSlot(x.records[off+3 : off+3+uint32(x.records[off])])
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
