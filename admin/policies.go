package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"hedgerow/categories"
	"hedgerow/store"
)

// policyRoutes are the pages that edit who gets which policy, and the
// queues that lead to such edits: Policies, Clients, Unblock requests,
// Concerns and Users.
func (s *Server) policyRoutes() []route {
	return slices.Concat(s.policyEditRoutes(), s.clientRoutes(), s.requestRoutes(), s.userRoutes())
}

// policyEditRoutes are the Policies page and its edits: the matrix of
// blocked categories, each group's settings, schedules and overrides (and
// the school-wide overrides), and adding and removing groups.
func (s *Server) policyEditRoutes() []route {
	const get, post = http.MethodGet, http.MethodPost
	return []route{
		{get, "/policies", roleAdmin, true, true, s.policies},
		{post, "/policies", roleAdmin, true, true, s.saveMatrix},
		{post, "/policies/{group}", roleAdmin, true, true, s.saveGroupSettings},
		{post, "/policies/{group}/overrides", roleAdmin, true, true, s.editOverride},
		{post, "/policies/{group}/schedules", roleAdmin, true, true, s.editSchedule},
		// Groups are added and removed under /groups, not /policies: a group
		// may be called anything, "new" included.
		{post, "/groups", roleAdmin, true, true, s.addGroup},
		{post, "/groups/{group}/remove", roleAdmin, true, true, s.removeGroup},
	}
}

// matrixCell is one category × group: blocked or not, and whether the
// category can be unblocked there at all.
type matrixCell struct {
	Group   string `json:"group"`
	Blocked bool   `json:"blocked"`
	Locked  bool   `json:"locked"`
}

// matrixRow is one block category with its cell per group.
type matrixRow struct {
	Slug     string       `json:"slug"`
	Name     string       `json:"name"`
	Severity string       `json:"severity"`
	Locked   string       `json:"locked_why,omitempty"` // why some cell of the row is locked
	Cells    []matrixCell `json:"cells"`
}

// lockedFeed is a locked feed as the policy page names it.
type lockedFeed struct {
	Name       string   `json:"name"`
	Categories []string `json:"categories"`
}

// policiesPage is what GET /policies shows and the API returns. Version is
// the policy version the page was built from; every edit sends it back so
// that a change someone else made in between is not silently overwritten.
type policiesPage struct {
	Version     uint64                `json:"version"`
	Groups      []categories.Group    `json:"groups"`
	School      categories.Group      `json:"school"`
	Matrix      []matrixRow           `json:"matrix"`
	LockedFeeds []lockedFeed          `json:"locked_feeds"`
	Approvable  []categories.Category `json:"-"` // what an allowlist group can approve: allow-kind categories, and any other one approved
	Blockable   []categories.Category `json:"-"` // block-kind categories: for schedules
	Days        []string              `json:"-"`
	// Overrides are the overrides sections by group name ("school" too),
	// with what their forms need.
	Overrides map[string]overrideSection `json:"-"`
}

// overrideSection is one group's overrides table and forms.
type overrideSection struct {
	Group   string
	Rows    []overrideRow
	Version uint64
	CSRF    string
}

type overrideRow struct {
	Kind, Target string
	N            int // numbers the row's form fields
}

func newOverrideSection(g categories.Group, version uint64, csrf string) overrideSection {
	o := overrideSection{Group: g.Name, Version: version, CSRF: csrf}
	for _, t := range g.Allow {
		o.Rows = append(o.Rows, overrideRow{"allow", t, len(o.Rows)})
	}
	for _, t := range g.Deny {
		o.Rows = append(o.Rows, overrideRow{"deny", t, len(o.Rows)})
	}
	return o
}

var weekDays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// readPolicyState reads the policy, its version and the locked feeds in
// one database session. The version is read first: should a change land in
// between, the editor holds an older version than what it shows, and its
// save is refused as a conflict rather than overwriting unseen changes.
func readPolicyState(st *store.Store) (categories.Policy, uint64, []store.FeedInfo, error) {
	v, err := st.PolicyVersion()
	if err != nil {
		return categories.Policy{}, 0, nil, err
	}
	p, err := st.Policy()
	if err != nil {
		return p, 0, nil, err
	}
	feeds, err := st.Feeds()
	return p, v, feeds, err
}

// lockingFeeds maps each category a locked feed supplies to those feeds.
func lockingFeeds(feeds []store.FeedInfo) map[string][]string {
	out := map[string][]string{}
	for _, f := range feeds {
		if !f.Locked {
			continue
		}
		for _, c := range f.Categories {
			out[c] = append(out[c], f.Name)
		}
	}
	return out
}

// cellLock says why a category cannot be unblocked for a group, or "" when
// it can. Critical categories block for everyone whatever a group says; a
// category fed by a locked feed (the IWF's, the Home Office's) stays
// blocked where it is blocked, since unblocking the category is the only
// way round a locked list. Blocking more is always allowed.
func cellLock(c categories.Category, blocked bool, lockedBy map[string][]string) string {
	if c.Severity == categories.SeverityCritical {
		return "illegal content: blocked for every group, it cannot be unblocked"
	}
	if feeds := lockedBy[c.Slug]; len(feeds) > 0 && blocked {
		return "fed by the locked list " + strings.Join(feeds, ", ") + ": a group that blocks it cannot unblock it"
	}
	return ""
}

func (s *Server) policies(c *call) (reply, error) {
	var p categories.Policy
	var page policiesPage
	var feeds []store.FeedInfo
	err := s.d.Read(func(st *store.Store) error {
		var err error
		p, page.Version, feeds, err = readPolicyState(st)
		return err
	})
	if err != nil {
		return reply{}, err
	}
	tax := s.d.Filter.Current().Taxonomy()
	lockedBy := lockingFeeds(feeds)
	page.Groups, page.School, page.Days = p.Groups, p.School, weekDays
	for _, f := range feeds {
		if f.Locked {
			page.LockedFeeds = append(page.LockedFeeds, lockedFeed{f.Name, f.Categories})
		}
	}
	for _, cat := range tax.All() {
		if cat.Kind == categories.KindAllow {
			page.Approvable = append(page.Approvable, cat)
			continue
		}
		page.Blockable = append(page.Blockable, cat)
		row := matrixRow{Slug: cat.Slug, Name: cat.Name, Severity: cat.Severity.String()}
		for _, g := range p.Groups {
			blocked := slices.Contains(g.Blocked, cat.Slug)
			why := cellLock(cat, blocked, lockedBy)
			if why != "" {
				row.Locked = why
			}
			// A critical category blocks whatever the group's list says,
			// so it is shown, and saved, as blocked.
			row.Cells = append(row.Cells, matrixCell{Group: g.Name, Blocked: blocked || why != "", Locked: why != ""})
		}
		page.Matrix = append(page.Matrix, row)
	}
	for _, g := range p.Groups {
		// A block-kind category approved by hand (on the command line)
		// is offered too, so that saving the form does not drop it.
		for _, a := range g.Approved {
			if cat, ok := tax.Lookup(a); ok && !slices.ContainsFunc(page.Approvable, func(x categories.Category) bool { return x.Slug == a }) {
				page.Approvable = append(page.Approvable, *cat)
			}
		}
	}
	if c.api {
		return reply{data: page}, nil
	}
	csrf := ""
	if c.sess != nil { // (a page fetched with an API token has no session)
		csrf = c.sess.csrf
	}
	page.Overrides = map[string]overrideSection{}
	for _, g := range append(slices.Clone(p.Groups), p.School) {
		page.Overrides[g.Name] = newOverrideSection(g, page.Version, csrf)
	}
	return reply{page: "policies.html", title: "Policies", data: page}, nil
}

// editReason is the reason every change must carry, for the audit trail.
func editReason(c *call) (string, error) {
	r := c.value("reason")
	if r == "" {
		return "", badRequest("reason is required: say why you are making this change (it is kept in the audit log)")
	}
	if len(r) > 1000 {
		return "", badRequest("reason is %d characters: want at most 1000", len(r))
	}
	return r, nil
}

// editVersion is the policy version the editor loaded (the hidden field
// "version", or "version" in the API), so that a change made by someone
// else since is detected instead of overwritten.
func editVersion(c *call) (uint64, error) {
	v := c.value("version")
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, badRequest("version %q: want the policy version the page was loaded with (GET /api/v1/policies gives it); reload the page and try again", v)
	}
	return n, nil
}

// policyEditParams reads what every policy change carries: the reason for
// the audit trail and the version the editor loaded.
func policyEditParams(c *call) (reason string, version uint64, err error) {
	if reason, err = editReason(c); err != nil {
		return "", 0, err
	}
	if version, err = editVersion(c); err != nil {
		return "", 0, err
	}
	return reason, version, nil
}

// editSent reports whether a field came with the request. A page's form
// always sends its fields (an unticked checkbox sends nothing, meaning
// off); an API call leaves out what it does not change.
func editSent(c *call, name string) bool {
	_, ok := c.in[name]
	return ok || !c.api
}

// editBool reads an on/off field.
func editBool(c *call, name string) (bool, error) {
	switch v := strings.ToLower(c.value(name)); v {
	case "1", "on", "true", "yes":
		return true, nil
	case "", "0", "off", "false", "no":
		return false, nil
	default:
		return false, badRequest("%s %q: want on or off (true or false)", name, v)
	}
}

// findPolicyGroup returns a pointer into p for in-place edits; "school" is
// the school-wide overrides.
func findPolicyGroup(p *categories.Policy, name string) (*categories.Group, error) {
	g, err := p.GroupNamed(name)
	if err != nil {
		return nil, notFound("%v", err)
	}
	return g, nil
}

// ageGroup is findPolicyGroup for the settings only age groups have.
func ageGroup(p *categories.Policy, name string) (*categories.Group, error) {
	if name == categories.SchoolGroup {
		return nil, badRequest("group %q holds only the school-wide allow and deny overrides; pick an age group", name)
	}
	return findPolicyGroup(p, name)
}

// edit runs a change in one database session and, once it has succeeded
// and the database is closed again, tells the running filter to reload,
// so the change takes effect within a second.
func (s *Server) edit(fn func(st *store.Store) error) error {
	if err := s.d.Write(fn); err != nil {
		return err
	}
	s.d.Changed()
	return nil
}

// changePolicy applies one audited policy change as the caller.
func (s *Server) changePolicy(st *store.Store, c *call, ch store.PolicyChange) error {
	return st.UpdatePolicy(c.actor(), ch)
}

// parseMatrixCells reads the matrix's "block" values, "GROUP:CATEGORY",
// into the blocked categories of each group. Which groups exist is checked
// against the stored policy later.
func parseMatrixCells(tax *categories.Taxonomy, values []string) (map[string]map[string]bool, error) {
	want := map[string]map[string]bool{}
	for _, v := range values {
		g, slug, ok := strings.Cut(strings.TrimSpace(v), ":")
		cat, known := tax.Lookup(slug)
		if !ok || categories.ValidGroupName(g) != nil || !known || cat.Kind != categories.KindBlock {
			return nil, badRequest("block %q: want GROUP:CATEGORY with a group and a blocking category, e.g. ks2:games", v)
		}
		if want[g] == nil {
			want[g] = map[string]bool{}
		}
		want[g][slug] = true
	}
	return want, nil
}

// saveMatrix saves the whole matrix: every group's blocked categories at
// once, from the "block" values "GROUP:CATEGORY".
func (s *Server) saveMatrix(c *call) (reply, error) {
	reason, version, err := policyEditParams(c)
	if err != nil {
		return reply{}, err
	}
	tax := s.d.Filter.Current().Taxonomy()
	want, err := parseMatrixCells(tax, c.values("block"))
	if err != nil {
		return reply{}, err
	}
	var changes []string
	err = s.d.Write(func(st *store.Store) error {
		p, current, feeds, err := readPolicyState(st)
		if err != nil {
			return err
		}
		if current != version {
			return fmt.Errorf("groups matrix: %w", store.ErrConflict)
		}
		lockedBy := lockingFeeds(feeds)
		known := map[string]bool{}
		blocked := map[string][]string{}
		for _, g := range p.Groups {
			known[g.Name] = true
			var list []string
			for _, cat := range tax.All() {
				has := slices.Contains(g.Blocked, cat.Slug)
				if cat.Kind != categories.KindBlock {
					if has { // not in the matrix: kept as it is
						list = append(list, cat.Slug)
					}
					continue
				}
				on := want[g.Name][cat.Slug]
				if why := cellLock(cat, has, lockedBy); why != "" && !on {
					return badRequest("%s for %s is locked (%s); leave it ticked", cat.Slug, g.Name, why)
				}
				if on {
					list = append(list, cat.Slug)
				}
				switch {
				case on && !has:
					changes = append(changes, "block "+g.Name+" "+cat.Slug)
				case !on && has:
					changes = append(changes, "unblock "+g.Name+" "+cat.Slug)
				}
			}
			blocked[g.Name] = list
		}
		for g := range want {
			if !known[g] {
				return badRequest("block: group %q: no such group (it may have been removed since the page was loaded; reload it)", g)
			}
		}
		if len(changes) == 0 {
			return nil
		}
		return s.changePolicy(st, c, store.PolicyChange{Action: "groups matrix: " + strings.Join(changes, "; "), Reason: reason, Version: version,
			Apply: func(p *categories.Policy) (string, error) {
				for i := range p.Groups {
					b, ok := blocked[p.Groups[i].Name]
					if !ok {
						return "", fmt.Errorf("group %q appeared while saving; reload the page", p.Groups[i].Name)
					}
					p.Groups[i].Blocked = b
				}
				// Several groups change at once; the action lists every cell.
				return "groups", nil
			}})
	})
	if err != nil {
		return reply{}, err
	}
	msg := "Nothing changed: the matrix was saved as it was."
	if len(changes) > 0 {
		s.d.Changed()
		msg = "Saved: " + strings.Join(changes, "; ") + "."
	}
	return reply{redirect: "/policies#matrix", message: msg, data: map[string]any{"changes": changes}}, nil
}

// saveGroupSettings saves one group's settings: mode, approved categories,
// safe search, YouTube, the proxy switches and the description.
func (s *Server) saveGroupSettings(c *call) (reply, error) {
	name := c.r.PathValue("group")
	reason, version, err := policyEditParams(c)
	if err != nil {
		return reply{}, err
	}
	edit, err := groupSettingsEdit(c, s.d.Filter.Current().Taxonomy())
	if err != nil {
		return reply{}, err
	}
	var changed []string
	err = s.d.Write(func(st *store.Store) error {
		p, current, _, err := readPolicyState(st)
		if err != nil {
			return err
		}
		if current != version {
			return fmt.Errorf("groups settings %s: %w", name, store.ErrConflict)
		}
		g, err := ageGroup(&p, name)
		if err != nil {
			return err
		}
		if changed = edit(g); len(changed) == 0 {
			return nil
		}
		return s.changePolicy(st, c, store.PolicyChange{Action: "groups settings " + name + ": " + strings.Join(changed, ", "), Reason: reason, Version: version,
			Apply: func(p *categories.Policy) (string, error) {
				g, err := ageGroup(p, name)
				if err != nil {
					return "", err
				}
				edit(g)
				return name, nil
			}})
	})
	if err != nil {
		return reply{}, err
	}
	msg := fmt.Sprintf("Nothing changed in %s.", name)
	if len(changed) > 0 {
		s.d.Changed()
		msg = fmt.Sprintf("Saved %s: %s.", name, strings.Join(changed, ", "))
	}
	return reply{redirect: "/policies#group-" + name, message: msg, data: map[string]any{"changes": changed}}, nil
}

// groupSettingsEdit reads the settings form and returns the edit it asks
// for: a function that applies it to a group and says what it changed.
func groupSettingsEdit(c *call, tax *categories.Taxonomy) (func(g *categories.Group) []string, error) {
	var edits []func(g *categories.Group) string
	onOff := map[bool]string{true: "on", false: "off"}
	if editSent(c, "mode") {
		m := categories.Mode(c.value("mode"))
		if m != categories.ModeFilter && m != categories.ModeAllowlist {
			return nil, badRequest("mode %q: want %s or %s", m, categories.ModeFilter, categories.ModeAllowlist)
		}
		edits = append(edits, func(g *categories.Group) string {
			if g.Mode == m {
				return ""
			}
			g.Mode = m
			return "mode " + string(m)
		})
	}
	if editSent(c, "approved") {
		var approved []string
		for _, a := range c.values("approved") {
			a = strings.TrimSpace(a)
			if _, ok := tax.Lookup(a); !ok {
				return nil, badRequest("approved %q: no such category", a)
			}
			if !slices.Contains(approved, a) {
				approved = append(approved, a)
			}
		}
		edits = append(edits, func(g *categories.Group) string {
			if slices.Equal(slices.Sorted(slices.Values(g.Approved)), slices.Sorted(slices.Values(approved))) {
				return ""
			}
			g.Approved = slices.Clone(approved)
			return "approved [" + strings.Join(approved, " ") + "]"
		})
	}
	if editSent(c, "youtube") {
		yt := strings.ToLower(c.value("youtube"))
		switch yt {
		case "off", "":
			yt = ""
		case categories.YouTubeStrict, categories.YouTubeModerate:
		default:
			return nil, badRequest("youtube %q: want %s, %s or off", yt, categories.YouTubeStrict, categories.YouTubeModerate)
		}
		edits = append(edits, func(g *categories.Group) string {
			if g.YouTube == yt {
				return ""
			}
			g.YouTube = yt
			if yt == "" {
				return "YouTube restricted mode off"
			}
			return "YouTube restricted mode " + yt
		})
	}
	if editSent(c, "description") {
		d := c.value("description")
		if len(d) > 200 {
			return nil, badRequest("description is %d characters: want at most 200", len(d))
		}
		edits = append(edits, func(g *categories.Group) string {
			if g.Description == d {
				return ""
			}
			g.Description = d
			return fmt.Sprintf("description %q", d)
		})
	}
	for _, sw := range []struct {
		field, label string
		of           func(g *categories.Group) *bool
	}{
		{"safe_search", "safe search", func(g *categories.Group) *bool { return &g.SafeSearch }},
		{"intercept", "HTTPS interception", func(g *categories.Group) *bool { return &g.Intercept }},
		{"proxy_login", "proxy login", func(g *categories.Group) *bool { return &g.ProxyLogin }},
		{"monitor_searches", "search monitoring", func(g *categories.Group) *bool { return &g.MonitorSearches }},
		{"context", "incident context", func(g *categories.Group) *bool { return &g.Context }},
	} {
		if !editSent(c, sw.field) {
			continue
		}
		on, err := editBool(c, sw.field)
		if err != nil {
			return nil, err
		}
		edits = append(edits, func(g *categories.Group) string {
			if p := sw.of(g); *p != on {
				*p = on
				return sw.label + " " + onOff[on]
			}
			return ""
		})
	}
	return func(g *categories.Group) []string {
		var changed []string
		for _, e := range edits {
			if what := e(g); what != "" {
				changed = append(changed, what)
			}
		}
		return changed
	}, nil
}

// guardAllowTarget refuses an allow override that could never take effect
// because it would try to unblock what nobody may unblock: a critical
// category or an entry of a locked feed (as the CLI's groups allow does).
func guardAllowTarget(snap *categories.Snapshot, t categories.Target) error {
	cl := snap.Index().Classify(t.Host, t.Path)
	tax := snap.Taxonomy()
	if crit := cl.Cats & tax.SeverityMask(categories.SeverityCritical); crit != 0 {
		return badRequest("%s is listed as %s (illegal content); it cannot be allowed for anyone",
			t.Host+t.Path, strings.Join(tax.Slugs(crit), ", "))
	}
	if cl.Locked != 0 {
		return badRequest("%s is on a locked list (%s); locked lists cannot be overridden, only replaced by their next import",
			t.Host+t.Path, strings.Join(tax.Slugs(cl.Locked), ", "))
	}
	return nil
}

// setOverride adds (or with remove, removes) an allow or deny override in
// a group or "school". One target has one action: allowing replaces a deny
// and the other way round.
func setOverride(p *categories.Policy, group, target string, allow, remove bool) (string, error) {
	g, err := findPolicyGroup(p, group)
	if err != nil {
		return "", err
	}
	verb := map[bool]string{true: "allow", false: "deny"}[allow]
	mine, other := &g.Deny, &g.Allow
	if allow {
		mine, other = &g.Allow, &g.Deny
	}
	if remove {
		if !slices.Contains(*mine, target) {
			return "", badRequest("group %s has no %s override for %s", group, verb, target)
		}
		*mine = slices.DeleteFunc(*mine, func(s string) bool { return s == target })
		return group, nil
	}
	*other = slices.DeleteFunc(*other, func(s string) bool { return s == target })
	if !slices.Contains(*mine, target) {
		*mine = append(*mine, target)
	}
	return group, nil
}

// editOverride adds or removes one allow or deny override: fields kind
// (allow or deny), target, and action (add, the default, or remove).
func (s *Server) editOverride(c *call) (reply, error) {
	group := c.r.PathValue("group")
	reason, version, err := policyEditParams(c)
	if err != nil {
		return reply{}, err
	}
	kind := c.value("kind")
	if kind != "allow" && kind != "deny" {
		return reply{}, badRequest("kind %q: want allow or deny", kind)
	}
	remove, err := removeAction(c)
	if err != nil {
		return reply{}, err
	}
	raw := c.value("target")
	t, err := categories.ParseOverride(raw)
	if err != nil {
		return reply{}, badRequest("target %q: want a domain (example.org) or a site with a path (example.org/page): %v", raw, err)
	}
	target := t.Host + t.Path
	if kind == "allow" && !remove {
		if err := guardAllowTarget(s.d.Filter.Current(), t); err != nil {
			return reply{}, err
		}
	}
	action := "groups " + kind + " " + group + " " + target
	if remove {
		action += " --remove"
	}
	err = s.edit(func(st *store.Store) error {
		return s.changePolicy(st, c, store.PolicyChange{Action: action, Reason: reason, Version: version,
			Apply: func(p *categories.Policy) (string, error) {
				return setOverride(p, group, target, kind == "allow", remove)
			}})
	})
	if err != nil {
		return reply{}, err
	}
	who := "group " + group
	if group == categories.SchoolGroup {
		who = "every group (school-wide)"
	}
	msg := fmt.Sprintf("%s now %s %s.", who, map[string]string{"allow": "allows", "deny": "denies"}[kind], target)
	if remove {
		msg = fmt.Sprintf("Removed the %s override for %s from %s.", kind, target, who)
	}
	return reply{redirect: "/policies#group-" + group, message: msg}, nil
}

// removeAction reads the "action" field of an add-or-remove form.
func removeAction(c *call) (bool, error) {
	switch a := c.value("action"); a {
	case "", "add":
		return false, nil
	case "remove":
		return true, nil
	default:
		return false, badRequest("action %q: want add or remove", a)
	}
}

// editSchedule adds a timetable window to a group (days, from, to, allow,
// block) or removes one (action remove, index: its number from 1, as the
// page lists them; the version makes sure it is still the same window).
func (s *Server) editSchedule(c *call) (reply, error) {
	group := c.r.PathValue("group")
	reason, version, err := policyEditParams(c)
	if err != nil {
		return reply{}, err
	}
	remove, err := removeAction(c)
	if err != nil {
		return reply{}, err
	}
	var apply func(g *categories.Group, lockedBy map[string][]string) error
	var action, msg string
	if remove {
		idx, err := strconv.Atoi(c.value("index"))
		if err != nil || idx < 1 {
			return reply{}, badRequest("index %q: want the number of the window to remove (1 for the first)", c.value("index"))
		}
		action, msg = fmt.Sprintf("groups schedule %s --remove %d", group, idx), fmt.Sprintf("Removed window %d from %s.", idx, group)
		apply = func(g *categories.Group, _ map[string][]string) error {
			if idx > len(g.Schedules) {
				return badRequest("index %d: group %s has %d timetable windows", idx, group, len(g.Schedules))
			}
			g.Schedules = slices.Delete(g.Schedules, idx-1, idx)
			return nil
		}
	} else {
		sc, err := scheduleFrom(c)
		if err != nil {
			return reply{}, err
		}
		desc := fmt.Sprintf("%s %s-%s allow [%s] block [%s]", strings.Join(sc.Days, ","), sc.From, sc.To, strings.Join(sc.Allow, ","), strings.Join(sc.Block, ","))
		action, msg = "groups schedule "+group+" "+desc, "Added to "+group+": "+desc+"."
		tax := s.d.Filter.Current().Taxonomy()
		apply = func(g *categories.Group, lockedBy map[string][]string) error {
			// A window must not open what the matrix keeps locked.
			for _, slug := range sc.Allow {
				if cat, ok := tax.Lookup(slug); ok {
					if why := cellLock(*cat, slices.Contains(g.Blocked, slug), lockedBy); why != "" {
						return badRequest("allow %q: %s for %s is locked (%s)", slug, slug, group, why)
					}
				}
			}
			g.Schedules = append(g.Schedules, sc)
			return nil
		}
	}
	err = s.edit(func(st *store.Store) error {
		feeds, err := st.Feeds()
		if err != nil {
			return err
		}
		lockedBy := lockingFeeds(feeds)
		return s.changePolicy(st, c, store.PolicyChange{Action: action, Reason: reason, Version: version,
			Apply: func(p *categories.Policy) (string, error) {
				g, err := ageGroup(p, group)
				if err != nil {
					return "", err
				}
				return group, apply(g, lockedBy)
			}})
	})
	if err != nil {
		return reply{}, err
	}
	return reply{redirect: "/policies#group-" + group, message: msg}, nil
}

// scheduleFrom reads a new timetable window. Days come as ticked boxes or
// as one spec such as "mon-fri"; the rest is checked by the policy's own
// validation, whose errors name the field.
func scheduleFrom(c *call) (categories.Schedule, error) {
	var sc categories.Schedule
	spec := strings.Join(c.values("days"), ",")
	if strings.TrimSpace(spec) == "" {
		return sc, badRequest("days: tick at least one day (or give a spec such as mon-fri)")
	}
	days, err := categories.ParseDays(spec)
	if err != nil {
		return sc, badRequest("%v", err)
	}
	slices.SortFunc(days, func(a, b string) int { return slices.Index(weekDays, a) - slices.Index(weekDays, b) })
	sc.Days = slices.Compact(days)
	sc.From, sc.To = c.value("from"), c.value("to")
	for _, f := range []struct {
		name string
		to   *[]string
	}{{"allow", &sc.Allow}, {"block", &sc.Block}} {
		for _, v := range c.values(f.name) {
			for _, slug := range strings.Split(v, ",") {
				if slug = strings.TrimSpace(slug); slug != "" && !slices.Contains(*f.to, slug) {
					*f.to = append(*f.to, slug)
				}
			}
		}
	}
	return sc, nil
}

// addGroup creates a group, blocking what every group blocks by default
// (critical and high categories), or as a copy of another ("like").
func (s *Server) addGroup(c *call) (reply, error) {
	reason, version, err := policyEditParams(c)
	if err != nil {
		return reply{}, err
	}
	name, like := c.value("name"), c.value("like")
	if err := categories.ValidGroupName(name); err != nil {
		return reply{}, badRequest("name: %v", err)
	}
	mode := categories.Mode(c.value("mode"))
	if mode != "" && mode != categories.ModeFilter && mode != categories.ModeAllowlist {
		return reply{}, badRequest("mode %q: want %s or %s", mode, categories.ModeFilter, categories.ModeAllowlist)
	}
	desc := c.value("description")
	if len(desc) > 200 {
		return reply{}, badRequest("description is %d characters: want at most 200", len(desc))
	}
	tax := s.d.Filter.Current().Taxonomy()
	err = s.edit(func(st *store.Store) error {
		return s.changePolicy(st, c, store.PolicyChange{Action: "groups add " + name, Reason: reason, Version: version,
			Apply: func(p *categories.Policy) (string, error) {
				if _, err := findPolicyGroup(p, name); err == nil {
					return "", badRequest("group %q already exists", name)
				}
				g := categories.Group{Name: name, Mode: categories.ModeFilter, Description: desc}
				if like != "" {
					src, err := ageGroup(p, like)
					if err != nil {
						return "", badRequest("like: %v", err)
					}
					g = *src
					g.Name = name
					g.Blocked, g.Approved = slices.Clone(src.Blocked), slices.Clone(src.Approved)
					g.Allow, g.Deny, g.Schedules = slices.Clone(src.Allow), slices.Clone(src.Deny), slices.Clone(src.Schedules)
					if desc != "" {
						g.Description = desc
					}
				} else {
					for _, cat := range tax.All() {
						if cat.Kind == categories.KindBlock && cat.Severity >= categories.SeverityHigh {
							g.Blocked = append(g.Blocked, cat.Slug)
						}
					}
				}
				if mode != "" {
					g.Mode = mode
				}
				p.Groups = append(p.Groups, g)
				return name, nil
			}})
	})
	if err != nil {
		return reply{}, err
	}
	return reply{redirect: "/policies#group-" + name, message: "Group " + name + " added; map client ranges to it on the Clients page."}, nil
}

// removeGroup deletes a group no client range and no user still uses:
// either would otherwise fall into a group that does not exist, which
// blocks everything.
func (s *Server) removeGroup(c *call) (reply, error) {
	name := c.r.PathValue("group")
	reason, version, err := policyEditParams(c)
	if err != nil {
		return reply{}, err
	}
	err = s.edit(func(st *store.Store) error {
		users, err := st.Users()
		if err != nil {
			return err
		}
		for _, u := range users {
			if u.Group == name {
				return badRequest("user %s is in group %q; move them to another group first (Clients page)", u.Name, name)
			}
		}
		return s.changePolicy(st, c, store.PolicyChange{Action: "groups remove " + name, Reason: reason, Version: version,
			Apply: func(p *categories.Policy) (string, error) {
				if _, err := ageGroup(p, name); err != nil {
					return "", err
				}
				for _, cl := range p.Clients {
					if cl.Group == name {
						return "", badRequest("client range %s still uses group %q; map it to another group first (Clients page)", cl.Prefix, name)
					}
				}
				p.Groups = slices.DeleteFunc(p.Groups, func(g categories.Group) bool { return g.Name == name })
				return name, nil
			}})
	})
	if err != nil {
		return reply{}, err
	}
	return reply{redirect: "/policies", message: "Group " + name + " removed."}, nil
}
