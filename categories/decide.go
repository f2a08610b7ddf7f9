package categories

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"sync/atomic"
	"time"
)

// Action is what a verdict tells the servers to do.
type Action uint8

// Actions.
const (
	Allow Action = iota
	Block
)

// String returns "allow" or "block".
func (a Action) String() string {
	if a == Block {
		return "block"
	}
	return "allow"
}

// Rule says which step of the precedence decided a verdict.
type Rule uint8

// Rules, in the order Decide applies them.
const (
	RuleDefault      Rule = iota // nothing matched: allowed
	RuleUnknownGroup             // the group does not exist: blocked (fail closed)
	RuleCritical                 // a critical (illegal) category: blocked for everyone
	RuleLocked                   // a category from a locked feed that the group blocks
	RuleGroupDeny                // the group's deny override
	RuleGroupAllow               // the group's allow override
	RuleSchoolDeny               // a school-wide deny override
	RuleSchoolAllow              // a school-wide allow override
	RuleCategory                 // a category the group blocks
	RuleNotApproved              // allowlist mode and the site is not approved
	RuleApproved                 // allowlist mode and the site is approved
	RuleRestricted               // the device is restricted to approved sites for a while, after a pattern of attempts
)

var ruleNames = [...]string{"default", "unknown-group", "critical", "locked", "group-deny", "group-allow",
	"school-deny", "school-allow", "category", "not-approved", "approved", "restricted"}

// String returns the rule's short name, as in JSON output.
func (r Rule) String() string { return ruleNames[r] }

// Verdict is the answer for one target. It holds no allocated data, so
// Decide stays allocation-free; Reason renders it for people.
type Verdict struct {
	Action    Action
	Rule      Rule
	Group     string
	Category  *Category // the deciding category, nil when none
	Match     string    // the entry or override host that matched
	MatchPath string    // its path prefix, for URL entries and overrides
	Cats      Mask      // every category the target is listed in
	Scheduled bool      // a schedule window changed the group's categories
}

// Severity returns the deciding category's severity (none when no category
// decided).
func (v Verdict) Severity() Severity {
	if v.Category == nil {
		return SeverityNone
	}
	return v.Category.Severity
}

// Reason explains the verdict in words a teacher or a parent understands.
func (v Verdict) Reason() string {
	m := v.Match + v.MatchPath
	cat := ""
	if v.Category != nil {
		cat = v.Category.Name
	}
	sched := ""
	if v.Scheduled {
		sched = " (by the group's timetable)"
	}
	switch v.Rule {
	case RuleUnknownGroup:
		return fmt.Sprintf("blocked: there is no group %q, so nothing is allowed", v.Group)
	case RuleCritical:
		return fmt.Sprintf("blocked for everyone: %s is listed as %s, which is illegal content and cannot be unblocked", m, cat)
	case RuleLocked:
		return fmt.Sprintf("blocked: %s is on a locked list as %s, which no one can override", m, cat)
	case RuleGroupDeny:
		return fmt.Sprintf("blocked: group %s has a deny rule for %s", v.Group, m)
	case RuleGroupAllow:
		return fmt.Sprintf("allowed: group %s has an allow rule for %s", v.Group, m)
	case RuleSchoolDeny:
		return fmt.Sprintf("blocked: the school has a deny rule for %s", m)
	case RuleSchoolAllow:
		return fmt.Sprintf("allowed: the school has an allow rule for %s", m)
	case RuleCategory:
		return fmt.Sprintf("blocked: %s is listed as %s, which group %s blocks%s", m, cat, v.Group, sched)
	case RuleNotApproved:
		return fmt.Sprintf("blocked: group %s may only visit approved sites, and this one is not approved", v.Group)
	case RuleApproved:
		return fmt.Sprintf("allowed: %s is approved (%s) for group %s", m, cat, v.Group)
	case RuleRestricted:
		return "blocked: after a pattern of blocked attempts, this device may only visit approved sites for a while"
	}
	if v.Cats != 0 {
		return fmt.Sprintf("allowed: listed, but in no category that group %s blocks%s", v.Group, sched)
	}
	return "allowed: not on any list"
}

// Snapshot is one consistent, immutable view of the lists and the policy.
// Servers read the current one through a Filter and never lock.
type Snapshot struct {
	tax      *Taxonomy
	index    *Index
	groups   []*compiledGroup // a school has a handful: a scan beats hashing the name
	school   overrideSet
	clients  clientMap
	loc      *time.Location
	critical Mask
	policy   Policy
	// restrictedApproved is what a restricted device of a group without
	// approved categories may still reach.
	restrictedApproved Mask
	noise              Mask // adverts and trackers
	anyContext         bool // some group keeps the context window
}

// NewSnapshot compiles a policy against an index.
func NewSnapshot(t *Taxonomy, idx *Index, p Policy) (*Snapshot, error) {
	if err := p.Validate(t); err != nil {
		return nil, err
	}
	s := &Snapshot{tax: t, index: idx, policy: p,
		critical: t.SeverityMask(SeverityCritical)}
	for _, slug := range []string{"education", "kids"} {
		if m, err := t.MaskOf(slug); err == nil {
			s.restrictedApproved |= m
		}
	}
	s.noise, _ = t.MaskOf("advertising")
	var err error
	if s.school, err = compileOverrides(p.School.Allow, p.School.Deny); err != nil {
		return nil, err
	}
	s.school.bind(idx)
	for _, g := range p.Groups {
		cg, err := compileGroup(t, g)
		if err != nil {
			return nil, err
		}
		cg.overrides.bind(idx)
		// The walk skips a set without overrides.
		for k, o := range [2]*overrideSet{&cg.overrides, &s.school} {
			if !o.empty() {
				cg.walkSets[k] = o
			}
		}
		s.groups = append(s.groups, cg)
		s.anyContext = s.anyContext || cg.context
	}
	s.clients = compileClients(p.Clients)
	if s.loc, err = time.LoadLocation(p.TimeZone); err != nil {
		return nil, fmt.Errorf("time zone %q: %w", p.TimeZone, err)
	}
	return s, nil
}

// Taxonomy returns the snapshot's taxonomy.
func (s *Snapshot) Taxonomy() *Taxonomy { return s.tax }

// Index returns the snapshot's index.
func (s *Snapshot) Index() *Index { return s.index }

// Policy returns the policy the snapshot was compiled from.
func (s *Snapshot) Policy() Policy { return s.policy }

// HasGroup reports whether a group exists.
func (s *Snapshot) HasGroup(name string) bool { return s.group(name) != nil }

// group finds a compiled group by name, nil if there is none.
func (s *Snapshot) group(name string) *compiledGroup {
	for _, g := range s.groups {
		if g.name == name {
			return g
		}
	}
	return nil
}

// SearchSettings returns whether a group has safe search enforced and its
// YouTube restricted mode ("strict", "moderate" or "" for off).
func (s *Snapshot) SearchSettings(group string) (safeSearch bool, youtube string) {
	if g := s.group(group); g != nil {
		return g.safeSearch, g.youtube
	}
	return true, YouTubeStrict // an unknown group gets the strictest; Decide blocks it anyway
}

// ProxySettings are a group's settings for the HTTP(S) proxy.
type ProxySettings struct {
	Intercept       bool // decrypt HTTPS for hosts that need it
	Login           bool // proxy authentication required
	MonitorSearches bool // record every search term
}

// ProxySettings returns a group's proxy settings; an unknown group gets the
// zero settings (Decide blocks everything for it anyway).
func (s *Snapshot) ProxySettings(group string) ProxySettings {
	if g := s.group(group); g != nil {
		return g.proxy
	}
	return ProxySettings{}
}

// HasPathRules reports whether a host, or a domain above it, has URL entries
// in the lists or URL overrides in the group's or the school's policy: the
// proxy must see the whole URL of such a host to decide, so it intercepts it.
func (s *Snapshot) HasPathRules(group, host string) bool {
	if s.index.hasURLRules(host) || s.school.hasURLs(host) {
		return true
	}
	g := s.group(group)
	return g != nil && g.overrides.hasURLs(host)
}

// GroupFor returns the group of a client address; ok is false for addresses
// in no mapped range, which the servers refuse.
func (s *Snapshot) GroupFor(addr netip.Addr) (group string, ok bool) {
	return s.clients.lookup(addr)
}

// Decide gives the verdict for a canonical host (see NormalizeHost) and, when
// known, a canonical path (see Normalize), for a group at a time. The
// precedence, first match wins:
//
//  1. a critical category blocks, for every group, with no override;
//  2. a category from a locked feed that the group blocks, with no override;
//  3. the group's overrides, the most specific match (longest host, a URL
//     prefix before its host, the longer prefix) deciding; deny wins a tie;
//  4. the school-wide overrides, in the same way;
//  5. the categories the group blocks at that time; in allowlist mode every
//     site that is not approved is blocked too.
//
// It takes no lock and allocates nothing.
func (s *Snapshot) Decide(group, host, path string, now time.Time) Verdict {
	return s.decide(group, host, path, now, false)
}

// DecideRestricted decides as Decide does for a device that a pattern of
// attempts has restricted: the group's policy applies, and everything it
// would allow must also be approved, as in allowlist mode (the group's
// approved categories, or education and children's sites when it has none).
func (s *Snapshot) DecideRestricted(group, host, path string, now time.Time) Verdict {
	return s.decide(group, host, path, now, true)
}

func (s *Snapshot) decide(group, host, path string, now time.Time, restricted bool) Verdict {
	v := Verdict{Group: group}
	g := s.group(group)
	if g == nil {
		v.Action, v.Rule = Block, RuleUnknownGroup
		return v
	}
	// One walk over the host's levels finds its categories and the most
	// specific override of the group and of the school.
	var w walk
	s.index.walk(host, path, &g.walkSets, &w)
	cats := w.cats
	v.Cats = cats

	if crit := cats & s.critical; crit != 0 {
		return s.blockBy(v, RuleCritical, crit, host, path, &w)
	}
	blocked := g.blockedAt(now, s.loc)
	v.Scheduled = blocked != g.blocked
	if locked := w.locked & blocked; locked != 0 {
		return s.blockBy(v, RuleLocked, locked, host, path, &w)
	}
	for k, rules := range [2][2]Rule{{RuleGroupDeny, RuleGroupAllow}, {RuleSchoolDeny, RuleSchoolAllow}} {
		if o := w.over[k]; o.found {
			v.Match, v.MatchPath = host[o.start:], o.prefix
			v.Action, v.Rule = Block, rules[0]
			if o.allow {
				v.Action, v.Rule = Allow, rules[1]
			}
			return v
		}
	}
	if hit := cats & blocked; hit != 0 {
		return s.blockBy(v, RuleCategory, hit, host, path, &w)
	}
	if g.mode == ModeAllowlist || restricted {
		approved := g.approved
		if restricted && approved == 0 {
			approved = s.restrictedApproved
		}
		if ok := cats & approved; ok != 0 {
			v = s.attribute(v, ok, host, path, &w, false)
			v.Action, v.Rule = Allow, RuleApproved
			return v
		}
		v.Action, v.Rule = Block, RuleNotApproved
		if restricted {
			v.Rule = RuleRestricted
		}
		return v
	}
	return v
}

// blockBy blocks with the most severe of the candidate categories and
// names the most specific entry that listed it.
func (s *Snapshot) blockBy(v Verdict, r Rule, candidates Mask, host, path string, w *walk) Verdict {
	v = s.attribute(v, candidates, host, path, w, r == RuleLocked)
	v.Action, v.Rule = Block, r
	return v
}

// attribute names the most severe candidate category and the most specific
// entry that listed it (a locked one, for a locked block). Only verdicts
// for hosts that matched more than once walk the index a second time, to
// find it.
func (s *Snapshot) attribute(v Verdict, candidates Mask, host, path string, w *walk, locked bool) Verdict {
	var best *Category
	for m := candidates &^ flagBits; m != 0; m &= m - 1 {
		cat := &s.tax.cats[bits.TrailingZeros64(uint64(m))]
		if best == nil || cat.Severity > best.Severity {
			best = cat
		}
	}
	v.Category = best
	if best == nil {
		return v
	}
	found := []levelHit{w.last}
	if w.matches > 1 {
		var hits hitRing
		s.index.walk(host, path, nil, &walk{hits: &hits})
		found = hits.settled()
	}
	for _, h := range found {
		m := h.set.cats
		if locked {
			m = h.set.locked
		}
		if m.Has(best.ID) {
			v.Match, v.MatchPath = host[h.start:], h.prefix
			break
		}
	}
	return v
}

// Check normalises a target as a person or a script typed it (a host or a
// URL) and decides it. It allocates; the servers call Decide directly.
func (s *Snapshot) Check(group, target string, now time.Time) (Target, Verdict, error) {
	t, err := Normalize(target)
	if err != nil {
		return Target{}, Verdict{}, err
	}
	return t, s.Decide(group, t.Host, t.Path, now), nil
}

// Filter holds the snapshot in service. Readers call Current on every
// request; a reload swaps in a new snapshot atomically, and a failed reload
// keeps the last good one and is reported by Status.
type Filter struct {
	cur       atomic.Pointer[Snapshot]
	lastErr   atomic.Pointer[reloadError]
	loadedAt  atomic.Int64
	reloadsOK atomic.Uint64
}

type reloadError struct {
	err error
	at  time.Time
}

// NewFilter returns a Filter serving the first snapshot. There is no Filter
// without a snapshot: if the lists cannot be loaded at start, hedgerow does
// not serve pupils unfiltered.
func NewFilter(first *Snapshot) (*Filter, error) {
	if first == nil {
		return nil, errors.New("filter: no lists loaded; refusing to filter with nothing")
	}
	f := &Filter{}
	f.cur.Store(first)
	f.loadedAt.Store(time.Now().Unix())
	return f, nil
}

// Current returns the snapshot in service.
func (f *Filter) Current() *Snapshot { return f.cur.Load() }

// Reload builds a new snapshot with load and swaps it in. On error the
// current snapshot stays in service and the error is kept for Status.
func (f *Filter) Reload(load func() (*Snapshot, error)) error {
	s, err := load()
	if err == nil && s == nil {
		err = errors.New("the loader returned no lists")
	}
	if err != nil {
		f.lastErr.Store(&reloadError{err: err, at: time.Now()})
		return fmt.Errorf("reload failed, keeping the lists loaded at %s: %w",
			time.Unix(f.loadedAt.Load(), 0).Format(time.RFC3339), err)
	}
	f.cur.Store(s)
	f.loadedAt.Store(time.Now().Unix())
	f.lastErr.Store(nil)
	f.reloadsOK.Add(1)
	return nil
}

// Status reports when the snapshot in service was loaded and the last reload
// error, if the most recent reload failed.
func (f *Filter) Status() (loadedAt time.Time, lastErr error, failedAt time.Time) {
	loadedAt = time.Unix(f.loadedAt.Load(), 0)
	if e := f.lastErr.Load(); e != nil {
		return loadedAt, e.err, e.at
	}
	return loadedAt, nil, time.Time{}
}
