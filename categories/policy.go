package categories

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Mode is how a group's policy treats sites that no list mentions.
type Mode string

// Modes.
const (
	// ModeFilter blocks the group's blocked categories and allows the rest.
	ModeFilter Mode = "filter"
	// ModeAllowlist blocks everything except approved sites and the group's
	// allow overrides: the supervised "approved on-line materials only"
	// access of Foundation Stage and Key Stage 1.
	ModeAllowlist Mode = "allowlist"
)

// SchoolGroup is the reserved name under which school-wide overrides are
// kept and addressed on the command line.
const SchoolGroup = "school"

// Group is one age group's policy as stored and edited.
type Group struct {
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	Mode        Mode       `json:"mode"`
	Blocked     []string   `json:"blocked"`            // category slugs
	Approved    []string   `json:"approved,omitempty"` // allowlist mode: categories whose sites are approved
	Allow       []string   `json:"allow,omitempty"`    // override targets (canonical host or host/path)
	Deny        []string   `json:"deny,omitempty"`
	Schedules   []Schedule `json:"schedules,omitempty"`
	SafeSearch  bool       `json:"safe_search,omitempty"` // enforce Google, Bing and DuckDuckGo safe search
	YouTube     string     `json:"youtube,omitempty"`     // YouTube restricted mode: "strict", "moderate" or "" (off)

	// Proxy settings.
	Intercept       bool `json:"intercept,omitempty"`        // decrypt HTTPS (with the school CA) for hosts that need it: blocked, URL rules, search
	ProxyLogin      bool `json:"proxy_login,omitempty"`      // the proxy asks for a user name and password; the user's group then decides
	MonitorSearches bool `json:"monitor_searches,omitempty"` // record every search term seen, not only blocked searches

	// Context keeps, in memory, the sites each device reached in the last
	// half hour and attaches them to its high and critical incidents: a
	// privacy choice for the school, off by default.
	Context bool `json:"context,omitempty"`
}

// YouTube restricted modes.
const (
	YouTubeStrict   = "strict"
	YouTubeModerate = "moderate"
)

// Schedule changes a group's blocked categories during a weekly time window,
// for example social networks allowed for the sixth form at lunchtime.
type Schedule struct {
	Days  []string `json:"days"`            // "mon".."sun"
	From  string   `json:"from"`            // "HH:MM", inclusive
	To    string   `json:"to"`              // "HH:MM", exclusive; may be before From to span midnight
	Allow []string `json:"allow,omitempty"` // categories unblocked in the window
	Block []string `json:"block,omitempty"` // categories blocked in the window
}

// ClientRule maps a source address range to a group.
type ClientRule struct {
	Prefix netip.Prefix `json:"prefix"`
	Group  string       `json:"group"`
}

// Policy is everything Decide needs besides the lists.
type Policy struct {
	Groups   []Group      `json:"groups"`
	School   Group        `json:"school"` // school-wide Allow and Deny overrides; other fields unused
	Clients  []ClientRule `json:"clients"`
	TimeZone string       `json:"time_zone"`
}

// GroupNamed returns a pointer into p for in-place edits; SchoolGroup names
// the school-wide overrides.
func (p *Policy) GroupNamed(name string) (*Group, error) {
	if name == SchoolGroup {
		return &p.School, nil
	}
	for i := range p.Groups {
		if p.Groups[i].Name == name {
			return &p.Groups[i], nil
		}
	}
	names := []string{SchoolGroup}
	for _, g := range p.Groups {
		names = append(names, g.Name)
	}
	return nil, fmt.Errorf("group %q: no such group (groups: %s)", name, strings.Join(names, ", "))
}

// DefaultTimeZone is where a fresh install evaluates schedules.
const DefaultTimeZone = "Europe/London"

// DefaultPolicy is the starter policy of a fresh install: the five UK age
// groups, and loopback plus the private address ranges mapped to ks2 so the
// filter works out of the box (the install guide says to replace these with
// the school's own subnets).
func DefaultPolicy(t *Taxonomy) Policy {
	var criticalHigh []string
	for _, c := range t.All() {
		if c.Kind == KindBlock && c.Severity >= SeverityHigh {
			criticalHigh = append(criticalHigh, c.Slug)
		}
	}
	with := func(extra ...string) []string { return append(slices.Clone(criticalHigh), extra...) }
	secondary := []string{"dating", "chat", "games", "social-networks", "mature", "advertising",
		"cheating", "remote-access", "dynamic-dns", "misinformation", "cryptocurrency"}
	primary := append(slices.Clone(secondary), "shopping", "webmail", "ai", "forums", "url-shorteners")
	var clients []ClientRule
	for _, p := range []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"} {
		clients = append(clients, ClientRule{Prefix: netip.MustParsePrefix(p), Group: "ks2"})
	}
	return Policy{
		Groups: []Group{
			{Name: "early-years-ks1", Mode: ModeAllowlist, Blocked: with(primary...), Approved: []string{"kids", "education"},
				SafeSearch: true, YouTube: YouTubeStrict,
				Description: "Foundation Stage and Key Stage 1 (ages 3-7): approved sites only"},
			{Name: "ks2", Mode: ModeFilter, Blocked: with(primary...), SafeSearch: true, YouTube: YouTubeStrict,
				Description: "Key Stage 2 (ages 7-11)"},
			{Name: "ks3-ks4", Mode: ModeFilter, Blocked: with(secondary...), SafeSearch: true, YouTube: YouTubeModerate,
				Description: "Key Stages 3 and 4 (ages 11-16)"},
			{Name: "sixth-form", Mode: ModeFilter, Blocked: with("dating", "mature", "cheating", "remote-access"),
				SafeSearch: true, YouTube: YouTubeModerate,
				Description: "Sixth form (ages 16-18)"},
			{Name: "staff", Mode: ModeFilter, Blocked: criticalHigh,
				Description: "Teachers and support staff"},
		},
		School:   Group{Name: SchoolGroup, Allow: slices.Clone(trustedEducation)},
		Clients:  clients,
		TimeZone: DefaultTimeZone,
	}
}

// trustedEducation is the school-wide allow list a fresh install starts
// with: registries only public bodies, universities and schools can use, and
// the reference and educational sites lessons depend on. Public category
// lists are known to over-block some of them (nasa.gov sits on a torrent
// list, nationalgeographic.com on a games list), and a blocked encyclopaedia
// ruins a lesson. Critical categories and locked feeds still block them; IT
// staff review and edit it with `hedgerow groups show school` and
// `hedgerow groups allow school ... --remove`.
var trustedEducation = []string{
	"gov.uk", "sch.uk", "ac.uk", "nhs.uk", "police.uk", "parliament.uk", "gov.scot", "gov.wales",
	"bbc.co.uk", "nasa.gov", "wikipedia.org", "wiktionary.org", "britannica.com",
	"nationalgeographic.com", "natgeokids.com", "khanacademy.org", "scratch.mit.edu", "code.org",
	"oup.com", "cambridge.org", "collinsdictionary.com", "twinkl.co.uk", "oxfordowl.co.uk",
	"nhm.ac.uk", "sciencemuseum.org.uk", "metoffice.gov.uk", "aqa.org.uk", "ocr.org.uk", "pearson.com",
}

// Validate checks a policy against the taxonomy and returns every problem,
// each naming the group and field.
func (p *Policy) Validate(t *Taxonomy) error {
	var errs []string
	seen := map[string]bool{}
	for _, g := range p.Groups {
		if err := ValidGroupName(g.Name); err != nil {
			errs = append(errs, err.Error())
		}
		if seen[g.Name] {
			errs = append(errs, fmt.Sprintf("group %q defined twice", g.Name))
		}
		seen[g.Name] = true
		if _, err := compileGroup(t, g); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if _, err := compileOverrides(p.School.Allow, p.School.Deny); err != nil {
		errs = append(errs, "school-wide overrides: "+err.Error())
	}
	ranges := map[netip.Prefix]string{}
	for _, c := range p.Clients {
		if !c.Prefix.IsValid() {
			errs = append(errs, fmt.Sprintf("client range for group %q: not a valid address or CIDR", c.Group))
			continue
		}
		if !seen[c.Group] {
			errs = append(errs, fmt.Sprintf("client range %s: unknown group %q", c.Prefix, c.Group))
		}
		p := canonicalPrefix(c.Prefix)
		if g, dup := ranges[p]; dup && g != c.Group {
			errs = append(errs, fmt.Sprintf("client range %s is mapped to both %q and %q", p, g, c.Group))
		}
		ranges[p] = c.Group
	}
	if _, err := time.LoadLocation(p.TimeZone); err != nil {
		errs = append(errs, fmt.Sprintf("time zone %q: %v", p.TimeZone, err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid policy: %s", strings.Join(errs, "; "))
	}
	return nil
}

// ValidGroupName checks a group name: lower-case letters, digits and '-',
// not the reserved name for school-wide overrides.
func ValidGroupName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("group name %q: want 1 to 64 characters", name)
	}
	if name == SchoolGroup {
		return fmt.Errorf("group name %q is reserved for school-wide overrides", name)
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return fmt.Errorf("group name %q: use lower-case letters, digits and '-'", name)
		}
	}
	return nil
}

// compiledGroup is a Group ready for Decide.
type compiledGroup struct {
	name       string
	mode       Mode
	safeSearch bool
	youtube    string
	proxy      ProxySettings
	context    bool
	blocked    Mask
	approved   Mask
	overrides  overrideSet
	schedules  []compiledSchedule
	// walkSets are the group's and the school's overrides, nil where there
	// are none, as the walk over a host's levels takes them.
	walkSets [2]*overrideSet
}

type compiledSchedule struct {
	days     [7]bool // indexed by time.Weekday
	from, to int     // minutes after midnight
	allow    Mask
	block    Mask
}

func compileGroup(t *Taxonomy, g Group) (*compiledGroup, error) {
	cg := &compiledGroup{name: g.Name, mode: g.Mode, safeSearch: g.SafeSearch, youtube: g.YouTube,
		proxy: ProxySettings{Intercept: g.Intercept, Login: g.ProxyLogin, MonitorSearches: g.MonitorSearches}, context: g.Context}
	var err error
	switch g.Mode {
	case ModeFilter, ModeAllowlist:
	default:
		return nil, fmt.Errorf("group %q: mode %q: want %q or %q", g.Name, g.Mode, ModeFilter, ModeAllowlist)
	}
	switch g.YouTube {
	case "", YouTubeStrict, YouTubeModerate:
	default:
		return nil, fmt.Errorf("group %q: youtube %q: want %q, %q or off", g.Name, g.YouTube, YouTubeStrict, YouTubeModerate)
	}
	if cg.blocked, err = t.MaskOf(g.Blocked...); err != nil {
		return nil, fmt.Errorf("group %q blocked: %w", g.Name, err)
	}
	if cg.approved, err = t.MaskOf(g.Approved...); err != nil {
		return nil, fmt.Errorf("group %q approved: %w", g.Name, err)
	}
	if cg.overrides, err = compileOverrides(g.Allow, g.Deny); err != nil {
		return nil, fmt.Errorf("group %q: %w", g.Name, err)
	}
	for i, s := range g.Schedules {
		cs, err := compileSchedule(t, s)
		if err != nil {
			return nil, fmt.Errorf("group %q schedule %d: %w", g.Name, i+1, err)
		}
		cg.schedules = append(cg.schedules, cs)
	}
	return cg, nil
}

// blockedAt returns the categories the group blocks at a local time.
func (g *compiledGroup) blockedAt(now time.Time, loc *time.Location) Mask {
	if len(g.schedules) == 0 {
		return g.blocked
	}
	local := now.In(loc)
	day := local.Weekday()
	mins := local.Hour()*60 + local.Minute()
	prevDay := (day + 6) % 7
	b := g.blocked
	for _, s := range g.schedules {
		var in bool
		if s.from <= s.to {
			in = s.days[day] && mins >= s.from && mins < s.to
		} else { // spans midnight: the evening part belongs to the listed day
			in = (s.days[day] && mins >= s.from) || (s.days[prevDay] && mins < s.to)
		}
		if in {
			b = (b &^ s.allow) | s.block
		}
	}
	return b
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseDays reads a day list such as "mon-fri", "sat,sun" or "mon,wed-fri".
func ParseDays(spec string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(strings.ToLower(spec), ",") {
		part = strings.TrimSpace(part)
		a, b, isRange := strings.Cut(part, "-")
		da, ok := weekdays[a]
		if !ok {
			return nil, fmt.Errorf("days %q: %q is not a day (want mon, tue, wed, thu, fri, sat, sun)", spec, a)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		db, ok := weekdays[b]
		if !ok {
			return nil, fmt.Errorf("days %q: %q is not a day (want mon, tue, wed, thu, fri, sat, sun)", spec, b)
		}
		for d := da; ; d = (d + 1) % 7 {
			out = append(out, strings.ToLower(d.String()[:3]))
			if d == db {
				break
			}
		}
	}
	return out, nil
}

func compileSchedule(t *Taxonomy, s Schedule) (compiledSchedule, error) {
	var cs compiledSchedule
	if len(s.Days) == 0 {
		return cs, fmt.Errorf("no days given")
	}
	for _, d := range s.Days {
		wd, ok := weekdays[d]
		if !ok {
			return cs, fmt.Errorf("day %q: want mon, tue, wed, thu, fri, sat or sun", d)
		}
		cs.days[wd] = true
	}
	var err error
	if cs.from, err = parseClock(s.From); err != nil {
		return cs, err
	}
	if cs.to, err = parseClock(s.To); err != nil {
		return cs, err
	}
	if cs.from == cs.to {
		return cs, fmt.Errorf("window %s-%s is empty", s.From, s.To)
	}
	if cs.allow, err = t.MaskOf(s.Allow...); err != nil {
		return cs, err
	}
	if cs.block, err = t.MaskOf(s.Block...); err != nil {
		return cs, err
	}
	if cs.allow == 0 && cs.block == 0 {
		return cs, fmt.Errorf("window %s-%s changes no category", s.From, s.To)
	}
	return cs, nil
}

func parseClock(s string) (int, error) {
	tm, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("time %q: want HH:MM (24-hour)", s)
	}
	return tm.Hour()*60 + tm.Minute(), nil
}

// overrideSet holds one level's allow and deny overrides. One target has at
// most one action; the most specific match wins.
type overrideSet struct {
	domains map[string]bool // host -> allow?
	urls    map[string][]urlOverride
	// maybe has a bit set for every host above, under the Index's hash of
	// the name, which the walk over a host's levels has computed anyway:
	// most levels are skipped without a map lookup. A set without marks
	// (compiled, not yet bound to an Index) has every bit set.
	maybe [16]uint64
}

// bloomBit picks a name's bit in overrideSet.maybe from bits of its hash
// that the hash table does not use for its tag.
func bloomBit(h uint64) (word int, bit uint64) {
	return int(h>>8) & 15, 1 << ((h >> 12) & 63)
}

// bind sets the maybe bits of every override host under x's hash.
func (o *overrideSet) bind(x *Index) {
	o.maybe = [16]uint64{}
	mark := func(host string) {
		w, b := bloomBit(x.hash.name(host))
		o.maybe[w] |= b
	}
	for h := range o.domains {
		mark(h)
	}
	for h := range o.urls {
		mark(h)
	}
}

func (o *overrideSet) mightHave(h uint64) bool {
	w, b := bloomBit(h)
	return o.maybe[w]&b != 0
}

type urlOverride struct {
	prefix string
	allow  bool
}

func compileOverrides(allow, deny []string) (overrideSet, error) {
	o := overrideSet{domains: map[string]bool{}, urls: map[string][]urlOverride{}}
	for i := range o.maybe {
		o.maybe[i] = ^uint64(0)
	}
	add := func(target string, isAllow bool) error {
		t, err := ParseOverride(target)
		if err != nil {
			return err
		}
		if t.Path == "" {
			if prev, dup := o.domains[t.Host]; dup && prev != isAllow {
				return fmt.Errorf("override %q is both allowed and denied", target)
			}
			o.domains[t.Host] = isAllow
			return nil
		}
		o.urls[t.Host] = append(o.urls[t.Host], urlOverride{prefix: t.Path, allow: isAllow})
		return nil
	}
	for _, a := range allow {
		if err := add(a, true); err != nil {
			return o, err
		}
	}
	for _, d := range deny {
		if err := add(d, false); err != nil {
			return o, err
		}
	}
	for h, rules := range o.urls {
		// Longest first; for one prefix, deny sorts before allow and wins.
		slices.SortFunc(rules, func(a, b urlOverride) int {
			if d := len(b.prefix) - len(a.prefix); d != 0 {
				return d
			}
			if a.allow != b.allow {
				if a.allow {
					return 1
				}
				return -1
			}
			return 0
		})
		o.urls[h] = rules
	}
	return o, nil
}

// ParseOverride normalises an override or list target: a host (matching the
// host and its subdomains) or a host with a path prefix.
func ParseOverride(target string) (Target, error) {
	t, err := Normalize(target)
	if err != nil {
		return Target{}, err
	}
	if t.Query != "" {
		return Target{}, fmt.Errorf("target %q: a query string cannot be part of an entry", target)
	}
	// "http://host" and "http://host/" mean the whole host: a domain entry,
	// which the DNS filter applies too, rather than a URL entry for "/"
	// that only the proxy could.
	if t.Path == "/" {
		t.Path = ""
	}
	return t, nil
}

// match finds the most specific override for a name level and path.
func (o *overrideSet) match(name, path string) (allow, found bool, prefix string) {
	if path != "" && len(o.urls) > 0 {
		if rules, ok := o.urls[name]; ok {
			for _, r := range rules {
				if pathHasPrefix(path, r.prefix) {
					return r.allow, true, r.prefix
				}
			}
		}
	}
	if a, ok := o.domains[name]; ok {
		return a, true, ""
	}
	return false, false, ""
}

// hasURLs reports whether host or a domain above it has URL overrides.
func (o *overrideSet) hasURLs(host string) bool {
	return len(o.urls) > 0 && anyLevel(host, func(name string) bool { _, ok := o.urls[name]; return ok })
}

// empty reports whether the set has no overrides, to skip the walk.
func (o *overrideSet) empty() bool { return len(o.domains) == 0 && len(o.urls) == 0 }

// clientMap finds the group of a source address, longest prefix first.
type clientMap struct {
	lengths []int // distinct prefix lengths, longest first
	rules   map[netip.Prefix]string
}

func compileClients(rules []ClientRule) clientMap {
	cm := clientMap{rules: map[netip.Prefix]string{}}
	seen := map[int]bool{}
	for _, r := range rules {
		p := canonicalPrefix(r.Prefix)
		cm.rules[p] = r.Group
		// IPv4 and IPv6 lengths share the list; a lookup of the wrong family
		// simply finds nothing at that length.
		if !seen[p.Bits()] {
			seen[p.Bits()] = true
			cm.lengths = append(cm.lengths, p.Bits())
		}
	}
	slices.Sort(cm.lengths)
	slices.Reverse(cm.lengths)
	return cm
}

func (cm *clientMap) lookup(addr netip.Addr) (string, bool) {
	addr = addr.Unmap().WithZone("")
	for _, bits := range cm.lengths {
		if bits > addr.BitLen() {
			continue
		}
		p, err := addr.Prefix(bits)
		if err != nil {
			continue
		}
		if g, ok := cm.rules[p]; ok {
			return g, true
		}
	}
	return "", false
}

// canonicalPrefix masks a range and writes IPv4-mapped IPv6 ranges as IPv4.
func canonicalPrefix(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// ParseClient reads an address or CIDR as a client range.
func ParseClient(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("client range %q: want an address or CIDR such as 10.1.0.0/16: %v", s, err)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("client range %q: zones are not supported", s)
		}
		m := p.Masked()
		if m != p {
			return netip.Prefix{}, fmt.Errorf("client range %q has host bits set; did you mean %s?", s, m)
		}
		return canonicalPrefix(p), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("client %q: want an address or CIDR such as 10.1.0.0/16: %v", s, err)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("client %q: zones are not supported", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
