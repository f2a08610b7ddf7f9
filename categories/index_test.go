package categories

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// testTax is the taxonomy every test in this package builds masks and
// snapshots against.
var testTax = Builtin()

// catMask turns slugs into a Mask, failing the test on an unknown slug.
func catMask(tb testing.TB, slugs ...string) Mask {
	tb.Helper()
	m, err := testTax.MaskOf(slugs...)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// ixEntry is one entry for buildTestIndex: a target, its categories and
// whether it comes from a locked feed.
type ixEntry struct {
	target string
	cats   []string
	locked bool
}

// ixException is one AddException call.
type ixException struct {
	name string
	cats []string
}

func buildTestIndex(tb testing.TB, entries []ixEntry, exceptions ...ixException) *Index {
	tb.Helper()
	b := NewIndexBuilder(len(entries))
	for _, e := range entries {
		m := catMask(tb, e.cats...)
		if e.locked {
			m |= FlagLocked
		}
		if err := b.Add(e.target, m); err != nil {
			tb.Fatalf("Add(%q): %v", e.target, err)
		}
	}
	for _, x := range exceptions {
		b.AddException(x.name, catMask(tb, x.cats...))
	}
	idx, err := b.Build()
	if err != nil {
		tb.Fatalf("Build: %v", err)
	}
	return idx
}

// slugsOf renders a mask for failure messages.
func slugsOf(m Mask) string {
	s := strings.Join(testTax.Slugs(m&^flagBits), ",")
	if m&FlagLocked != 0 {
		s += "+locked"
	}
	if s == "" {
		return "(none)"
	}
	return s
}

// ixQuery is one Classify call and the categories it must give.
type ixQuery struct {
	host, path string
	want       []string
}

func checkClassify(t *testing.T, idx *Index, queries []ixQuery) {
	t.Helper()
	for _, q := range queries {
		got := idx.Classify(q.host, q.path)
		if want := catMask(t, q.want...); got.Cats != want {
			t.Errorf("Classify(%q, %q).Cats = %s, want %s", q.host, q.path, slugsOf(got.Cats), slugsOf(want))
		}
	}
}

func TestIndexDomainMatching(t *testing.T) {
	idx := buildTestIndex(t, []ixEntry{
		{target: "example.com", cats: []string{"adult"}},
		{target: "a.sibling.org", cats: []string{"games"}},
		{target: "co.uk.example.net", cats: []string{"chat"}},
	})
	checkClassify(t, idx, []ixQuery{
		// Itself and every subdomain.
		{host: "example.com", want: []string{"adult"}},
		{host: "www.example.com", want: []string{"adult"}},
		{host: "a.b.c.d.example.com", want: []string{"adult"}},
		{host: "-.example.com", want: []string{"adult"}},
		// Names that merely end with the same letters.
		{host: "notexample.com"},
		{host: "xample.com"},
		{host: "www.notexample.com"},
		{host: "example-com"},
		{host: "wwwexample.com"},
		// The entry as a label in the middle, or a parent of it.
		{host: "example.com.evil.net"},
		{host: "example.com.co.uk"},
		{host: "com"},
		{host: "example.co"},
		{host: "example.comm"},
		// Siblings and the parent of an entry do not match.
		{host: "a.sibling.org", want: []string{"games"}},
		{host: "x.a.sibling.org", want: []string{"games"}},
		{host: "b.sibling.org"},
		{host: "sibling.org"},
		{host: "aa.sibling.org"},
		{host: "ba.sibling.org"},
		// A multi-label entry is matched as a whole.
		{host: "x.co.uk.example.net", want: []string{"chat"}},
		{host: "co.uk"},
		{host: "example.net"},
		// Degenerate input never matches or panics.
		{host: ""},
		{host: "."},
		{host: ".."},
		{host: "example.com."},
	})
}

func TestIndexUnionAcrossLevels(t *testing.T) {
	idx := buildTestIndex(t, []ixEntry{
		{target: "example.com", cats: []string{"games"}},
		{target: "www.example.com", cats: []string{"social-networks"}},
		{target: "x.www.example.com", cats: []string{"adult", "chat"}},
		{target: "co.uk", cats: []string{"shopping"}},
		{target: "example.co.uk", cats: []string{"games"}},
	})
	checkClassify(t, idx, []ixQuery{
		{host: "com"},
		{host: "other.com"},
		{host: "example.com", want: []string{"games"}},
		{host: "www.example.com", want: []string{"games", "social-networks"}},
		{host: "y.www.example.com", want: []string{"games", "social-networks"}},
		{host: "x.www.example.com", want: []string{"games", "social-networks", "adult", "chat"}},
		{host: "deep.x.www.example.com", want: []string{"games", "social-networks", "adult", "chat"}},
		{host: "x.example.com", want: []string{"games"}},
		{host: "co.uk", want: []string{"shopping"}},
		{host: "www.example.co.uk", want: []string{"games", "shopping"}},
		{host: "uk"},
	})

	// Hits are recorded from the most specific level up.
	c := idx.Classify("deep.x.www.example.com", "")
	wantHits := []string{"x.www.example.com", "www.example.com", "example.com"}
	if c.NHits != len(wantHits) {
		t.Fatalf("NHits = %d, want %d (%+v)", c.NHits, len(wantHits), c.Hits[:c.NHits])
	}
	for i, w := range wantHits {
		if h := c.Hits[i]; h.Entry != w || h.Path != "" {
			t.Errorf("Hits[%d] = %q %q, want %q", i, h.Entry, h.Path, w)
		}
	}
	if c.Hits[0].Mask != catMask(t, "adult", "chat") {
		t.Errorf("Hits[0].Mask = %s, want adult,chat", slugsOf(c.Hits[0].Mask))
	}
	if c.Locked != 0 {
		t.Errorf("Locked = %s, want none", slugsOf(c.Locked))
	}
}

func TestIndexHitsBounded(t *testing.T) {
	// More matching levels than maxHits: every category still counts.
	var entries []ixEntry
	host := "l0.tld"
	cats := []string{"games", "chat", "dating", "shopping", "webmail", "forums", "ai", "mature", "advertising", "adult"}
	for i, c := range cats {
		if i > 0 {
			host = fmt.Sprintf("l%d.%s", i, host)
		}
		entries = append(entries, ixEntry{target: host, cats: []string{c}})
	}
	idx := buildTestIndex(t, entries)
	c := idx.Classify("leaf."+host, "")
	if want := catMask(t, cats...); c.Cats != want {
		t.Errorf("Cats = %s, want %s", slugsOf(c.Cats), slugsOf(want))
	}
	if c.NHits != maxHits {
		t.Errorf("NHits = %d, want %d", c.NHits, maxHits)
	}
	if c.Hits[0].Entry != host {
		t.Errorf("Hits[0] = %q, want the most specific entry %q", c.Hits[0].Entry, host)
	}
}

func TestIndexURLEntries(t *testing.T) {
	idx := buildTestIndex(t, []ixEntry{
		{target: "example.com/bar", cats: []string{"adult"}},
		{target: "root.example/", cats: []string{"games"}},
		{target: "dir.example/docs/", cats: []string{"chat"}},
		{target: "1.2.3.4/x", cats: []string{"malware"}},
		{target: "2001:db8::1/y", cats: []string{"malware"}},
		{target: "multi.example/a", cats: []string{"dating"}},
		{target: "multi.example/b/c", cats: []string{"forums"}},
	})
	checkClassify(t, idx, []ixQuery{
		// Path-segment boundaries.
		{host: "example.com", path: "/bar", want: []string{"adult"}},
		{host: "example.com", path: "/bar/", want: []string{"adult"}},
		{host: "example.com", path: "/bar/x", want: []string{"adult"}},
		{host: "example.com", path: "/bar/x/y.html", want: []string{"adult"}},
		{host: "example.com", path: "/barbara"},
		{host: "example.com", path: "/bar.html"},
		{host: "example.com", path: "/ba"},
		{host: "example.com", path: "/"},
		{host: "example.com", path: "/foo/bar"},
		{host: "example.com", path: "/BAR"},
		// The host's subdomains, never its parent, siblings or look-alikes.
		{host: "www.example.com", path: "/bar", want: []string{"adult"}},
		{host: "a.b.example.com", path: "/bar/x", want: []string{"adult"}},
		{host: "notexample.com", path: "/bar"},
		{host: "com", path: "/bar"},
		{host: "example.com.evil.net", path: "/bar"},
		// Without a path (DNS), a URL entry is never seen: it must not
		// become a whole-domain block.
		{host: "example.com", path: ""},
		{host: "www.example.com", path: ""},
		{host: "root.example", path: ""},
		// A "/" prefix covers every path.
		{host: "root.example", path: "/", want: []string{"games"}},
		{host: "root.example", path: "/anything/at/all", want: []string{"games"}},
		{host: "sub.root.example", path: "/x", want: []string{"games"}},
		// A prefix ending in '/' covers what is below it.
		{host: "dir.example", path: "/docs/", want: []string{"chat"}},
		{host: "dir.example", path: "/docs/a", want: []string{"chat"}},
		{host: "dir.example", path: "/docsx"},
		// IP hosts: exact host only.
		{host: "1.2.3.4", path: "/x", want: []string{"malware"}},
		{host: "1.2.3.4", path: "/x/y", want: []string{"malware"}},
		{host: "1.2.3.4", path: "/xy"},
		{host: "1.2.3.4", path: ""},
		{host: "5.1.2.3.4", path: "/x"},
		{host: "2001:db8::1", path: "/y", want: []string{"malware"}},
		{host: "2001:db8::1", path: "/z"},
		// Several prefixes under one host.
		{host: "multi.example", path: "/a", want: []string{"dating"}},
		{host: "multi.example", path: "/a/b/c", want: []string{"dating"}},
		{host: "multi.example", path: "/b", want: []string{}},
		{host: "multi.example", path: "/b/c/d", want: []string{"forums"}},
		{host: "multi.example", path: "/b/cd"},
	})

	c := idx.Classify("www.example.com", "/bar/x")
	if c.NHits != 1 || c.Hits[0].Entry != "example.com" || c.Hits[0].Path != "/bar" {
		t.Errorf("hit = %+v, want example.com /bar", c.Hits[:c.NHits])
	}
	if idx.Domains() != 0 {
		t.Errorf("Domains() = %d, want 0: URL entries are not domain entries", idx.Domains())
	}
}

// A URL prefix entry covers everything below it, whatever more specific
// entries under it say: "example.com/a" listed as adult keeps
// "example.com/a/b/c" adult even when "example.com/a/b" is also listed as
// games, exactly as domain entries at several levels give the union.
func TestIndexURLPrefixesUnion(t *testing.T) {
	idx := buildTestIndex(t, []ixEntry{
		{target: "example.com/a", cats: []string{"adult"}},
		{target: "example.com/a/b", cats: []string{"games"}},
		{target: "example.com/", cats: []string{"advertising"}},
		{target: "example.com", cats: []string{"shopping"}},
	})
	checkClassify(t, idx, []ixQuery{
		{host: "example.com", path: "/", want: []string{"advertising", "shopping"}},
		{host: "example.com", path: "/a", want: []string{"adult", "advertising", "shopping"}},
		{host: "example.com", path: "/a/b/c", want: []string{"adult", "games", "advertising", "shopping"}},
		{host: "www.example.com", path: "/a/b", want: []string{"adult", "games", "advertising", "shopping"}},
	})
}

// The URL entries of several levels add up, together with the domain entries.
func TestIndexURLAndDomainLevels(t *testing.T) {
	idx := buildTestIndex(t, []ixEntry{
		{target: "www.example.com/x", cats: []string{"games"}},
		{target: "example.com/x", cats: []string{"chat"}},
		{target: "example.com", cats: []string{"shopping"}},
	})
	checkClassify(t, idx, []ixQuery{
		{host: "www.example.com", path: "/x", want: []string{"games", "chat", "shopping"}},
		{host: "www.example.com", path: "/y", want: []string{"shopping"}},
		{host: "www.example.com", path: "", want: []string{"shopping"}},
		{host: "example.com", path: "/x", want: []string{"chat", "shopping"}},
	})
	// A URL hit comes before the domain hit of the same level.
	c := idx.Classify("www.example.com", "/x")
	var got []string
	for _, h := range c.Hits[:c.NHits] {
		got = append(got, h.Entry+h.Path)
	}
	if want := "www.example.com/x example.com/x example.com"; strings.Join(got, " ") != want {
		t.Errorf("hits = %q, want %q", strings.Join(got, " "), want)
	}
}

func TestIndexIPEntries(t *testing.T) {
	idx := buildTestIndex(t, []ixEntry{
		{target: "1.2.3.4", cats: []string{"malware"}},
		{target: "2.3.4", cats: []string{"adult"}}, // not canonical; shows there is no label walk for IPs
		{target: "2001:db8::1", cats: []string{"circumvention"}},
		{target: "b.example", cats: []string{"games"}},
	})
	checkClassify(t, idx, []ixQuery{
		{host: "1.2.3.4", want: []string{"malware"}},
		{host: "5.1.2.3.4"},
		{host: "11.2.3.4"},
		{host: "1.2.3.45"},
		{host: "1.2.3.5"},
		{host: "9.2.3.4"},
		{host: "2001:db8::1", want: []string{"circumvention"}},
		{host: "2001:db8::2"},
		{host: "1:2001:db8::1"},
		{host: "::1"},
		// A name that ends in letters is a name: digits in front still walk.
		{host: "1.2.b.example", want: []string{"games"}},
	})
	for _, h := range []string{"1.2.3.4", "10.0.0.1", "2001:db8::1", "::ffff:1.2.3.4", "5.1.2.3.4"} {
		if !isIPLiteral(h) {
			t.Errorf("isIPLiteral(%q) = false, want true", h)
		}
	}
	for _, h := range []string{"", "example.com", "1.2.3.example", "1password.com", "example.1a", "a1"} {
		if isIPLiteral(h) {
			t.Errorf("isIPLiteral(%q) = true, want false", h)
		}
	}
}

func TestIndexDuplicatesMerged(t *testing.T) {
	b := NewIndexBuilder(0)
	add := func(target string, slugs ...string) {
		t.Helper()
		if err := b.Add(target, catMask(t, slugs...)); err != nil {
			t.Fatal(err)
		}
	}
	add("example.com", "adult")
	add("other.com", "games")
	add("example.com", "games")
	if err := b.AddBytes([]byte("example.com"), catMask(t, "gambling")); err != nil {
		t.Fatal(err)
	}
	add("example.com", "adult") // same again
	add("example.com/x", "chat")
	add("example.com/x", "dating")
	if err := b.AddBytes([]byte("example.com/x"), catMask(t, "forums")); err != nil {
		t.Fatal(err)
	}
	add("example.com/y", "chat")
	idx, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if idx.Domains() != 2 || idx.URLs() != 2 || idx.Len() != 4 {
		t.Errorf("Domains, URLs, Len = %d, %d, %d; want 2, 2, 4", idx.Domains(), idx.URLs(), idx.Len())
	}
	checkClassify(t, idx, []ixQuery{
		{host: "example.com", want: []string{"adult", "games", "gambling"}},
		{host: "other.com", want: []string{"games"}},
		{host: "example.com", path: "/x", want: []string{"adult", "games", "gambling", "chat", "dating", "forums"}},
	})
	if c := idx.Classify("example.com", ""); c.NHits != 1 {
		t.Errorf("NHits = %d, want 1 (one merged entry)", c.NHits)
	}
}

func TestIndexExceptions(t *testing.T) {
	idx := buildTestIndex(t,
		[]ixEntry{
			{target: "example.com", cats: []string{"adult", "games"}},
			{target: "deep.edu.example.com", cats: []string{"games"}},
			{target: "locked.net", cats: []string{"adult", "games"}, locked: true},
			{target: "mixed.org", cats: []string{"games"}},
			{target: "mixed.org", cats: []string{"chat"}},
			{target: "mixed.co.uk", cats: []string{"games"}},
			{target: "mixed.co.uk", cats: []string{"chat"}},
			{target: "co.uk", cats: []string{"shopping"}},
			{target: "example.com/path", cats: []string{"games"}},
			{target: "sub.edu.example.com/p", cats: []string{"games"}},
		},
		ixException{name: "edu.example.com", cats: []string{"games"}},
		ixException{name: "safe.locked.net", cats: []string{"adult", "games"}},
		ixException{name: "kids.mixed.co.uk", cats: []string{"games", "shopping"}},
		ixException{name: "unlisted.example", cats: []string{"adult"}},
	)
	checkClassify(t, idx, []ixQuery{
		// Less specific entries lose the excepted categories, for the
		// excepted name and its subdomains.
		{host: "edu.example.com", want: []string{"adult"}},
		{host: "a.edu.example.com", want: []string{"adult"}},
		// Other names keep them.
		{host: "example.com", want: []string{"adult", "games"}},
		{host: "www.example.com", want: []string{"adult", "games"}},
		{host: "xedu.example.com", want: []string{"adult", "games"}},
		// A more specific entry below the exception keeps its categories.
		{host: "deep.edu.example.com", want: []string{"adult", "games"}},
		{host: "x.deep.edu.example.com", want: []string{"adult", "games"}},
		// Locked entries cannot be excepted.
		{host: "safe.locked.net", want: []string{"adult", "games"}},
		{host: "www.safe.locked.net", want: []string{"adult", "games"}},
		// Exceptions work across merged entries and several levels.
		{host: "kids.mixed.co.uk", want: []string{"chat"}},
		{host: "mixed.co.uk", want: []string{"games", "chat", "shopping"}},
		{host: "kids.mixed.org", want: []string{"games", "chat"}},
		// URL entries above the exception are excepted too; those below are not.
		{host: "edu.example.com", path: "/path", want: []string{"adult"}},
		{host: "edu.example.com", path: "/other", want: []string{"adult"}},
		{host: "sub.edu.example.com", path: "/p", want: []string{"adult", "games"}},
		{host: "x.sub.edu.example.com", path: "/p/q", want: []string{"adult", "games"}},
		{host: "example.com", path: "/path", want: []string{"adult", "games"}},
		// An exception alone adds nothing.
		{host: "unlisted.example"},
	})
	if c := idx.Classify("safe.locked.net", ""); c.Locked != catMask(t, "adult", "games") {
		t.Errorf("Locked = %s, want adult,games", slugsOf(c.Locked))
	}
	// The recorded hit shows what is left of the entry after the exception.
	if c := idx.Classify("edu.example.com", ""); c.NHits != 1 || c.Hits[0].Mask != catMask(t, "adult") {
		t.Errorf("hits = %+v, want example.com with adult only", c.Hits[:c.NHits])
	}
	// Exceptions never carry flags.
	b := NewIndexBuilder(0)
	_ = b.Add("x.com", catMask(t, "games"))
	b.AddException("x.com", catMask(t, "games")|FlagLocked)
	x, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := x.find("x.com"); s.cancel != catMask(t, "games") {
		t.Errorf("exception mask = %s, want games without flags", slugsOf(s.cancel))
	}
}

func TestIndexLocked(t *testing.T) {
	idx := buildTestIndex(t, []ixEntry{
		{target: "iwf.example", cats: []string{"child-abuse"}, locked: true},
		{target: "www.iwf.example", cats: []string{"games"}},
		{target: "ho.example/page", cats: []string{"terrorism"}, locked: true},
		{target: "plain.example", cats: []string{"adult"}},
	})
	tests := []struct {
		host, path string
		cats       []string
		locked     []string
	}{
		{host: "iwf.example", cats: []string{"child-abuse"}, locked: []string{"child-abuse"}},
		{host: "www.iwf.example", cats: []string{"child-abuse", "games"}, locked: []string{"child-abuse"}},
		{host: "ho.example", path: "/page/1", cats: []string{"terrorism"}, locked: []string{"terrorism"}},
		{host: "ho.example", path: "/other"},
		{host: "ho.example"},
		{host: "plain.example", cats: []string{"adult"}},
	}
	for _, tt := range tests {
		c := idx.Classify(tt.host, tt.path)
		if want := catMask(t, tt.cats...); c.Cats != want {
			t.Errorf("Classify(%q, %q).Cats = %s, want %s", tt.host, tt.path, slugsOf(c.Cats), slugsOf(want))
		}
		if want := catMask(t, tt.locked...); c.Locked != want {
			t.Errorf("Classify(%q, %q).Locked = %s, want %s", tt.host, tt.path, slugsOf(c.Locked), slugsOf(want))
		}
		if c.Cats&flagBits != 0 || c.Locked&flagBits != 0 {
			t.Errorf("Classify(%q, %q): flag bits leak into Cats/Locked", tt.host, tt.path)
		}
	}
	// The hit keeps the flag, so Decide can tell where it came from.
	if c := idx.Classify("iwf.example", ""); c.NHits != 1 || c.Hits[0].Mask&FlagLocked == 0 {
		t.Errorf("hits = %+v, want one locked hit", c.Hits[:c.NHits])
	}
}

// FlagLocked marks the categories that come from a locked feed. When the same
// name also comes from an ordinary feed, merging the duplicates must not make
// the ordinary feed's categories locked too (they would then escape every
// override and every exception).
func TestIndexLockDoesNotSpreadOnMerge(t *testing.T) {
	idx := buildTestIndex(t,
		[]ixEntry{
			{target: "both.example", cats: []string{"adult"}, locked: true},
			{target: "both.example", cats: []string{"games"}},
		},
		ixException{name: "edu.both.example", cats: []string{"games"}},
	)
	c := idx.Classify("both.example", "")
	if want := catMask(t, "adult", "games"); c.Cats != want {
		t.Errorf("Cats = %s, want %s", slugsOf(c.Cats), slugsOf(want))
	}
	if want := catMask(t, "adult"); c.Locked != want {
		t.Errorf("Locked = %s, want %s: games came from an unlocked feed", slugsOf(c.Locked), slugsOf(want))
	}
	if c := idx.Classify("edu.both.example", ""); c.Cats != catMask(t, "adult") {
		t.Errorf("edu.both.example Cats = %s, want adult: the exception should remove the unlocked games", slugsOf(c.Cats))
	}
}

func TestIndexAddErrors(t *testing.T) {
	b := NewIndexBuilder(0)
	for _, target := range []string{"", "/path", "/"} {
		if err := b.Add(target, 1); err == nil {
			t.Errorf("Add(%q) = nil, want an error", target)
		}
		if err := b.AddBytes([]byte(target), 1); err == nil {
			t.Errorf("AddBytes(%q) = nil, want an error", target)
		}
	}
	if err := b.AddBytes(nil, 1); err == nil {
		t.Error("AddBytes(nil) = nil, want an error")
	}
	if err := b.Add("/path", 1); err == nil || !strings.Contains(err.Error(), `"/path"`) {
		t.Errorf("Add(/path) error %v should quote the entry", err)
	}
	idx, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if idx.Len() != 0 {
		t.Errorf("failed Adds left %d entries", idx.Len())
	}
}

// A single label (a top-level domain such as "zip") is never looked up by
// the label walk, so the builder refuses it as a domain entry rather than
// keeping an entry that can never match.
func TestIndexSingleLabelEntries(t *testing.T) {
	for _, target := range []string{"zip", "com", "localhost"} {
		b := NewIndexBuilder(0)
		err := b.Add(target, catMask(t, "malware"))
		errB := b.AddBytes([]byte(target), catMask(t, "malware"))
		if err == nil || errB == nil {
			t.Errorf("Add(%q), AddBytes(%q) = %v, %v; want errors", target, target, err, errB)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", target)) {
			t.Errorf("Add(%q) error %q does not quote the entry", target, err)
		}
		idx, berr := b.Build()
		if berr != nil {
			t.Fatal(berr)
		}
		checkClassify(t, idx, []ixQuery{{host: target}, {host: "download." + target}})
	}
}

// A URL entry is only useful if Classify can see it: one whose host is a
// single label ("http://intranet/admin", a common school name) must either be
// refused by Add or match requests to that host.
func TestIndexSingleLabelURLEntries(t *testing.T) {
	b := NewIndexBuilder(0)
	err := b.Add("intranet/admin", catMask(t, "remote-access"))
	idx, berr := b.Build()
	if berr != nil {
		t.Fatal(berr)
	}
	if err != nil {
		return // refused: fine
	}
	checkClassify(t, idx, []ixQuery{
		{host: "intranet", path: "/admin", want: []string{"remote-access"}},
		{host: "intranet", path: "/admin/x", want: []string{"remote-access"}},
		{host: "intranet", path: "/"},
		{host: "intranet"},
	})
}

func TestIndexAddBytesEqualsAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	targets := []string{"example.com", "www.example.com", "example.com/a", "example.com/a/b", "x.org/", "1.2.3.4", "1.2.3.4/p", "::1"}
	for range 2000 {
		targets = append(targets, ixRandomName(r))
		if r.IntN(10) == 0 {
			targets = append(targets, ixRandomName(r)+"/p"+fmt.Sprint(r.IntN(5)))
		}
	}
	ba, bb := NewIndexBuilder(len(targets)), NewIndexBuilder(0)
	buf := make([]byte, 0, 64)
	for i, tgt := range targets {
		m := Mask(1) << (i % 30)
		if err := ba.Add(tgt, m); err != nil {
			t.Fatal(err)
		}
		buf = append(buf[:0], tgt...)
		if err := bb.AddBytes(buf, m); err != nil {
			t.Fatal(err)
		}
		for j := range buf { // AddBytes must have copied the bytes
			buf[j] = 'Z'
		}
	}
	xa, err := ba.Build()
	if err != nil {
		t.Fatal(err)
	}
	xb, err := bb.Build()
	if err != nil {
		t.Fatal(err)
	}
	if xa.Len() != xb.Len() || xa.Domains() != xb.Domains() || xa.URLs() != xb.URLs() {
		t.Fatalf("Add gives %d/%d/%d entries, AddBytes %d/%d/%d", xa.Len(), xa.Domains(), xa.URLs(), xb.Len(), xb.Domains(), xb.URLs())
	}
	for _, tgt := range targets {
		host, path, _ := strings.Cut(tgt, "/")
		if path != "" || strings.HasSuffix(tgt, "/") {
			path = "/" + path
		}
		for _, p := range []string{"", path} {
			ca, cb := xa.Classify(host, p), xb.Classify(host, p)
			if ca.Cats != cb.Cats || ca.Locked != cb.Locked || ca.NHits != cb.NHits {
				t.Fatalf("Classify(%q, %q): Add gives %s, AddBytes %s", host, p, slugsOf(ca.Cats), slugsOf(cb.Cats))
			}
		}
	}
}

func TestIndexCounts(t *testing.T) {
	tests := []struct {
		name                 string
		targets              []string
		len, domains, urlsWn int
	}{
		{name: "empty"},
		{name: "one domain", targets: []string{"a.com"}, len: 1, domains: 1},
		{name: "one url", targets: []string{"a.com/x"}, len: 1, urlsWn: 1},
		{name: "duplicates", targets: []string{"a.com", "a.com", "a.com/x", "a.com/x"}, len: 2, domains: 1, urlsWn: 1},
		{name: "mixed", targets: []string{"a.com", "b.com", "www.a.com", "a.com/x", "a.com/y", "b.com/x", "b.com/"}, len: 7, domains: 3, urlsWn: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewIndexBuilder(len(tt.targets))
			for _, tgt := range tt.targets {
				if err := b.Add(tgt, 1); err != nil {
					t.Fatal(err)
				}
			}
			idx, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			if idx.Len() != tt.len || idx.Domains() != tt.domains || idx.URLs() != tt.urlsWn {
				t.Errorf("Len, Domains, URLs = %d, %d, %d; want %d, %d, %d", idx.Len(), idx.Domains(), idx.URLs(), tt.len, tt.domains, tt.urlsWn)
			}
		})
	}
}

func TestIndexEmpty(t *testing.T) {
	only := func(add func(*IndexBuilder)) *Index {
		b := NewIndexBuilder(0)
		add(b)
		idx, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	indexes := map[string]*Index{
		"nothing":         only(func(*IndexBuilder) {}),
		"only urls":       only(func(b *IndexBuilder) { _ = b.Add("other.com/x", 1) }),
		"only exceptions": only(func(b *IndexBuilder) { b.AddException("example.com", 1) }),
	}
	for name, idx := range indexes {
		for _, q := range []ixQuery{{host: "example.com"}, {host: "example.com", path: "/x"}, {host: "1.2.3.4"}, {host: "::1"}, {host: ""}} {
			c := idx.Classify(q.host, q.path)
			if c.Cats != 0 || c.Locked != 0 || c.NHits != 0 {
				t.Errorf("%s: Classify(%q, %q) = %+v, want nothing", name, q.host, q.path, c)
			}
		}
		if _, ok := idx.lookup("example.com"); ok {
			t.Errorf("%s: lookup found an entry", name)
		}
	}
	if idx := indexes["nothing"]; idx.Len() != 0 || idx.Domains() != 0 || idx.URLs() != 0 {
		t.Errorf("empty index counts %d/%d/%d", idx.Len(), idx.Domains(), idx.URLs())
	}
}

var ixTLDs = []string{"com", "net", "org", "co.uk", "org.uk", "ac.uk", "de", "fr", "io", "xn--p1ai", "info"}

// ixRandomName makes a canonical-looking host name of 2 to 4 labels.
func ixRandomName(r *rand.Rand) string {
	const alpha = "abcdefghijklmnopqrstuvwxyz0123456789-"
	var sb strings.Builder
	n := 1 + r.IntN(3)
	for i := 0; i < n; i++ {
		l := 1 + r.IntN(12)
		if r.IntN(50) == 0 {
			l = 40 + r.IntN(24)
		}
		for j := 0; j < l; j++ {
			sb.WriteByte(alpha[r.IntN(len(alpha))])
		}
		sb.WriteByte('.')
	}
	sb.WriteString(ixTLDs[r.IntN(len(ixTLDs))])
	return sb.String()
}

// TestIndexLargeRandom is the oracle test for the hash table: every inserted
// name is found with its merged mask, no other name is, and Classify agrees
// with a map walked label by label.
func TestIndexLargeRandom(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	r := rand.New(rand.NewPCG(42, 7))
	oracle := make(map[string]Mask, n)
	oracleLocked := make(map[string]Mask) // only the categories a locked add brought
	b := NewIndexBuilder(n)
	var inserted []string
	for len(inserted) < n {
		name := ixRandomName(r)
		if r.IntN(20) == 0 && len(inserted) > 0 {
			name = inserted[r.IntN(len(inserted))] // a duplicate, merged
		} else if r.IntN(10) == 0 && len(inserted) > 0 {
			name = "www." + inserted[r.IntN(len(inserted))] // a subdomain of an entry
		}
		m := Mask(1) << r.IntN(len(testTax.All()))
		if r.IntN(8) == 0 {
			m |= Mask(1) << r.IntN(len(testTax.All()))
		}
		if r.IntN(50) == 0 {
			m |= FlagLocked
		}
		if _, dup := oracle[name]; !dup {
			inserted = append(inserted, name)
		}
		oracle[name] |= m
		if m&FlagLocked != 0 {
			oracleLocked[name] |= m &^ flagBits
		}
		if r.IntN(2) == 0 {
			if err := b.Add(name, m); err != nil {
				t.Fatal(err)
			}
		} else if err := b.AddBytes([]byte(name), m); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if idx.Domains() != len(oracle) || idx.Len() != len(oracle) || idx.URLs() != 0 {
		t.Fatalf("Domains = %d, Len = %d, want %d distinct names", idx.Domains(), idx.Len(), len(oracle))
	}
	expect := func(host string) (cats, locked Mask) {
		for i := 0; ; {
			if m, ok := oracle[host[i:]]; ok {
				cats |= m &^ flagBits
				locked |= oracleLocked[host[i:]]
			}
			j := strings.IndexByte(host[i:], '.')
			if j < 0 {
				return cats, locked
			}
			i += j + 1
		}
	}
	for name, m := range oracle {
		got, ok := idx.lookup(name)
		if !ok || got != m {
			t.Fatalf("lookup(%q) = %s, %v; want %s", name, slugsOf(got), ok, slugsOf(m))
		}
		c := idx.Classify(name, "")
		if cats, locked := expect(name); c.Cats != cats || c.Locked != locked {
			t.Fatalf("Classify(%q) = %s locked %s; want %s locked %s", name, slugsOf(c.Cats), slugsOf(c.Locked), slugsOf(cats), slugsOf(locked))
		}
	}
	misses := 0
	for misses < n {
		name := ixRandomName(r)
		switch r.IntN(4) {
		case 0:
			name = "x" + inserted[r.IntN(len(inserted))] // same ending, not a subdomain
		case 1:
			name = inserted[r.IntN(len(inserted))] + "x"
		}
		if _, in := oracle[name]; in {
			continue
		}
		misses++
		if got, ok := idx.lookup(name); ok {
			t.Fatalf("lookup(%q) = %s, want no entry", name, slugsOf(got))
		}
		c := idx.Classify(name, "")
		if cats, locked := expect(name); c.Cats != cats || c.Locked != locked {
			t.Fatalf("Classify(%q) = %s; want %s", name, slugsOf(c.Cats), slugsOf(cats))
		}
	}
}

func TestPathHasPrefix(t *testing.T) {
	tests := []struct {
		path, prefix string
		want         bool
	}{
		{"/bar", "/bar", true},
		{"/bar/", "/bar", true},
		{"/bar/x", "/bar", true},
		{"/barbara", "/bar", false},
		{"/ba", "/bar", false},
		{"/", "/", true},
		{"/anything", "/", true},
		{"/docs/", "/docs/", true},
		{"/docs/x", "/docs/", true},
		{"/docs", "/docs/", false},
		{"/docsx", "/docs/", false},
		{"/a.html", "/a", false},
		{"", "/", false},
	}
	for _, tt := range tests {
		if got := pathHasPrefix(tt.path, tt.prefix); got != tt.want {
			t.Errorf("pathHasPrefix(%q, %q) = %v, want %v", tt.path, tt.prefix, got, tt.want)
		}
	}
}
