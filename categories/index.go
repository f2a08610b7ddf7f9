package categories

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
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
	Entry string // the matching domain, or the host part of a URL entry
	Path  string // the URL entry's path prefix; "" for a domain entry
	Mask  Mask   // the entry's categories and flags
}

// Classification is everything the Index knows about one target.
type Classification struct {
	Cats   Mask // union of the categories of every matching entry
	Locked Mask // the categories that came from locked feeds
	Hits   [maxHits]Hit
	NHits  int
}

// Index is an immutable, compact set of domain and URL-prefix entries with
// their categories. Domain entries live in one packed string with an
// open-addressing hash table over it, so a lookup costs one hash and
// usually one comparison, takes no lock and allocates nothing; at millions of
// entries the whole structure stays near 30 bytes per entry.
type Index struct {
	names string   // every domain entry, concatenated
	offs  []uint32 // entry i is names[offs[i]:offs[i+1]]
	sets  []uint16 // entry i's categories: masks[sets[i]]
	masks []Mask   // distinct category sets
	slots []uint32 // hash table of entry index+1; 0 is empty
	seed  maphash.Seed

	urls       map[string][]urlRule // host -> path prefixes, longest first
	urlEntries int
	exceptions map[string]Mask // feed exceptions ("@@" rules): name -> categories it is not in
}

type urlRule struct {
	prefix string
	mask   Mask
}

// Len returns the number of distinct entries (domains plus URL prefixes).
func (x *Index) Len() int { return len(x.sets) + x.urlEntries }

// Domains returns the number of distinct domain entries.
func (x *Index) Domains() int { return len(x.sets) }

// URLs returns the number of distinct URL-prefix entries.
func (x *Index) URLs() int { return x.urlEntries }

// lookup returns the categories of exactly this domain entry.
func (x *Index) lookup(name string) (Mask, bool) {
	if len(x.slots) == 0 {
		return 0, false
	}
	i := reduce(maphash.String(x.seed, name), len(x.slots))
	for {
		e := x.slots[i]
		if e == 0 {
			return 0, false
		}
		e--
		if x.names[x.offs[e]:x.offs[e+1]] == name {
			return x.masks[x.sets[e]], true
		}
		i++
		if i == len(x.slots) {
			i = 0
		}
	}
}

// reduce maps a hash onto [0, n) without a division (Lemire's fast range).
func reduce(h uint64, n int) int {
	return int((h >> 32) * uint64(n) >> 32)
}

// Classify returns the categories of a canonical host (see NormalizeHost)
// and, when path is not empty, of the URL entries under that host. A domain
// entry matches itself and every subdomain, so the host is looked up at every
// level from the full name up to its top-level label; IP addresses match
// only exactly. Matches at several levels give the union of their categories.
func (x *Index) Classify(host, path string) Classification {
	var c Classification
	var cancelled Mask // categories an exception removed from less specific levels
	ip := isIPLiteral(host)
	for i := 0; ; {
		name := host[i:]
		if len(x.exceptions) > 0 {
			if m, ok := x.exceptions[name]; ok {
				cancelled |= m
			}
		}
		if path != "" && len(x.urls) > 0 {
			if rules, ok := x.urls[name]; ok {
				for _, r := range rules {
					if pathHasPrefix(path, r.prefix) {
						c.add(Hit{Entry: name, Path: r.prefix, Mask: r.mask}, cancelled)
						break // rules are longest first: the first is the most specific
					}
				}
			}
		}
		if m, ok := x.lookup(name); ok {
			c.add(Hit{Entry: name, Mask: m}, cancelled)
		}
		if ip {
			break
		}
		j := strings.IndexByte(name, '.')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return c
}

func (c *Classification) add(h Hit, cancelled Mask) {
	if h.Mask&FlagLocked != 0 {
		c.Locked |= h.Mask &^ flagBits
	} else {
		h.Mask &^= cancelled
	}
	c.Cats |= h.Mask &^ flagBits
	if c.NHits < maxHits {
		c.Hits[c.NHits] = h
		c.NHits++
	}
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
	if strings.IndexByte(host, ':') >= 0 {
		return true
	}
	last := host[strings.LastIndexByte(host, '.')+1:]
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
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
	urls       map[string]map[string]Mask
	exceptions map[string]Mask
}

type buildRec struct {
	off  uint32
	n    uint32
	mask Mask
}

// NewIndexBuilder returns an empty builder; sizeHint is the expected number
// of entries (0 if unknown).
func NewIndexBuilder(sizeHint int) *IndexBuilder {
	return &IndexBuilder{
		arena: make([]byte, 0, sizeHint*20),
		recs:  make([]buildRec, 0, sizeHint),
		urls:  map[string]map[string]Mask{},
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
			p = map[string]Mask{}
			b.urls[host] = p
		}
		p[path] |= m
		return nil
	}
	if len(b.arena)+len(target) > 1<<32-1 {
		return fmt.Errorf("index entry %q: more than 4 GiB of names", target)
	}
	b.recs = append(b.recs, buildRec{off: uint32(len(b.arena)), n: uint32(len(target)), mask: m})
	b.arena = append(b.arena, target...)
	return nil
}

// AddBytes is Add for a name read from storage; it copies the bytes, so
// loading millions of entries does not allocate a string for each.
func (b *IndexBuilder) AddBytes(target []byte, m Mask) error {
	if bytes.IndexByte(target, '/') >= 0 || len(target) == 0 {
		return b.Add(string(target), m)
	}
	if len(b.arena)+len(target) > 1<<32-1 {
		return fmt.Errorf("index entry %q: more than 4 GiB of names", target)
	}
	b.recs = append(b.recs, buildRec{off: uint32(len(b.arena)), n: uint32(len(target)), mask: m})
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

	// Merge duplicates and pack the names in sorted order.
	x := &Index{seed: maphash.MakeSeed(), exceptions: b.exceptions}
	var packed strings.Builder
	packed.Grow(len(b.arena))
	setIDs := map[Mask]uint16{}
	n := 0
	for i := 0; i < len(b.recs); {
		r := b.recs[i]
		m := r.mask
		j := i + 1
		for ; j < len(b.recs) && bytes.Equal(name(b.recs[j]), name(r)); j++ {
			m |= b.recs[j].mask
		}
		b.recs[n] = buildRec{off: r.off, n: r.n, mask: m}
		n++
		i = j
	}
	recs := b.recs[:n]
	x.offs = make([]uint32, 0, n+1)
	x.sets = make([]uint16, n)
	for i, r := range recs {
		x.offs = append(x.offs, uint32(packed.Len()))
		packed.Write(name(r))
		id, ok := setIDs[r.mask]
		if !ok {
			if len(x.masks) == 1<<16 {
				return nil, fmt.Errorf("index: more than %d distinct category combinations", 1<<16)
			}
			id = uint16(len(x.masks))
			setIDs[r.mask] = id
			x.masks = append(x.masks, r.mask)
		}
		x.sets[i] = id
	}
	x.offs = append(x.offs, uint32(packed.Len()))
	x.names = packed.String()
	b.arena, b.recs = nil, nil

	// Load factor 0.75: short probe sequences for a third more table.
	if n > 0 {
		x.slots = make([]uint32, n+n/3+1)
		for e := 0; e < n; e++ {
			i := reduce(maphash.String(x.seed, x.names[x.offs[e]:x.offs[e+1]]), len(x.slots))
			for x.slots[i] != 0 {
				i++
				if i == len(x.slots) {
					i = 0
				}
			}
			x.slots[i] = uint32(e + 1)
		}
	}

	x.urls = make(map[string][]urlRule, len(b.urls))
	for host, paths := range b.urls {
		rules := make([]urlRule, 0, len(paths))
		for p, m := range paths {
			rules = append(rules, urlRule{prefix: p, mask: m})
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
