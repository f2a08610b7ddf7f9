package categories

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// decEntries is the list fixture of the Decide tests.
var decEntries = []ixEntry{
	{target: "csam.example", cats: []string{"child-abuse"}},
	{target: "iwf.example", cats: []string{"child-abuse"}, locked: true},
	{target: "terror.example/page", cats: []string{"terrorism"}, locked: true},
	{target: "adult.example", cats: []string{"adult"}},
	{target: "games.example", cats: []string{"games"}},
	{target: "social.example", cats: []string{"social-networks"}},
	{target: "shop.example", cats: []string{"shopping"}},
	{target: "lockedgames.example", cats: []string{"games"}, locked: true},
	{target: "lockedadult.example", cats: []string{"adult"}, locked: true},
	{target: "kids.example", cats: []string{"kids"}},
	{target: "edu.example", cats: []string{"education"}},
	{target: "kidsgames.example", cats: []string{"kids", "games"}},
	{target: "ads.kids.example", cats: []string{"advertising"}},
	{target: "news.example", cats: []string{"news"}},
	{target: "www.mixed.example", cats: []string{"games"}},
	{target: "mixed.example", cats: []string{"adult"}},
	{target: "www.both.example", cats: []string{"adult", "games"}},
	{target: "both.example", cats: []string{"adult"}},
	{target: "video.example/watch", cats: []string{"streaming", "forums"}},
	{target: "video.example", cats: []string{"education"}},
	{target: "multi.example", cats: []string{"chat", "gambling", "terrorism"}},
	{target: "1.2.3.4", cats: []string{"malware"}},
	{target: "bet.example", cats: []string{"chat", "gambling"}},
	{target: "chat.bet.example", cats: []string{"chat"}},
}

// decMonday is 12:45 on Monday 23 November 2026 in London (GMT).
var decLondon = mustLoadLocation("Europe/London")
var decMonday = time.Date(2026, 11, 23, 12, 45, 0, 0, decLondon)

func mustLoadLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func decSnapshot(tb testing.TB, edit func(p *Policy)) *Snapshot {
	tb.Helper()
	p := DefaultPolicy(testTax)
	if edit != nil {
		edit(&p)
	}
	s, err := NewSnapshot(testTax, buildTestIndex(tb, decEntries), p)
	if err != nil {
		tb.Fatalf("NewSnapshot: %v", err)
	}
	return s
}

// decCase is one Decide call and the verdict it must give.
type decCase struct {
	name       string
	edit       func(p *Policy)
	group      string
	host, path string
	when       time.Time // decMonday when zero

	action    Action
	rule      Rule
	category  string // slug; "" for none
	match     string
	matchPath string
	scheduled bool
}

func runDecideCases(t *testing.T, cases []decCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			s := decSnapshot(t, tt.edit)
			when := tt.when
			if when.IsZero() {
				when = decMonday
			}
			v := s.Decide(tt.group, tt.host, tt.path, when)
			checkVerdict(t, v, tt)
		})
	}
}

func checkVerdict(t *testing.T, v Verdict, tt decCase) {
	t.Helper()
	cat := ""
	if v.Category != nil {
		cat = v.Category.Slug
	}
	if v.Action != tt.action || v.Rule != tt.rule || cat != tt.category || v.Match != tt.match ||
		v.MatchPath != tt.matchPath || v.Scheduled != tt.scheduled || v.Group != tt.group {
		t.Errorf("Decide(%q, %q, %q) = %s %s cat=%q match=%q%q scheduled=%v group=%q\n"+
			"                         want %s %s cat=%q match=%q%q scheduled=%v\n reason: %s",
			tt.group, tt.host, tt.path, v.Action, v.Rule, cat, v.Match, v.MatchPath, v.Scheduled, v.Group,
			tt.action, tt.rule, tt.category, tt.match, tt.matchPath, tt.scheduled, v.Reason())
	}
}

func allowOverrides(group string, allow, deny []string) func(p *Policy) {
	return func(p *Policy) {
		if group == SchoolGroup {
			p.School.Allow, p.School.Deny = allow, deny
			return
		}
		g := groupNamed(p, group)
		g.Allow, g.Deny = allow, deny
	}
}

func both(edits ...func(p *Policy)) func(p *Policy) {
	return func(p *Policy) {
		for _, e := range edits {
			e(p)
		}
	}
}

func TestDecideCritical(t *testing.T) {
	everyGroup := []string{"early-years-ks1", "ks2", "ks3-ks4", "sixth-form", "staff"}
	var cases []decCase
	for _, g := range everyGroup {
		openUp := both(
			allowOverrides(g, []string{"csam.example", "iwf.example", "terror.example", "multi.example"}, nil),
			allowOverrides(SchoolGroup, []string{"csam.example", "iwf.example", "terror.example/page", "multi.example"}, nil),
		)
		cases = append(cases,
			decCase{name: g + "/unlocked csam", group: g, host: "csam.example",
				action: Block, rule: RuleCritical, category: "child-abuse", match: "csam.example"},
			decCase{name: g + "/csam with group and school allow", edit: openUp, group: g, host: "www.csam.example",
				action: Block, rule: RuleCritical, category: "child-abuse", match: "csam.example"},
			decCase{name: g + "/locked csam with allows", edit: openUp, group: g, host: "iwf.example", path: "/",
				action: Block, rule: RuleCritical, category: "child-abuse", match: "iwf.example"},
			decCase{name: g + "/terror URL with allows", edit: openUp, group: g, host: "terror.example", path: "/page/2",
				action: Block, rule: RuleCritical, category: "terrorism", match: "terror.example", matchPath: "/page"},
			decCase{name: g + "/critical beats high and low", edit: openUp, group: g, host: "multi.example",
				action: Block, rule: RuleCritical, category: "terrorism", match: "multi.example"},
		)
	}
	// A critical category blocks even for a group that does not list it.
	cases = append(cases, decCase{name: "group not listing critical",
		edit: func(p *Policy) {
			p.Groups = append(p.Groups, Group{Name: "open", Mode: ModeFilter})
			polGroup(t, p, "open").Allow = []string{"csam.example"}
		},
		group: "open", host: "csam.example", action: Block, rule: RuleCritical, category: "child-abuse", match: "csam.example"})
	// The terrorism URL entry is not a whole-domain block.
	cases = append(cases, decCase{name: "terror host without path", group: "ks2", host: "terror.example", action: Allow, rule: RuleDefault})
	runDecideCases(t, cases)
}

func TestDecideLocked(t *testing.T) {
	runDecideCases(t, []decCase{
		{name: "locked games blocked for ks2", group: "ks2", host: "lockedgames.example",
			action: Block, rule: RuleLocked, category: "games", match: "lockedgames.example"},
		{name: "locked games: group allow cannot unblock", edit: allowOverrides("ks2", []string{"lockedgames.example"}, nil),
			group: "ks2", host: "www.lockedgames.example",
			action: Block, rule: RuleLocked, category: "games", match: "lockedgames.example"},
		{name: "locked games: school allow cannot unblock", edit: allowOverrides(SchoolGroup, []string{"lockedgames.example/"}, nil),
			group: "ks2", host: "lockedgames.example", path: "/play",
			action: Block, rule: RuleLocked, category: "games", match: "lockedgames.example"},
		{name: "locked games: staff does not block games", group: "staff", host: "lockedgames.example",
			action: Allow, rule: RuleDefault},
		{name: "locked games: staff deny still applies", edit: allowOverrides("staff", nil, []string{"lockedgames.example"}),
			group: "staff", host: "lockedgames.example",
			action: Block, rule: RuleGroupDeny, match: "lockedgames.example"},
		{name: "locked adult, allowed by every override", edit: both(
			allowOverrides("staff", []string{"lockedadult.example"}, nil),
			allowOverrides(SchoolGroup, []string{"lockedadult.example"}, nil)),
			group: "staff", host: "lockedadult.example",
			action: Block, rule: RuleLocked, category: "adult", match: "lockedadult.example"},
		{name: "locked adult in a group that does not block adult", edit: func(p *Policy) {
			p.Groups = append(p.Groups, Group{Name: "research", Mode: ModeFilter, Blocked: []string{"games"}})
		}, group: "research", host: "lockedadult.example", action: Allow, rule: RuleDefault},
		{name: "unlocked adult: group allow unblocks", edit: allowOverrides("staff", []string{"adult.example"}, nil),
			group: "staff", host: "adult.example",
			action: Allow, rule: RuleGroupAllow, match: "adult.example"},
		{name: "locked category unblocked by the timetable", edit: func(p *Policy) {
			polGroup(t, p, "ks2").Schedules = []Schedule{{Days: []string{"mon"}, From: "12:00", To: "13:00", Allow: []string{"games"}}}
		}, group: "ks2", host: "lockedgames.example", action: Allow, rule: RuleDefault, scheduled: true},
	})
}

func TestDecideOverrides(t *testing.T) {
	runDecideCases(t, []decCase{
		{name: "group deny beats school allow", edit: both(
			allowOverrides("ks3-ks4", nil, []string{"news.example"}),
			allowOverrides(SchoolGroup, []string{"news.example"}, nil)),
			group: "ks3-ks4", host: "news.example",
			action: Block, rule: RuleGroupDeny, match: "news.example"},
		{name: "group allow beats school deny", edit: both(
			allowOverrides("ks3-ks4", []string{"news.example"}, nil),
			allowOverrides(SchoolGroup, nil, []string{"news.example"})),
			group: "ks3-ks4", host: "news.example",
			action: Allow, rule: RuleGroupAllow, match: "news.example"},
		{name: "group level beats a more specific school override", edit: both(
			allowOverrides("ks3-ks4", nil, []string{"example.org"}),
			allowOverrides(SchoolGroup, []string{"www.example.org"}, nil)),
			group: "ks3-ks4", host: "www.example.org",
			action: Block, rule: RuleGroupDeny, match: "example.org"},
		{name: "group allow beats category", edit: allowOverrides("ks2", []string{"games.example"}, nil),
			group: "ks2", host: "games.example", action: Allow, rule: RuleGroupAllow, match: "games.example"},
		{name: "group allow covers subdomains", edit: allowOverrides("ks2", []string{"games.example"}, nil),
			group: "ks2", host: "a.b.games.example", path: "/x", action: Allow, rule: RuleGroupAllow, match: "games.example"},
		{name: "group allow beats a high category", edit: allowOverrides("ks2", []string{"adult.example"}, nil),
			group: "ks2", host: "adult.example", action: Allow, rule: RuleGroupAllow, match: "adult.example"},
		{name: "group allow for another group does nothing", edit: allowOverrides("ks3-ks4", []string{"games.example"}, nil),
			group: "ks2", host: "games.example", action: Block, rule: RuleCategory, category: "games", match: "games.example"},
		{name: "group deny blocks an unlisted site", edit: allowOverrides("staff", nil, []string{"example.org"}),
			group: "staff", host: "example.org", action: Block, rule: RuleGroupDeny, match: "example.org"},
		{name: "override look-alike does not match", edit: allowOverrides("staff", nil, []string{"example.org"}),
			group: "staff", host: "notexample.org", action: Allow, rule: RuleDefault},
		// A whole top-level domain, which the index never holds as an entry.
		{name: "group deny of a top-level domain", edit: allowOverrides("staff", nil, []string{"zip"}),
			group: "staff", host: "www.files.zip", action: Block, rule: RuleGroupDeny, match: "zip"},
		{name: "school deny of a top-level domain", edit: allowOverrides(SchoolGroup, nil, []string{"xxx"}),
			group: "sixth-form", host: "example.xxx", action: Block, rule: RuleSchoolDeny, match: "xxx"},
		{name: "a top-level domain override yields to a more specific one", edit: both(
			allowOverrides(SchoolGroup, nil, []string{"zip"}), allowOverrides(SchoolGroup, []string{"docs.zip"}, nil)),
			group: "staff", host: "a.docs.zip", action: Allow, rule: RuleSchoolAllow, match: "docs.zip"},
		{name: "a top-level domain override does not match another", edit: allowOverrides("staff", nil, []string{"zip"}),
			group: "staff", host: "zip.example.org", action: Allow, rule: RuleDefault},

		// Most specific wins within a level.
		{name: "allow www beats deny parent (www)", edit: allowOverrides("ks2", []string{"www.example.com"}, []string{"example.com"}),
			group: "ks2", host: "www.example.com", action: Allow, rule: RuleGroupAllow, match: "www.example.com"},
		{name: "allow www beats deny parent (below www)", edit: allowOverrides("ks2", []string{"www.example.com"}, []string{"example.com"}),
			group: "ks2", host: "a.www.example.com", action: Allow, rule: RuleGroupAllow, match: "www.example.com"},
		{name: "allow www beats deny parent (parent)", edit: allowOverrides("ks2", []string{"www.example.com"}, []string{"example.com"}),
			group: "ks2", host: "example.com", action: Block, rule: RuleGroupDeny, match: "example.com"},
		{name: "allow www beats deny parent (sibling)", edit: allowOverrides("ks2", []string{"www.example.com"}, []string{"example.com"}),
			group: "ks2", host: "mail.example.com", action: Block, rule: RuleGroupDeny, match: "example.com"},
		{name: "deny sub beats allow parent", edit: allowOverrides("ks2", []string{"example.com"}, []string{"ads.example.com"}),
			group: "ks2", host: "x.ads.example.com", action: Block, rule: RuleGroupDeny, match: "ads.example.com"},
		{name: "URL allow beats host deny", edit: allowOverrides("ks2", []string{"example.com/homework"}, []string{"example.com"}),
			group: "ks2", host: "example.com", path: "/homework/week1",
			action: Allow, rule: RuleGroupAllow, match: "example.com", matchPath: "/homework"},
		{name: "URL allow: other path still denied", edit: allowOverrides("ks2", []string{"example.com/homework"}, []string{"example.com"}),
			group: "ks2", host: "example.com", path: "/homeworkx",
			action: Block, rule: RuleGroupDeny, match: "example.com"},
		{name: "URL allow: DNS sees the host deny", edit: allowOverrides("ks2", []string{"example.com/homework"}, []string{"example.com"}),
			group: "ks2", host: "example.com", action: Block, rule: RuleGroupDeny, match: "example.com"},
		{name: "longer URL prefix wins", edit: allowOverrides("ks2", []string{"example.com/a"}, []string{"example.com/a/b"}),
			group: "ks2", host: "example.com", path: "/a/b/c",
			action: Block, rule: RuleGroupDeny, match: "example.com", matchPath: "/a/b"},
		{name: "shorter URL prefix covers the rest", edit: allowOverrides("ks2", []string{"example.com/a"}, []string{"example.com/a/b"}),
			group: "ks2", host: "example.com", path: "/a/c",
			action: Allow, rule: RuleGroupAllow, match: "example.com", matchPath: "/a"},
		{name: "longer host beats URL of parent", edit: allowOverrides("ks2", []string{"www.example.com"}, []string{"example.com/x"}),
			group: "ks2", host: "www.example.com", path: "/x",
			action: Allow, rule: RuleGroupAllow, match: "www.example.com"},
		{name: "deny wins a tie", edit: allowOverrides("ks2", []string{"example.com/a"}, []string{"example.com/a"}),
			group: "ks2", host: "example.com", path: "/a",
			action: Block, rule: RuleGroupDeny, match: "example.com", matchPath: "/a"},
		{name: "deny wins a tie (allow listed twice)", edit: allowOverrides("ks2", []string{"example.com/a", "https://example.com/a"}, []string{"example.com/a"}),
			group: "ks2", host: "example.com", path: "/a/b",
			action: Block, rule: RuleGroupDeny, match: "example.com", matchPath: "/a"},
		{name: "URL override on an IP", edit: allowOverrides("ks2", nil, []string{"http://192.0.2.1/x"}),
			group: "ks2", host: "192.0.2.1", path: "/x", action: Block, rule: RuleGroupDeny, match: "192.0.2.1", matchPath: "/x"},

		// School-wide overrides apply when the group has none.
		{name: "school allow unblocks a category", edit: allowOverrides(SchoolGroup, []string{"games.example"}, nil),
			group: "ks2", host: "games.example", action: Allow, rule: RuleSchoolAllow, match: "games.example"},
		{name: "school deny blocks an unlisted site", edit: allowOverrides(SchoolGroup, nil, []string{"example.net"}),
			group: "staff", host: "www.example.net", action: Block, rule: RuleSchoolDeny, match: "example.net"},
		{name: "school URL override", edit: allowOverrides(SchoolGroup, []string{"https://social.example/school-page"}, nil),
			group: "ks2", host: "social.example", path: "/school-page",
			action: Allow, rule: RuleSchoolAllow, match: "social.example", matchPath: "/school-page"},
		{name: "school URL override: other paths", edit: allowOverrides(SchoolGroup, []string{"https://social.example/school-page"}, nil),
			group: "ks2", host: "social.example", path: "/other",
			action: Block, rule: RuleCategory, category: "social-networks", match: "social.example"},
		{name: "school most specific wins", edit: allowOverrides(SchoolGroup, []string{"www.example.net"}, []string{"example.net"}),
			group: "staff", host: "www.example.net", action: Allow, rule: RuleSchoolAllow, match: "www.example.net"},
		{name: "group override at an unrelated host leaves school override", edit: both(
			allowOverrides("ks2", nil, []string{"other.example"}),
			allowOverrides(SchoolGroup, []string{"games.example"}, nil)),
			group: "ks2", host: "games.example", action: Allow, rule: RuleSchoolAllow, match: "games.example"},
	})
}

func TestDecideCategories(t *testing.T) {
	runDecideCases(t, []decCase{
		{name: "unlisted", group: "ks2", host: "example.org", action: Allow, rule: RuleDefault},
		{name: "listed, not blocked", group: "staff", host: "games.example", action: Allow, rule: RuleDefault},
		{name: "low category", group: "ks2", host: "games.example", action: Block, rule: RuleCategory, category: "games", match: "games.example"},
		{name: "high category for staff", group: "staff", host: "www.adult.example", action: Block, rule: RuleCategory, category: "adult", match: "adult.example"},
		{name: "shopping blocked for ks2, not ks3-ks4", group: "ks3-ks4", host: "shop.example", action: Allow, rule: RuleDefault},
		{name: "most severe category wins, from the entry carrying it", group: "ks2", host: "www.mixed.example",
			action: Block, rule: RuleCategory, category: "adult", match: "mixed.example"},
		{name: "most specific entry carrying the category", group: "ks2", host: "www.both.example",
			action: Block, rule: RuleCategory, category: "adult", match: "www.both.example"},
		{name: "only the blocked category is named", group: "staff", host: "www.mixed.example",
			action: Block, rule: RuleCategory, category: "adult", match: "mixed.example"},
		{name: "high over low in one entry", group: "ks2", host: "bet.example",
			action: Block, rule: RuleCategory, category: "gambling", match: "bet.example"},
		{name: "high over low across levels", group: "ks2", host: "chat.bet.example",
			action: Block, rule: RuleCategory, category: "gambling", match: "bet.example"},
		{name: "low category when the high one is not blocked", edit: func(p *Policy) {
			p.Groups = append(p.Groups, Group{Name: "chatless", Mode: ModeFilter, Blocked: []string{"chat"}})
		}, group: "chatless", host: "chat.bet.example", action: Block, rule: RuleCategory, category: "chat", match: "chat.bet.example"},
		{name: "URL entry with path", group: "ks2", host: "video.example", path: "/watch/123",
			action: Block, rule: RuleCategory, category: "forums", match: "video.example", matchPath: "/watch"},
		{name: "URL entry on a subdomain", group: "ks2", host: "www.video.example", path: "/watch",
			action: Block, rule: RuleCategory, category: "forums", match: "video.example", matchPath: "/watch"},
		{name: "URL entry, other path", group: "ks2", host: "video.example", path: "/learn", action: Allow, rule: RuleDefault},
		{name: "URL entry, DNS", group: "ks2", host: "video.example", action: Allow, rule: RuleDefault},
		{name: "IP entry", group: "staff", host: "1.2.3.4", action: Block, rule: RuleCategory, category: "malware", match: "1.2.3.4"},
		{name: "IP look-alike", group: "staff", host: "5.1.2.3.4", action: Allow, rule: RuleDefault},
	})
}

func TestDecideAllowlist(t *testing.T) {
	const ey = "early-years-ks1"
	runDecideCases(t, []decCase{
		{name: "approved kids site", group: ey, host: "www.kids.example", action: Allow, rule: RuleApproved, category: "kids", match: "kids.example"},
		{name: "approved education site", group: ey, host: "edu.example", path: "/maths", action: Allow, rule: RuleApproved, category: "education", match: "edu.example"},
		{name: "unlisted site not approved", group: ey, host: "example.org", action: Block, rule: RuleNotApproved},
		{name: "news is allow-kind but not approved", group: ey, host: "news.example", action: Block, rule: RuleNotApproved},
		{name: "blocked category on an approved site", group: ey, host: "kidsgames.example",
			action: Block, rule: RuleCategory, category: "games", match: "kidsgames.example"},
		{name: "blocked subdomain of an approved site", group: ey, host: "ads.kids.example",
			action: Block, rule: RuleCategory, category: "advertising", match: "ads.kids.example"},
		{name: "group allow override", edit: allowOverrides(ey, []string{"example.org"}, nil),
			group: ey, host: "www.example.org", action: Allow, rule: RuleGroupAllow, match: "example.org"},
		{name: "group allow override beats a blocked category", edit: allowOverrides(ey, []string{"kidsgames.example"}, nil),
			group: ey, host: "kidsgames.example", action: Allow, rule: RuleGroupAllow, match: "kidsgames.example"},
		{name: "school allow override", edit: allowOverrides(SchoolGroup, []string{"example.org"}, nil),
			group: ey, host: "example.org", action: Allow, rule: RuleSchoolAllow, match: "example.org"},
		{name: "group deny on an approved site", edit: allowOverrides(ey, nil, []string{"kids.example"}),
			group: ey, host: "kids.example", action: Block, rule: RuleGroupDeny, match: "kids.example"},
		{name: "critical on an approved site", edit: allowOverrides(ey, []string{"csam.example"}, nil),
			group: ey, host: "csam.example", action: Block, rule: RuleCritical, category: "child-abuse", match: "csam.example"},
		{name: "ks2 (filter mode) allows unlisted", group: "ks2", host: "example.org", action: Allow, rule: RuleDefault},
	})
}

func TestDecideUnknownGroup(t *testing.T) {
	s := decSnapshot(t, nil)
	for _, g := range []string{"", "ks5", "KS2", SchoolGroup} {
		for _, host := range []string{"example.org", "kids.example", "csam.example"} {
			v := s.Decide(g, host, "", decMonday)
			if v.Action != Block || v.Rule != RuleUnknownGroup || v.Group != g {
				t.Errorf("Decide(%q, %q) = %s %s, want block unknown-group", g, host, v.Action, v.Rule)
			}
			if r := v.Reason(); !strings.Contains(r, fmt.Sprintf("%q", g)) {
				t.Errorf("Reason %q does not name the group %q", r, g)
			}
		}
	}
	if s.HasGroup("ks5") || !s.HasGroup("ks2") || s.HasGroup(SchoolGroup) {
		t.Error("HasGroup disagrees with the policy")
	}
}

func TestDecideVerdictFields(t *testing.T) {
	s := decSnapshot(t, nil)
	v := s.Decide("ks2", "www.both.example", "/", decMonday)
	if want := catMask(t, "adult", "games"); v.Cats != want {
		t.Errorf("Cats = %s, want %s", slugsOf(v.Cats), slugsOf(want))
	}
	if v.Severity() != SeverityHigh {
		t.Errorf("Severity = %s, want high", v.Severity())
	}
	if v := s.Decide("ks2", "example.org", "", decMonday); v.Severity() != SeverityNone || v.Category != nil || v.Cats != 0 {
		t.Errorf("unlisted verdict = %+v, want no category", v)
	}
	if v := s.Decide("staff", "iwf.example", "", decMonday); v.Severity() != SeverityCritical {
		t.Errorf("critical verdict severity = %s", v.Severity())
	}
	if s.Taxonomy() != testTax || s.Index() == nil || len(s.Policy().Groups) != 5 {
		t.Error("Snapshot accessors do not return what it was built from")
	}
}

func TestDecideCheck(t *testing.T) {
	s := decSnapshot(t, nil)
	tg, v, err := s.Check("ks2", "HTTPS://WWW.Video.Example/Watch/1?x=y", decMonday)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Host != "www.video.example" || tg.Path != "/watch/1" {
		t.Errorf("Check target = %+v", tg)
	}
	if v.Action != Block || v.Category == nil || v.Category.Slug != "forums" || v.MatchPath != "/watch" {
		t.Errorf("Check verdict = %s %s, want forums blocked by video.example/watch", v.Action, v.Rule)
	}
	if _, v, err := s.Check("ks2", "games.example", decMonday); err != nil || v.Action != Block {
		t.Errorf("Check(games.example) = %s, %v", v.Action, err)
	}
	if _, _, err := s.Check("ks2", "exa mple.com", decMonday); err == nil {
		t.Error("Check accepted a bad target")
	}
}

func TestVerdictReason(t *testing.T) {
	s := decSnapshot(t, func(p *Policy) {
		polGroup(t, p, "ks2").Allow = []string{"games.example"}
		polGroup(t, p, "ks2").Deny = []string{"news.example/politics"}
		p.School.Allow = []string{"social.example"}
		p.School.Deny = []string{"www.shop.example"}
		polGroup(t, p, "staff").Schedules = []Schedule{{Days: []string{"mon"}, From: "12:00", To: "13:00", Block: []string{"games"}}}
	})
	tests := []struct {
		group, host, path string
		rule              Rule
		has               []string
	}{
		{"ks2", "csam.example", "", RuleCritical, []string{"blocked", "csam.example", "Child sexual abuse content", "illegal"}},
		{"ks2", "lockedgames.example", "", RuleLocked, []string{"blocked", "lockedgames.example", "locked", "Online games"}},
		{"ks2", "news.example", "/politics/x", RuleGroupDeny, []string{"blocked", "group ks2", "news.example/politics"}},
		{"ks2", "games.example", "", RuleGroupAllow, []string{"allowed", "group ks2", "games.example"}},
		{"staff", "www.shop.example", "", RuleSchoolDeny, []string{"blocked", "school", "www.shop.example"}},
		{"ks3-ks4", "social.example", "", RuleSchoolAllow, []string{"allowed", "school", "social.example"}},
		{"ks2", "www.adult.example", "", RuleCategory, []string{"blocked", "adult.example", "Pornography and adult content", "group ks2"}},
		{"staff", "games.example", "", RuleCategory, []string{"Online games", "group staff", "timetable"}},
		{"early-years-ks1", "example.org", "", RuleNotApproved, []string{"blocked", "group early-years-ks1", "approved"}},
		{"early-years-ks1", "kids.example", "", RuleApproved, []string{"allowed", "kids.example", "Approved for young children", "group early-years-ks1"}},
		{"ks2", "example.org", "", RuleDefault, []string{"allowed", "not on any list"}},
		{"ks3-ks4", "shop.example", "", RuleDefault, []string{"allowed", "no category", "group ks3-ks4"}},
		{"nope", "example.org", "", RuleUnknownGroup, []string{"blocked", `"nope"`}},
	}
	for _, tt := range tests {
		v := s.Decide(tt.group, tt.host, tt.path, decMonday)
		if v.Rule != tt.rule {
			t.Errorf("Decide(%s, %s%s).Rule = %s, want %s", tt.group, tt.host, tt.path, v.Rule, tt.rule)
			continue
		}
		r := v.Reason()
		for _, frag := range tt.has {
			if !strings.Contains(r, frag) {
				t.Errorf("Reason for %s %s%s = %q, want it to contain %q", tt.group, tt.host, tt.path, r, frag)
			}
		}
	}
}

func TestRuleAndActionString(t *testing.T) {
	want := map[Rule]string{
		RuleDefault: "default", RuleUnknownGroup: "unknown-group", RuleCritical: "critical", RuleLocked: "locked",
		RuleGroupDeny: "group-deny", RuleGroupAllow: "group-allow", RuleSchoolDeny: "school-deny",
		RuleSchoolAllow: "school-allow", RuleCategory: "category", RuleNotApproved: "not-approved", RuleApproved: "approved",
		RuleRestricted: "restricted",
	}
	if len(want) != len(ruleNames) {
		t.Errorf("%d rules named, %d tested", len(ruleNames), len(want))
	}
	for r, s := range want {
		if r.String() != s {
			t.Errorf("Rule(%d).String() = %q, want %q", r, r.String(), s)
		}
	}
	if Allow.String() != "allow" || Block.String() != "block" {
		t.Errorf("Action strings = %q, %q", Allow, Block)
	}
	for s, w := range map[Severity]string{SeverityNone: "none", SeverityLow: "low", SeverityHigh: "high", SeverityCritical: "critical"} {
		if s.String() != w {
			t.Errorf("Severity(%d).String() = %q, want %q", s, s, w)
		}
	}
}

// decSchedulePolicy gives ks3-ks4 social networks at lunchtime on school
// days, games late on Friday night (spanning midnight), and blocks games
// for staff during lessons.
func decSchedulePolicy(tz string) func(p *Policy) {
	return func(p *Policy) {
		if tz != "" {
			p.TimeZone = tz
		}
		groupNamed(p, "ks3-ks4").Schedules = []Schedule{
			{Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "12:30", To: "13:30", Allow: []string{"social-networks"}},
			{Days: []string{"fri"}, From: "22:00", To: "02:00", Allow: []string{"games"}},
		}
		groupNamed(p, "staff").Schedules = []Schedule{
			{Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "09:00", To: "15:30", Block: []string{"games", "streaming"}},
		}
	}
}

func TestDecideSchedules(t *testing.T) {
	at := func(day, hh, mm int) time.Time { return time.Date(2026, 11, day, hh, mm, 0, 0, decLondon) }
	// 23 November 2026 is a Monday; 27 is Friday, 28 Saturday, 29 Sunday.
	if at(23, 0, 0).Weekday() != time.Monday {
		t.Fatal("calendar assumption wrong")
	}
	newYork := mustLoadLocation("America/New_York")
	social := func(name string, when time.Time, allowed bool) decCase {
		c := decCase{name: name, edit: decSchedulePolicy(""), group: "ks3-ks4", host: "social.example", when: when,
			action: Block, rule: RuleCategory, category: "social-networks", match: "social.example"}
		if allowed {
			c.action, c.rule, c.category, c.match, c.scheduled = Allow, RuleDefault, "", "", true
		}
		return c
	}
	games := func(name string, when time.Time, allowed bool) decCase {
		c := decCase{name: name, edit: decSchedulePolicy(""), group: "ks3-ks4", host: "games.example", when: when,
			action: Block, rule: RuleCategory, category: "games", match: "games.example"}
		if allowed {
			c.action, c.rule, c.category, c.match, c.scheduled = Allow, RuleDefault, "", "", true
		}
		return c
	}
	cases := []decCase{
		social("lunch Monday", decMonday, true),
		social("lunch start inclusive", at(23, 12, 30), true),
		social("lunch end exclusive", at(23, 13, 30), false),
		social("last minute of lunch", at(23, 13, 29), true),
		social("before lunch", at(23, 12, 29), false),
		social("lunch Friday", at(27, 13, 0), true),
		social("lunch Saturday", at(28, 12, 45), false),
		social("lunch Sunday", at(29, 12, 45), false),
		social("same instant in New York", decMonday.In(newYork), true),
		social("same instant in UTC", decMonday.UTC(), true),
		social("New York lunch is not London lunch", time.Date(2026, 11, 23, 12, 45, 0, 0, newYork), false),
		games("Friday before the window", at(27, 21, 59), false),
		games("Friday evening", at(27, 22, 0), true),
		games("Friday just before midnight", at(27, 23, 59), true),
		games("Saturday early hours", at(28, 1, 59), true),
		games("Saturday 02:00", at(28, 2, 0), false),
		games("Saturday evening", at(28, 23, 0), false),
		games("Friday early hours (belongs to Thursday)", at(27, 1, 0), false),
		games("Sunday early hours", at(29, 1, 0), false),
		{name: "window block for staff", edit: decSchedulePolicy(""), group: "staff", host: "games.example",
			action: Block, rule: RuleCategory, category: "games", match: "games.example", scheduled: true},
		{name: "window block for staff, URL entry", edit: decSchedulePolicy(""), group: "staff", host: "video.example", path: "/watch",
			action: Block, rule: RuleCategory, category: "streaming", match: "video.example", matchPath: "/watch", scheduled: true},
		{name: "window block for staff, after school", edit: decSchedulePolicy(""), group: "staff", host: "games.example",
			when: at(23, 16, 0), action: Allow, rule: RuleDefault},
		{name: "window block for staff, weekend", edit: decSchedulePolicy(""), group: "staff", host: "games.example",
			when: at(28, 10, 0), action: Allow, rule: RuleDefault},
		{name: "window on unlisted site sets Scheduled", edit: decSchedulePolicy(""), group: "staff", host: "example.org",
			action: Allow, rule: RuleDefault, scheduled: true},
		{name: "group allow still beats a window block", edit: both(decSchedulePolicy(""), allowOverrides("staff", []string{"games.example"}, nil)),
			group: "staff", host: "games.example", action: Allow, rule: RuleGroupAllow, match: "games.example", scheduled: true},
		{name: "critical is not scheduled away", edit: func(p *Policy) {
			polGroup(t, p, "staff").Schedules = []Schedule{{Days: []string{"mon"}, From: "00:00", To: "23:59", Allow: []string{"child-abuse"}}}
		}, group: "staff", host: "csam.example", action: Block, rule: RuleCritical, category: "child-abuse", match: "csam.example"},
		// A policy in Tokyo: 12:45 London is 21:45 in Tokyo, outside lunch.
		{name: "policy time zone", edit: decSchedulePolicy("Asia/Tokyo"), group: "ks3-ks4", host: "social.example",
			action: Block, rule: RuleCategory, category: "social-networks", match: "social.example"},
		{name: "policy time zone, Tokyo lunch", edit: decSchedulePolicy("Asia/Tokyo"), group: "ks3-ks4", host: "social.example",
			when: time.Date(2026, 11, 23, 12, 45, 0, 0, mustLoadLocation("Asia/Tokyo")), action: Allow, rule: RuleDefault, scheduled: true},
	}
	runDecideCases(t, cases)

	// Summer time: 12:45 BST is 11:45 UTC, and must count as lunchtime.
	s := decSnapshot(t, decSchedulePolicy(""))
	summer := time.Date(2026, 6, 22, 11, 45, 0, 0, time.UTC) // Monday
	if v := s.Decide("ks3-ks4", "social.example", "", summer); v.Action != Allow || !v.Scheduled {
		t.Errorf("12:45 BST: %s %s scheduled=%v, want allowed by the timetable", v.Action, v.Rule, v.Scheduled)
	}
}

func TestFilter(t *testing.T) {
	first := decSnapshot(t, nil)
	f, err := NewFilter(first)
	if err != nil {
		t.Fatal(err)
	}
	if f.Current() != first {
		t.Fatal("Current is not the first snapshot")
	}
	loaded, lastErr, failedAt := f.Status()
	if lastErr != nil || !failedAt.IsZero() || time.Since(loaded) > time.Minute {
		t.Errorf("fresh Status = %v, %v, %v", loaded, lastErr, failedAt)
	}

	boom := errors.New("list file corrupt")
	err = f.Reload(func() (*Snapshot, error) { return nil, boom })
	if err == nil || !errors.Is(err, boom) || !strings.Contains(err.Error(), "keeping") {
		t.Errorf("failed Reload = %v, want it to wrap the cause and say the old lists stay", err)
	}
	if f.Current() != first {
		t.Error("a failed reload replaced the snapshot")
	}
	_, lastErr, failedAt = f.Status()
	if !errors.Is(lastErr, boom) || failedAt.IsZero() {
		t.Errorf("Status after failure = %v, %v; want the error and its time", lastErr, failedAt)
	}

	second := decSnapshot(t, func(p *Policy) { p.School.Allow = []string{"games.example"} })
	if err := f.Reload(func() (*Snapshot, error) { return second, nil }); err != nil {
		t.Fatalf("good Reload = %v", err)
	}
	if f.Current() != second {
		t.Error("a good reload did not swap the snapshot")
	}
	if _, lastErr, failedAt = f.Status(); lastErr != nil || !failedAt.IsZero() {
		t.Errorf("Status after a good reload = %v, %v; want the error cleared", lastErr, failedAt)
	}
	if v := f.Current().Decide("ks2", "games.example", "", decMonday); v.Rule != RuleSchoolAllow {
		t.Errorf("new snapshot not in service: %s", v.Rule)
	}
	if f.reloadsOK.Load() != 1 {
		t.Errorf("reloadsOK = %d, want 1", f.reloadsOK.Load())
	}
}

// "There is no Filter without a snapshot": a loader that returns neither a
// snapshot nor an error must not leave the servers with a nil snapshot.
func TestFilterReloadNilSnapshot(t *testing.T) {
	first := decSnapshot(t, nil)
	f, err := NewFilter(first)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Reload(func() (*Snapshot, error) { return nil, nil })
	if f.Current() == nil {
		t.Fatal("Reload with a nil snapshot and no error left the Filter without a snapshot")
	}
	if err == nil {
		t.Error("Reload with a nil snapshot returned no error")
	}
}

func TestFilterConcurrent(t *testing.T) {
	snaps := []*Snapshot{decSnapshot(t, nil), decSnapshot(t, allowOverrides(SchoolGroup, []string{"games.example"}, nil))}
	f, err := NewFilter(snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := f.Current().Decide("ks2", "games.example", "", decMonday)
				if v.Rule != RuleCategory && v.Rule != RuleSchoolAllow {
					t.Errorf("torn verdict %s", v.Rule)
					return
				}
			}
		}()
	}
	for i := range 200 {
		if i%7 == 0 {
			_ = f.Reload(func() (*Snapshot, error) { return nil, errors.New("bad") })
			continue
		}
		_ = f.Reload(func() (*Snapshot, error) { return snaps[i%2], nil })
	}
	close(stop)
	wg.Wait()
	_, _, _ = f.Status()
}

func TestDecideZeroAllocs(t *testing.T) {
	s := decSnapshot(t, func(p *Policy) {
		polGroup(t, p, "ks2").Allow = []string{"www.example.com", "example.org/homework"}
		polGroup(t, p, "ks2").Deny = []string{"example.com"}
		p.School.Allow = []string{"bbc.co.uk"}
		decSchedulePolicy("")(p)
	})
	tests := []struct {
		name, group, host, path string
		rule                    Rule
	}{
		{"category block", "ks2", "www.games.example", "", RuleCategory},
		{"critical", "ks2", "csam.example", "", RuleCritical},
		{"locked", "ks2", "lockedgames.example", "", RuleLocked},
		{"allow unlisted", "ks2", "unlisted.example.net", "", RuleDefault},
		{"URL entry", "ks2", "video.example", "/watch/abc", RuleCategory},
		{"group allow override", "ks2", "a.www.example.com", "/x", RuleGroupAllow},
		{"group URL allow override", "ks2", "example.org", "/homework/1", RuleGroupAllow},
		{"group deny override", "ks2", "example.com", "", RuleGroupDeny},
		{"school override", "ks2", "www.bbc.co.uk", "", RuleSchoolAllow},
		{"schedule group", "ks3-ks4", "social.example", "/", RuleDefault},
		{"schedule block", "staff", "games.example", "", RuleCategory},
		{"allowlist approved", "early-years-ks1", "kids.example", "", RuleApproved},
		{"allowlist not approved", "early-years-ks1", "example.net", "", RuleNotApproved},
		{"unknown group", "nope", "example.net", "", RuleUnknownGroup},
		{"IP", "staff", "1.2.3.4", "", RuleCategory},
	}
	for _, tt := range tests {
		if v := s.Decide(tt.group, tt.host, tt.path, decMonday); v.Rule != tt.rule {
			t.Errorf("%s: rule %s, want %s", tt.name, v.Rule, tt.rule)
		}
		allocs := testing.AllocsPerRun(200, func() {
			_ = s.Decide(tt.group, tt.host, tt.path, decMonday)
		})
		if allocs != 0 {
			t.Errorf("%s: Decide allocates %.1f times per call, want 0", tt.name, allocs)
		}
	}
	allocs := testing.AllocsPerRun(200, func() { _ = s.Index().Classify("a.b.www.both.example", "/x/y") })
	if allocs != 0 {
		t.Errorf("Classify allocates %.1f times per call, want 0", allocs)
	}
}

// Benchmarks over a synthetic list of about a million names.

var benchTLDs = []string{"com", "com", "com", "com", "net", "org", "co.uk", "co.uk", "org.uk", "de", "fr", "io", "info", "ru", "xyz"}

func benchName(r *rand.Rand) string {
	const alpha = "abcdefghijklmnopqrstuvwxyz0123456789"
	var sb strings.Builder
	labels := 1 // + TLD = 2 labels
	if r.IntN(3) == 0 {
		labels = 2
	}
	for i := 0; i < labels; i++ {
		n := 4 + r.IntN(12)
		if i == 0 && labels == 2 {
			n = 2 + r.IntN(4) // www, cdn, m, ...
		}
		for j := 0; j < n; j++ {
			sb.WriteByte(alpha[r.IntN(len(alpha))])
		}
		sb.WriteByte('.')
	}
	sb.WriteString(benchTLDs[r.IntN(len(benchTLDs))])
	return sb.String()
}

type benchFixture struct {
	snap    *Snapshot
	queries []string
}

var (
	benchOnce sync.Once
	benchFix  benchFixture
	benchErr  error
)

// benchSetup builds the 1M-name index once per process (a few seconds).
func benchSetup(b *testing.B) benchFixture {
	b.Helper()
	benchOnce.Do(func() {
		const n = 1_000_000
		r := rand.New(rand.NewPCG(2026, 11))
		blocks := testTax.KindMask(KindBlock) &^ testTax.SeverityMask(SeverityCritical)
		var ids []int
		for i := range testTax.All() {
			if blocks.Has(uint8(i)) {
				ids = append(ids, i)
			}
		}
		bld := NewIndexBuilder(n)
		names := make([]string, 0, n)
		for len(names) < n {
			name := benchName(r)
			m := Mask(1) << ids[r.IntN(len(ids))]
			if err := bld.Add(name, m); err != nil {
				benchErr = err
				return
			}
			names = append(names, name)
		}
		idx, err := bld.Build()
		if err != nil {
			benchErr = err
			return
		}
		p := DefaultPolicy(testTax)
		polGroup(b, &p, "ks2").Allow = []string{"www.example.com", "example.org/homework"}
		p.School.Deny = []string{"example.net"}
		decSchedulePolicy("")(&p)
		snap, err := NewSnapshot(testTax, idx, p)
		if err != nil {
			benchErr = err
			return
		}
		// Query mix: about 20% hits (an entry or a subdomain of one), the
		// rest names that are not listed, as DNS traffic mostly is.
		queries := make([]string, 4096)
		for i := range queries {
			switch x := r.IntN(100); {
			case x < 10:
				queries[i] = names[r.IntN(len(names))]
			case x < 20:
				queries[i] = "www." + names[r.IntN(len(names))]
			default:
				queries[i] = "cdn-" + benchName(r)
			}
		}
		benchFix = benchFixture{snap: snap, queries: queries}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchFix
}

func BenchmarkDecide(b *testing.B) {
	fx := benchSetup(b)
	groups := []string{"ks2", "ks3-ks4", "staff", "early-years-ks1"}
	hits := 0
	for i, q := range fx.queries {
		if fx.snap.Decide(groups[i%len(groups)], q, "", decMonday).Cats != 0 {
			hits++
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q := fx.queries[i%len(fx.queries)]
		_ = fx.snap.Decide(groups[i%len(groups)], q, "", decMonday)
		i++
	}
	// After the loop: b.Loop's first call resets the timer, which drops
	// metrics reported before it.
	b.ReportMetric(100*float64(hits)/float64(len(fx.queries)), "%hit")
}

func BenchmarkDecideURL(b *testing.B) {
	fx := benchSetup(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = fx.snap.Decide("ks2", fx.queries[i%len(fx.queries)], "/some/path/page.html", decMonday)
		i++
	}
}

func BenchmarkClassify(b *testing.B) {
	fx := benchSetup(b)
	idx := fx.snap.Index()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = idx.Classify(fx.queries[i%len(fx.queries)], "")
		i++
	}
}

// What the URL-prefix union bug (TestIndexURLPrefixesUnion) means for a
// pupil: a games entry under an adult prefix hides the adult listing from
// every group that does not block games.
func TestDecideNestedURLEntries(t *testing.T) {
	b := NewIndexBuilder(0)
	_ = b.Add("forum.example/adult", catMask(t, "adult"))
	_ = b.Add("forum.example/adult/games", catMask(t, "games"))
	idx, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSnapshot(testTax, idx, DefaultPolicy(testTax))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"sixth-form", "staff"} {
		v := s.Decide(g, "forum.example", "/adult/games/1", decMonday)
		checkVerdict(t, v, decCase{group: g, host: "forum.example", path: "/adult/games/1",
			action: Block, rule: RuleCategory, category: "adult", match: "forum.example", matchPath: "/adult"})
	}
}

// What the ParseOverride scheme bug (TestParseOverride) means: a deny typed
// as "HTTP://host" becomes a URL override for "/", which DNS never sees.
func TestDecideOverrideSchemeCase(t *testing.T) {
	for _, target := range []string{"http://example.org", "HTTP://example.org", "Https://Example.org", " https://example.org"} {
		s := decSnapshot(t, allowOverrides("ks2", nil, []string{target}))
		v := s.Decide("ks2", "www.example.org", "", decMonday)
		if v.Action != Block || v.Rule != RuleGroupDeny || v.Match != "example.org" || v.MatchPath != "" {
			t.Errorf("deny %q: DNS lookup of www.example.org = %s %s %q%q, want block group-deny example.org", target, v.Action, v.Rule, v.Match, v.MatchPath)
		}
	}
}
