package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"hedgerow/categories"
	"hedgerow/categories/listfile"
)

// RedactSource hides the password in a feed's source URL (a provider's
// list behind a login); anything else, a path included, is returned as it
// is. What the admin UI shows and the updater reports goes through it.
func RedactSource(source string) string {
	if u, err := url.Parse(source); err == nil && u.User != nil {
		return u.Redacted()
	}
	return source
}

// ImportSummary is what an import read and changed: what `hedgerow
// import` prints and the admin UI's import page shows.
type ImportSummary struct {
	Files      int                `json:"files"`
	Lines      int                `json:"lines"`
	Domains    int                `json:"domains"`
	URLs       int                `json:"urls"`
	Exceptions int                `json:"exceptions"`
	Malformed  int                `json:"malformed"`
	Problems   []listfile.Problem `json:"problems,omitempty"`
	Ignored    []string           `json:"ignored,omitempty"`
	Change     FeedChange         `json:"change"`
	Seconds    float64            `json:"seconds"`
}

// LocalFeed is the name under which entries added by hand are reported.
const LocalFeed = "local"

// FeedInfo describes one imported source of entries.
type FeedInfo struct {
	Name       string    `json:"name"`
	Source     string    `json:"source"` // file, directory or URL it was read from
	Format     string    `json:"format"`
	Locked     bool      `json:"locked"` // entries cannot be removed or overridden, only replaced by a re-import
	Reason     string    `json:"reason"`
	ImportedAt time.Time `json:"imported_at"`
	ImportedBy string    `json:"imported_by"`
	Domains    int       `json:"domains"`
	URLs       int       `json:"urls"`
	Exceptions int       `json:"exceptions"`
	Malformed  int       `json:"malformed"`
	Categories []string  `json:"categories"`

	// What an update needs and what the last one found (see
	// feedupdate.go); missing in databases written before updates existed.
	Category     string    `json:"category,omitempty"`      // the import's --category: every entry of a non-UT1 list gets it
	ETag         string    `json:"etag,omitempty"`          // validators of the last download, sent back to ask "changed?"
	LastModified string    `json:"last_modified,omitempty"` // as the server wrote it
	SourceStamp  string    `json:"source_stamp,omitempty"`  // a local source's modification time, size and file count at the last read
	CheckedAt    time.Time `json:"checked_at,omitzero"`     // the last update check, whatever its result
	SucceededAt  time.Time `json:"succeeded_at,omitzero"`   // the last check that found the entries current (updated or not-modified)
	UpdatedAt    time.Time `json:"updated_at,omitzero"`     // the last update that replaced the entries
	LastResult   string    `json:"last_result,omitempty"`   // FeedUpdated, FeedNotModified, FeedFailed or FeedRefused
	LastError    string    `json:"last_error,omitempty"`    // why the last check failed or was refused
	Failures     int       `json:"failures,omitempty"`      // failed or refused checks since the last success
}

// Feed is a complete set of entries from one source, ready to replace the
// feed's previous entries.
type Feed struct {
	Info       FeedInfo
	entries    map[string]categories.Mask
	exceptions map[string]categories.Mask

	// Set by UpdateFeed: the audit action, and a check of the change
	// that can still refuse it before anything is written.
	action string
	guard  func(FeedChange) error
}

// NewFeed returns an empty feed.
func NewFeed(info FeedInfo) *Feed {
	return &Feed{Info: info, entries: map[string]categories.Mask{}, exceptions: map[string]categories.Mask{}}
}

// Add puts a canonical target (host, or host+path for a URL prefix) into
// the categories m. Adding the same target again merges the categories.
func (f *Feed) Add(target string, m categories.Mask) { f.entries[target] |= m }

// AddException records that target is not in the categories m ("@@" rules).
func (f *Feed) AddException(target string, m categories.Mask) { f.exceptions[target] |= m }

// Collect returns the function that takes a list file's entries (for
// listfile.Read) into the feed, each in its category of the taxonomy. The
// CLI's import, the admin UI's import and the scheduled updates all read
// lists through it.
func (f *Feed) Collect(tax *categories.Taxonomy) func(listfile.Entry) error {
	masks := map[string]categories.Mask{}
	return func(e listfile.Entry) error {
		m, ok := masks[e.Category]
		if !ok {
			var err error
			if m, err = tax.MaskOf(e.Category); err != nil {
				return err
			}
			masks[e.Category] = m
		}
		if e.Allow {
			f.AddException(e.Target, m)
		} else {
			f.Add(e.Target, m)
		}
		return nil
	}
}

// Len returns the number of distinct targets.
func (f *Feed) Len() int { return len(f.entries) + len(f.exceptions) }

// FeedChange summarises what a re-import changed.
type FeedChange struct {
	Added, Removed, Kept int
}

// ValidFeedName checks a feed name: letters, digits, '-', '_' and '.'.
func ValidFeedName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("feed name %q: want 1 to 64 characters", name)
	}
	if name == LocalFeed {
		return fmt.Errorf("feed name %q is reserved for entries added by hand", name)
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("-_.", r) {
			return fmt.Errorf("feed name %q: use letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// ReplaceFeed atomically replaces every entry of the named feed with the
// feed's entries: entries that disappeared are removed, the others kept, in
// one transaction with its audit record. A locked feed stays locked.
func (s *Store) ReplaceFeed(actor string, f *Feed) (FeedChange, error) {
	var ch FeedChange
	if err := ValidFeedName(f.Info.Name); err != nil {
		return ch, err
	}
	if strings.TrimSpace(f.Info.Reason) == "" {
		return ch, fmt.Errorf("import of feed %q: a reason is required (schools must record why a list is used)", f.Info.Name)
	}
	var info FeedInfo
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		ch, info, err = s.replaceFeedTx(tx, actor, f)
		return err
	})
	if err == nil {
		f.Info = info // only once committed
	}
	return ch, err
}

const chunkLimit = 1 << 20

func (s *Store) replaceFeedTx(tx *bolt.Tx, actor string, f *Feed) (FeedChange, FeedInfo, error) {
	var ch FeedChange
	info := f.Info
	for _, set := range []map[string]categories.Mask{f.entries, f.exceptions} {
		for t := range set {
			if t == "" || strings.ContainsAny(t, "\n\t ") {
				return ch, info, fmt.Errorf("feed %s: entry %q is not a canonical host or URL", info.Name, t)
			}
		}
	}
	feeds := tx.Bucket(bFeeds)
	name := []byte(info.Name)
	var before any
	if old := feeds.Bucket(name); old != nil {
		oldInfo, err := readFeedInfo(old)
		if err != nil {
			return ch, info, err
		}
		before = oldInfo
		if oldInfo.Locked {
			info.Locked = true
		}
		seen := 0
		if err := forEachChunk(old, func(h chunkHeader, names [][]byte) error {
			now := f.entries
			if h.exception {
				now = f.exceptions
			}
			for _, n := range names {
				if _, ok := now[string(n)]; ok {
					seen++
				} else {
					ch.Removed++
				}
			}
			return nil
		}); err != nil {
			return ch, info, err
		}
		ch.Kept = seen
		if f.guard != nil {
			if err := f.guard(ch); err != nil {
				return ch, info, err
			}
		}
		if err := feeds.DeleteBucket(name); err != nil {
			return ch, info, fmt.Errorf("replace feed %s: %w", info.Name, err)
		}
	}
	ch.Added = f.Len() - ch.Kept

	fb, err := feeds.CreateBucket(name)
	if err != nil {
		return ch, info, fmt.Errorf("replace feed %s: %w", info.Name, err)
	}
	chunks, err := fb.CreateBucket([]byte("chunks"))
	if err != nil {
		return ch, info, err
	}
	info.ImportedAt = s.now().UTC()
	info.ImportedBy = actor
	info.Domains, info.URLs, info.Exceptions = 0, 0, len(f.exceptions)
	var all categories.Mask
	seq := uint32(0)
	write := func(h chunkHeader, names []string) error {
		slices.Sort(names)
		buf := []byte(h.String() + "\n")
		for _, n := range names {
			if len(buf)+len(n)+1 > chunkLimit {
				if err := chunks.Put(binary.BigEndian.AppendUint32(nil, seq), buf); err != nil {
					return err
				}
				seq++
				buf = []byte(h.String() + "\n")
			}
			buf = append(buf, n...)
			buf = append(buf, '\n')
		}
		err := chunks.Put(binary.BigEndian.AppendUint32(nil, seq), buf)
		seq++
		return err
	}
	byMask := map[categories.Mask][]string{}
	for t, m := range f.entries {
		byMask[m] = append(byMask[m], t)
		all |= m
		if strings.IndexByte(t, '/') >= 0 {
			info.URLs++
		} else {
			info.Domains++
		}
	}
	masks := make([]categories.Mask, 0, len(byMask))
	for m := range byMask {
		masks = append(masks, m)
	}
	slices.Sort(masks)
	for _, m := range masks {
		if err := write(chunkHeader{cats: s.tax.Slugs(m)}, byMask[m]); err != nil {
			return ch, info, err
		}
	}
	clear(byMask)
	for t, m := range f.exceptions {
		byMask[m] = append(byMask[m], t)
	}
	for m, names := range byMask {
		if err := write(chunkHeader{exception: true, cats: s.tax.Slugs(m)}, names); err != nil {
			return ch, info, err
		}
	}
	info.Categories = s.tax.Slugs(all)
	raw, err := json.Marshal(info)
	if err != nil {
		return ch, info, err
	}
	if err := fb.Put([]byte("info"), raw); err != nil {
		return ch, info, err
	}
	after := struct {
		FeedInfo
		Change FeedChange `json:"change"`
	}{info, ch}
	action := "import"
	if f.action != "" {
		action = f.action
	}
	return ch, info, s.audit(tx, actor, action, "feed "+info.Name, before, after, info.Reason)
}

// chunkHeader is the first line of a stored chunk: what its names are.
type chunkHeader struct {
	exception bool
	cats      []string
}

func (h chunkHeader) String() string {
	kind := "block"
	if h.exception {
		kind = "except"
	}
	return kind + "\t" + strings.Join(h.cats, ",")
}

func parseChunkHeader(line []byte) (chunkHeader, error) {
	kind, cats, ok := bytes.Cut(line, []byte("\t"))
	if !ok || (string(kind) != "block" && string(kind) != "except") {
		return chunkHeader{}, fmt.Errorf("corrupt chunk header %q", line)
	}
	h := chunkHeader{exception: string(kind) == "except"}
	if len(cats) > 0 {
		h.cats = strings.Split(string(cats), ",")
	}
	return h, nil
}

// forEachChunk calls fn with the header and names of each chunk of a feed.
// The name slices point into the database and are valid only during fn.
func forEachChunk(fb *bolt.Bucket, fn func(chunkHeader, [][]byte) error) error {
	chunks := fb.Bucket([]byte("chunks"))
	if chunks == nil {
		return errors.New("feed without chunks")
	}
	var names [][]byte
	return chunks.ForEach(func(_, v []byte) error {
		nl := bytes.IndexByte(v, '\n')
		if nl < 0 {
			return fmt.Errorf("corrupt chunk without header")
		}
		h, err := parseChunkHeader(v[:nl])
		if err != nil {
			return err
		}
		names = names[:0]
		for rest := v[nl+1:]; len(rest) > 0; {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				i = len(rest)
			}
			if i > 0 {
				names = append(names, rest[:i])
			}
			rest = rest[min(i+1, len(rest)):]
		}
		return fn(h, names)
	})
}

func readFeedInfo(fb *bolt.Bucket) (FeedInfo, error) {
	var info FeedInfo
	if err := json.Unmarshal(fb.Get([]byte("info")), &info); err != nil {
		return info, fmt.Errorf("feed info: %w", err)
	}
	return info, nil
}

// Feeds lists the imported feeds.
func (s *Store) Feeds() ([]FeedInfo, error) {
	var out []FeedInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bFeeds).ForEachBucket(func(k []byte) error {
			info, err := readFeedInfo(tx.Bucket(bFeeds).Bucket(k))
			if err != nil {
				return fmt.Errorf("feed %s: %w", k, err)
			}
			out = append(out, info)
			return nil
		})
	})
	return out, err
}

// RemoveFeed deletes a feed and its entries. Locked feeds cannot be removed.
func (s *Store) RemoveFeed(actor, name, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return fmt.Errorf("remove feed %q: a reason is required", name)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		fb := tx.Bucket(bFeeds).Bucket([]byte(name))
		if fb == nil {
			return fmt.Errorf("remove feed %q: no such feed", name)
		}
		info, err := readFeedInfo(fb)
		if err != nil {
			return err
		}
		if info.Locked {
			return fmt.Errorf("remove feed %q: the feed is locked; it can only be replaced by importing it again", name)
		}
		if err := tx.Bucket(bFeeds).DeleteBucket([]byte(name)); err != nil {
			return err
		}
		return s.audit(tx, actor, "remove-feed", "feed "+name, info, nil, reason)
	})
}

// LocalEntry is an entry added by hand.
type LocalEntry struct {
	Target     string    `json:"target"`
	Categories []string  `json:"categories"`
	AddedBy    string    `json:"added_by"`
	AddedAt    time.Time `json:"added_at"`
	Reason     string    `json:"reason"`
}

// AddEntry adds or extends an entry by hand. target must be canonical
// (categories.ParseOverride's host or host+path).
func (s *Store) AddEntry(actor, target string, cats []string, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return fmt.Errorf("add %s: a reason is required (schools must record why a site is blocked)", target)
	}
	if len(cats) == 0 {
		return fmt.Errorf("add %s: at least one category is required", target)
	}
	if _, err := s.tax.MaskOf(cats...); err != nil {
		return fmt.Errorf("add %s: %w", target, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bEntries)
		var before any
		e := LocalEntry{Target: target}
		if raw := b.Get([]byte(target)); raw != nil {
			var old LocalEntry
			if err := json.Unmarshal(raw, &old); err != nil {
				return fmt.Errorf("entry %s: %w", target, err)
			}
			before = old
			e.Categories = old.Categories
		}
		m, _ := s.tax.MaskOf(append(e.Categories, cats...)...)
		e.Categories = s.tax.Slugs(m)
		e.AddedBy, e.AddedAt, e.Reason = actor, s.now().UTC(), reason
		raw, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(target), raw); err != nil {
			return err
		}
		return s.audit(tx, actor, "lists-add", target, before, e, reason)
	})
}

// RemoveEntry removes a hand-added entry (all its categories, or only the
// given ones). Entries that come from a feed are not removed here: they
// would return with the next import; the error says which feed has them.
func (s *Store) RemoveEntry(actor, target string, cats []string, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return fmt.Errorf("remove %s: a reason is required", target)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bEntries)
		raw := b.Get([]byte(target))
		if raw == nil {
			feeds := feedsListing(tx, target)
			if len(feeds) > 0 {
				return fmt.Errorf("remove %s: it is not a hand-added entry; it comes from feed %s (re-import the feed without it, or add an allow override if the feed is not locked)", target, strings.Join(feeds, ", "))
			}
			return fmt.Errorf("remove %s: no such entry", target)
		}
		var old LocalEntry
		if err := json.Unmarshal(raw, &old); err != nil {
			return fmt.Errorf("entry %s: %w", target, err)
		}
		var after any
		if len(cats) == 0 {
			if err := b.Delete([]byte(target)); err != nil {
				return err
			}
		} else {
			rm, err := s.tax.MaskOf(cats...)
			if err != nil {
				return fmt.Errorf("remove %s: %w", target, err)
			}
			have, _ := s.tax.MaskOf(old.Categories...)
			if have&rm == 0 {
				return fmt.Errorf("remove %s: it is not in %s", target, strings.Join(cats, ", "))
			}
			e := old
			e.Categories = s.tax.Slugs(have &^ rm)
			if len(e.Categories) == 0 {
				if err := b.Delete([]byte(target)); err != nil {
					return err
				}
			} else {
				raw, _ := json.Marshal(e)
				if err := b.Put([]byte(target), raw); err != nil {
					return err
				}
				after = e
			}
		}
		return s.audit(tx, actor, "lists-remove", target, old, after, reason)
	})
}

// feedsListing names the feeds that list exactly target.
func feedsListing(tx *bolt.Tx, target string) []string {
	var out []string
	_ = tx.Bucket(bFeeds).ForEachBucket(func(k []byte) error {
		found := false
		_ = forEachChunk(tx.Bucket(bFeeds).Bucket(k), func(_ chunkHeader, names [][]byte) error {
			if !found {
				_, found = slices.BinarySearchFunc(names, []byte(target), bytes.Compare)
			}
			return nil
		})
		if found {
			out = append(out, string(k))
		}
		return nil
	})
	return out
}

// Found is one stored entry that matches a host or URL.
type Found struct {
	Feed       string   `json:"feed"`
	Entry      string   `json:"entry"`
	Categories []string `json:"categories"`
	Exception  bool     `json:"exception,omitempty"`
	Locked     bool     `json:"locked,omitempty"`
	AddedBy    string   `json:"added_by,omitempty"`
	Reason     string   `json:"reason,omitempty"`
}

// Find lists every stored entry that matches a canonical host and path: the
// host and its parent domains, and URL prefixes under them.
func (s *Store) Find(host, path string) ([]Found, error) {
	matches := func(entry []byte) bool {
		e := string(entry)
		h, p, isURL := strings.Cut(e, "/")
		if h != host && !strings.HasSuffix(host, "."+h) {
			return false
		}
		if !isURL {
			return true
		}
		if path == "" {
			return false
		}
		p = "/" + p
		return strings.HasPrefix(path, p) && (len(path) == len(p) || p[len(p)-1] == '/' || path[len(p)] == '/')
	}
	var out []Found
	err := s.db.View(func(tx *bolt.Tx) error {
		feeds := tx.Bucket(bFeeds)
		if err := feeds.ForEachBucket(func(k []byte) error {
			fb := feeds.Bucket(k)
			info, err := readFeedInfo(fb)
			if err != nil {
				return err
			}
			return forEachChunk(fb, func(h chunkHeader, names [][]byte) error {
				for _, n := range names {
					if matches(n) {
						out = append(out, Found{Feed: info.Name, Entry: string(n), Categories: slices.Clone(h.cats),
							Exception: h.exception, Locked: info.Locked, AddedBy: info.ImportedBy, Reason: info.Reason})
					}
				}
				return nil
			})
		}); err != nil {
			return err
		}
		return tx.Bucket(bEntries).ForEach(func(k, v []byte) error {
			if !matches(k) {
				return nil
			}
			var e LocalEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("entry %s: %w", k, err)
			}
			out = append(out, Found{Feed: LocalFeed, Entry: e.Target, Categories: e.Categories, AddedBy: e.AddedBy, Reason: e.Reason})
			return nil
		})
	})
	return out, err
}

// buildIndex compiles every feed and hand-added entry into an Index.
func (s *Store) buildIndex(tx *bolt.Tx) (*categories.Index, error) {
	feeds := tx.Bucket(bFeeds)
	var infos []FeedInfo
	hint := 0
	if err := feeds.ForEachBucket(func(k []byte) error {
		info, err := readFeedInfo(feeds.Bucket(k))
		if err != nil {
			return fmt.Errorf("feed %s: %w", k, err)
		}
		infos = append(infos, info)
		hint += info.Domains
		return nil
	}); err != nil {
		return nil, err
	}
	b := categories.NewIndexBuilder(hint)
	for _, info := range infos {
		err := forEachChunk(feeds.Bucket([]byte(info.Name)), func(h chunkHeader, names [][]byte) error {
			m, err := s.tax.MaskOf(h.cats...)
			if err != nil {
				return err
			}
			if h.exception {
				for _, n := range names {
					b.AddException(string(n), m)
				}
				return nil
			}
			if info.Locked {
				m |= categories.FlagLocked
			}
			for _, n := range names {
				if err := b.AddBytes(n, m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("load feed %s: %w", info.Name, err)
		}
	}
	if err := tx.Bucket(bEntries).ForEach(func(k, v []byte) error {
		var e LocalEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("entry %s: %w", k, err)
		}
		m, err := s.tax.MaskOf(e.Categories...)
		if err != nil {
			return fmt.Errorf("entry %s: %w", k, err)
		}
		return b.AddBytes(k, m)
	}); err != nil {
		return nil, err
	}
	return b.Build()
}
