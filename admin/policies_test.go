package admin

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"hedgerow/categories"
	"hedgerow/categories/listfile"
	"hedgerow/store"
)

// Helpers of the policy, client, request and user tests. Their names start
// with "pol" so they stay clear of other pages' test helpers.

// polState is the stored policy and its version.
func polState(t *testing.T, e *testEnv) (categories.Policy, uint64) {
	t.Helper()
	var p categories.Policy
	var v uint64
	e.read(func(s *store.Store) error {
		var err error
		if v, err = s.PolicyVersion(); err != nil {
			return err
		}
		p, err = s.Policy()
		return err
	})
	return p, v
}

// polGroup returns one group of a policy ("school" too).
func polGroup(t *testing.T, p categories.Policy, name string) categories.Group {
	t.Helper()
	if name == categories.SchoolGroup {
		return p.School
	}
	for _, g := range p.Groups {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no group %q in the stored policy", name)
	return categories.Group{}
}

// polJSON marshals an API body.
func polJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// polAudit returns the newest audit records.
func polAudit(t *testing.T, e *testEnv, n int) []store.AuditRecord {
	t.Helper()
	var recs []store.AuditRecord
	e.read(func(s *store.Store) error {
		var err error
		recs, err = s.Audit(n)
		return err
	})
	return recs
}

// polAuditCount is how many audit records there are: a refused change
// must not add one.
func polAuditCount(t *testing.T, e *testEnv) int {
	t.Helper()
	return len(polAudit(t, e, 0))
}

var rePolVersion = regexp.MustCompile(`name="version" value="(\d+)"`)

// polPageVersion is the version a page's forms carry, and checks that
// every form on the page carries the same one.
func polPageVersion(t *testing.T, body string) string {
	t.Helper()
	ms := rePolVersion.FindAllStringSubmatch(body, -1)
	if len(ms) == 0 {
		t.Fatalf("no version field in the page")
	}
	for _, m := range ms {
		if m[1] != ms[0][1] {
			t.Fatalf("forms carry different versions: %s and %s", ms[0][1], m[1])
		}
	}
	return ms[0][1]
}

var rePolBlockInput = regexp.MustCompile(`<input type="(hidden|checkbox)"[^>]*? name="block" value="([^"]+)"([^>]*)>`)

// polMatrixForm is what the page's matrix form submits as it stands: the
// ticked boxes and the hidden fields of locked cells.
func polMatrixForm(body string) []string {
	var out []string
	for _, m := range rePolBlockInput.FindAllStringSubmatch(body, -1) {
		if m[1] == "hidden" || strings.Contains(m[3], "checked") {
			out = append(out, html.UnescapeString(m[2]))
		}
	}
	return out
}

// polMatrixOf is the full matrix a script would send for a policy.
func polMatrixOf(e *testEnv, p categories.Policy) []string {
	var out []string
	for _, g := range p.Groups {
		for _, c := range e.tax.All() {
			if c.Kind == categories.KindBlock && (slices.Contains(g.Blocked, c.Slug) || c.Severity == categories.SeverityCritical) {
				out = append(out, g.Name+":"+c.Slug)
			}
		}
	}
	return out
}

// polSharedList is a real list file from ../shared/lists, or a skip.
func polSharedList(t *testing.T, rel string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(wd, "..", "..", "shared", "lists", rel)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("real list %s not available (%v); the lists are fetched separately, see shared/lists/README.md", rel, err)
	}
	return path
}

// polImport imports a real list into the store as one feed and reloads the
// running filter; it returns a domain the list holds.
func polImport(t *testing.T, e *testEnv, feed, path, category string, locked bool) string {
	t.Helper()
	m, err := e.tax.MaskOf(category)
	if err != nil {
		t.Fatal(err)
	}
	f := store.NewFeed(store.FeedInfo{Name: feed, Source: path, Locked: locked, Reason: "test"})
	var first string
	if _, err := listfile.Read(context.Background(), path, listfile.Options{Category: category}, func(en listfile.Entry) error {
		if first == "" && !strings.Contains(en.Target, "/") {
			first = en.Target
		}
		f.Add(en.Target, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if first == "" {
		t.Fatalf("%s has no domain entry", path)
	}
	e.write(func(s *store.Store) error { _, err := s.ReplaceFeed("test", f); return err })
	e.srv.d.Changed()
	return first
}

// What a call of a change table must leave behind.
const (
	polNone     = iota // nothing: no audit record, no reload, same policy version
	polPolicy          // a policy change: a new version, a reload, an audit record
	polAccount         // an account change: a reload (proxy logins) and an audit record
	polAudited         // a decision on a report: an audit record only
	polApproved        // an approved unblock request: a policy change and the decision
)

// polCheck is one call of a change table: a page form or an API call, the
// status and text wanted, and a check of what was stored.
type polCheck struct {
	name     string
	api      bool
	path     string
	form     func(version string) url.Values // the page form or, for the API, the JSON members
	status   int                             // 200 stands for 303 (and the next page) for a page
	wantText string                          // in the answer (the error message for a refusal)
	effect   int
	check    func(t *testing.T, p categories.Policy)
}

// polSession is a test server with a user logged in to it, in a browser
// and with an API token.
type polSession struct {
	e   *testEnv
	b   *browser
	tok string
}

func newPolSession(t *testing.T) *polSession {
	e := newTestEnv(t)
	return &polSession{e: e, b: e.browser().login("ada"), tok: e.token("ada")}
}

// as is the same server with another user logged in.
func (s *polSession) as(name string) *polSession {
	return &polSession{e: s.e, b: s.e.browser().login(name), tok: s.e.token(name)}
}

// polListFields are sent to the API as arrays even with one value.
var polListFields = map[string]bool{"block": true, "approved": true, "days": true, "roles": true, "allow": true}

// polRun runs a change table against one server. Each case loads the page
// first, as an editor would, and takes the policy version its forms carry.
func polRun(t *testing.T, s *polSession, page string, cases []polCheck) {
	t.Helper()
	e, b := s.e, s.b
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, before := polState(t, e)
			resp, body := b.get(page)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d", page, resp.StatusCode)
			}
			version := ""
			if rePolVersion.MatchString(body) {
				version = polPageVersion(t, body)
				if version != strconv.FormatUint(before, 10) {
					t.Fatalf("the page carries version %s, the store is at %d", version, before)
				}
			}
			audits, changes := polAuditCount(t, e), e.changed.Load()
			form := tc.form(version)
			var text string
			if tc.api {
				m := map[string]any{}
				for k, v := range form {
					if len(v) == 1 && !polListFields[k] {
						m[k] = v[0]
					} else {
						m[k] = v
					}
				}
				resp, text = e.api(s.tok, http.MethodPost, tc.path, polJSON(t, m))
				var answer struct{ Error, Message string }
				if err := json.Unmarshal([]byte(text), &answer); err != nil {
					t.Fatalf("API answer is not JSON: %v: %s", err, text)
				}
				text = answer.Error + answer.Message + " " + text
			} else {
				resp, text = b.post(tc.path, form)
			}
			p, after := polState(t, e)
			nowAudits, nowChanges := polAuditCount(t, e), e.changed.Load()
			if !tc.api && resp.StatusCode == http.StatusSeeOther {
				_, text = b.get(resp.Header.Get("Location")) // with the flash message
			}
			want := tc.status
			if want == http.StatusOK && !tc.api {
				want = http.StatusSeeOther
			}
			if resp.StatusCode != want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, want, text)
			}
			if tc.wantText != "" && !strings.Contains(html.UnescapeString(text), tc.wantText) {
				t.Errorf("answer does not say %q:\n%s", tc.wantText, text)
			}
			var wantVersion, wantChanges, wantAudits = before, changes, audits
			switch tc.effect {
			case polPolicy:
				wantVersion, wantChanges, wantAudits = before+1, changes+1, audits+1
			case polAccount:
				wantChanges, wantAudits = changes+1, audits+1
			case polAudited:
				wantAudits = audits + 1
			case polApproved:
				wantVersion, wantChanges, wantAudits = before+1, changes+1, audits+2
			}
			if after != wantVersion || nowChanges != wantChanges || nowAudits != wantAudits {
				t.Errorf("policy version %d→%d, reloads %d→%d, audit records %d→%d; want %d, %d and %d",
					before, after, changes, nowChanges, audits, nowAudits, wantVersion, wantChanges, wantAudits)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

// polStale is a version someone else has moved on from.
func polStale(version string) string {
	n, _ := strconv.ParseUint(version, 10, 64)
	return strconv.FormatUint(n-1, 10)
}

// polBlocked reports whether the running filter blocks host for group now.
func polBlocked(e *testEnv, group, host string) bool {
	return e.filter.Current().Decide(group, host, "", time.Now()).Action == categories.Block
}

// TestPolicies runs the Policies page's tests in order on one server: a
// test server takes seconds to start under the race detector, for the
// bcrypt hashes of its accounts. Each part checks changes relative to what
// it finds, so it does not depend on what the others did.
func TestPolicies(t *testing.T) {
	s := newPolSession(t)
	for _, part := range []struct {
		name string
		run  func(t *testing.T, s *polSession)
	}{
		{"page", polPoliciesPage},
		{"matrix", polPoliciesMatrix},
		{"group settings", polPoliciesGroupSettings},
		{"overrides", polPoliciesOverrides},
		{"schedules", polPoliciesSchedules},
		{"add and remove groups", polPoliciesAddRemoveGroup},
		{"locked feed", polPoliciesLockedFeed}, // last: it locks a category for every group
	} {
		t.Run(part.name, func(t *testing.T) { part.run(t, s) })
	}
}

func polPoliciesPage(t *testing.T, s *polSession) {
	e := s.e
	b := s.b
	resp, body := b.get("/policies")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d:\n%s", resp.StatusCode, body)
	}
	p, v := polState(t, e)
	if polPageVersion(t, body) != strconv.FormatUint(v, 10) {
		t.Errorf("page version is not the stored %d", v)
	}
	for _, want := range []string{`id="matrix"`, `id="group-ks2"`, `id="group-school"`, "Child sexual abuse content", "gov.uk",
		`<span class="badge">locked</span>`, "illegal content: blocked for every group"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// The form submits the stored matrix as it is, critical cells included.
	got, want := polMatrixForm(body), polMatrixOf(e, p)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the matrix form submits\n%v\nwant\n%v", got, want)
	}
	// Every input has a label: an id a <label for> names, or a wrapping label.
	for _, id := range regexp.MustCompile(`<(?:input|select|textarea) [^>]*id="([^"]+)"`).FindAllStringSubmatch(body, -1) {
		if !strings.Contains(body, `for="`+id[1]+`"`) {
			t.Errorf("input %s has no label", id[1])
		}
	}
	if strings.Contains(body, "style=") || strings.Contains(body, "<script>") {
		t.Error("the page has inline style or script, which the Content-Security-Policy forbids")
	}

	resp, raw := e.api(s.tok, http.MethodGet, "/policies", "")
	var page struct {
		Version uint64             `json:"version"`
		Groups  []categories.Group `json:"groups"`
		Matrix  []matrixRow        `json:"matrix"`
	}
	if err := json.Unmarshal([]byte(raw), &page); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("API: status %d, %v: %s", resp.StatusCode, err, raw)
	}
	if page.Version != v || len(page.Groups) != len(p.Groups) {
		t.Errorf("API: version %d, %d groups; want %d and %d", page.Version, len(page.Groups), v, len(p.Groups))
	}
	for _, row := range page.Matrix {
		crit := row.Severity == "critical"
		for _, cell := range row.Cells {
			if crit && !(cell.Locked && cell.Blocked) {
				t.Errorf("API: %s for %s is not shown locked and blocked", row.Slug, cell.Group)
			}
			if !crit && cell.Locked {
				t.Errorf("API: %s for %s is locked without a locked feed", row.Slug, cell.Group)
			}
		}
	}
}

// TestPoliciesLockedFeed imports a real list as a locked feed: its
// category is shown locked where it is blocked, cannot be unticked, and no
// allow override reaches its entries.
func polPoliciesLockedFeed(t *testing.T, s *polSession) {
	e := s.e
	host := polImport(t, e, "drugs-locked", polSharedList(t, "blocklistproject/drugs.txt"), "drugs", true)
	b := s.b
	_, body := b.get("/policies")
	if !strings.Contains(body, "fed by the locked list drugs-locked") || !strings.Contains(body, "<strong>drugs-locked</strong> (drugs)") {
		t.Fatalf("the page does not show drugs as locked by drugs-locked")
	}
	// Every group here blocks high categories, drugs among them.
	p, _ := polState(t, e)
	if n := strings.Count(body, `-drugs" checked disabled`); n != len(p.Groups) {
		t.Errorf("%d locked drugs cells, want one per group (%d)", n, len(p.Groups))
	}
	without := slices.DeleteFunc(polMatrixOf(e, p), func(v string) bool { return v == "ks2:drugs" })
	polRun(t, s, "/policies", []polCheck{
		{name: "unticking a locked category", path: "/policies", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"try"}, "block": without}
		}, status: http.StatusBadRequest, wantText: "drugs for ks2 is locked (fed by the locked list drugs-locked"},
		{name: "a window opening a locked category", api: true, path: "/policies/ks2/schedules", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"try"}, "days": {"mon-fri"}, "from": {"12:00"}, "to": {"13:00"}, "allow": {"drugs"}}
		}, status: http.StatusBadRequest, wantText: "drugs for ks2 is locked (fed by the locked list drugs-locked"},
		{name: "allowing a locked entry", api: true, path: "/policies/ks2/overrides", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"try"}, "kind": {"allow"}, "target": {host}}
		}, status: http.StatusBadRequest, wantText: "is on a locked list (drugs)"},
	})
	if !polBlocked(e, "ks2", host) {
		t.Errorf("%s from the locked list is not blocked for ks2", host)
	}
}

func polPoliciesMatrix(t *testing.T, s *polSession) {
	e := s.e
	e.write(func(s *store.Store) error {
		return s.AddEntry("test", "games.example.org", []string{"games"}, "test entry")
	})
	e.srv.d.Changed()
	if !polBlocked(e, "ks3-ks4", "games.example.org") {
		t.Fatal("games are not blocked for ks3-ks4 to begin with")
	}
	b := s.b
	_, body := b.get("/policies")
	current := polMatrixForm(body)
	unblockGames := slices.DeleteFunc(slices.Clone(current), func(v string) bool { return v == "ks3-ks4:games" })
	blocked := func(group, slug string, want bool) func(t *testing.T, p categories.Policy) {
		return func(t *testing.T, p categories.Policy) {
			if got := slices.Contains(polGroup(t, p, group).Blocked, slug); got != want {
				t.Errorf("%s blocks %s: %v, want %v", group, slug, got, want)
			}
			if got := polBlocked(e, group, slug+".example.org"); got != want {
				t.Errorf("the running filter blocks %s.example.org for %s: %v, want %v", slug, group, got, want)
			}
		}
	}
	polRun(t, s, "/policies", []polCheck{
		{name: "page: no reason", path: "/policies", form: func(v string) url.Values {
			return url.Values{"version": {v}, "block": unblockGames}
		}, status: http.StatusBadRequest, wantText: "reason is required", check: blocked("ks3-ks4", "games", true)},
		{name: "page: no version", path: "/policies", form: func(v string) url.Values {
			return url.Values{"reason": {"r"}, "block": unblockGames}
		}, status: http.StatusBadRequest, wantText: `version "": want the policy version the page was loaded with`},
		{name: "page: unblock games for ks3-ks4", path: "/policies", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"agreed by the e-safety committee"}, "block": unblockGames}
		}, status: http.StatusOK, wantText: "Saved: unblock ks3-ks4 games.", effect: polPolicy, check: blocked("ks3-ks4", "games", false)},
		{name: "page: a stale version is a conflict", path: "/policies", form: func(v string) url.Values {
			return url.Values{"version": {polStale(v)}, "reason": {"r"}, "block": current}
		}, status: http.StatusConflict, wantText: "changed by someone else since you loaded it: reload the page", check: blocked("ks3-ks4", "games", false)},
		{name: "API: block games again", api: true, path: "/policies", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"trial over"}, "block": current}
		}, status: http.StatusOK, wantText: `"block ks3-ks4 games"`, effect: polPolicy, check: blocked("ks3-ks4", "games", true)},
		{name: "API: a bad cell", api: true, path: "/policies", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "block": append(slices.Clone(current), "ks2:nonsense")}
		}, status: http.StatusBadRequest, wantText: `block "ks2:nonsense": want GROUP:CATEGORY`},
		{name: "API: an unknown group", api: true, path: "/policies", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "block": append(slices.Clone(current), "year9:games")}
		}, status: http.StatusBadRequest, wantText: `group "year9": no such group`},
		{name: "API: a critical category left out", api: true, path: "/policies", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "block": slices.DeleteFunc(slices.Clone(current), func(s string) bool { return s == "staff:terrorism" })}
		}, status: http.StatusBadRequest, wantText: "terrorism for staff is locked (illegal content"},
		{name: "API: a stale version", api: true, path: "/policies", form: func(v string) url.Values {
			return url.Values{"version": {polStale(v)}, "reason": {"r"}, "block": unblockGames}
		}, status: http.StatusConflict, wantText: "changed by someone else", check: blocked("ks3-ks4", "games", true)},
	})
	if a := polAudit(t, e, 1)[0]; a.Action != "groups matrix: block ks3-ks4 games" || a.Reason != "trial over" || a.Actor != "ada" {
		t.Errorf("last audit record %+v", a)
	}
}

func polPoliciesGroupSettings(t *testing.T, s *polSession) {
	full := func(v string) url.Values {
		return url.Values{"version": {v}, "reason": {"EYFS review"}, "mode": {"allowlist"}, "approved": {"kids", "education", "news"},
			"safe_search": {"1"}, "youtube": {"strict"}, "intercept": {"1"}, "description": {"Year 2 <b>trial</b>"}}
	}
	polRun(t, s, "/policies", []polCheck{
		{name: "page: allowlist with news approved", path: "/policies/ks2", form: full, status: http.StatusOK, effect: polPolicy,
			wantText: "Saved ks2: mode allowlist, approved [kids education news], description", check: func(t *testing.T, p categories.Policy) {
				g := polGroup(t, p, "ks2")
				if g.Mode != categories.ModeAllowlist || !slices.Equal(g.Approved, []string{"kids", "education", "news"}) || !g.Intercept ||
					g.ProxyLogin || g.MonitorSearches || !g.SafeSearch || g.YouTube != "strict" || g.Description != "Year 2 <b>trial</b>" {
					t.Errorf("ks2 is %+v", g)
				}
			}},
		{name: "page: unticked boxes mean off", path: "/policies/ks2", form: func(v string) url.Values {
			f := full(v)
			f.Del("intercept")
			f.Del("safe_search")
			return f
		}, status: http.StatusOK, effect: polPolicy, wantText: "safe search off, HTTPS interception off", check: func(t *testing.T, p categories.Policy) {
			if g := polGroup(t, p, "ks2"); g.SafeSearch || g.Intercept {
				t.Errorf("ks2 is %+v", g)
			}
		}},
		{name: "API: only what is sent changes", api: true, path: "/policies/ks2", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"shared laptops"}, "proxy_login": {"true"}}
		}, status: http.StatusOK, effect: polPolicy, wantText: "proxy login on", check: func(t *testing.T, p categories.Policy) {
			if g := polGroup(t, p, "ks2"); !g.ProxyLogin || g.Mode != categories.ModeAllowlist || g.YouTube != "strict" {
				t.Errorf("ks2 is %+v", g)
			}
		}},
		{name: "API: incident context and a hand-picked approval", api: true, path: "/policies/ks2", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"DSL asked"}, "context": {"on"}, "approved": {"kids", "education", "news", "games"}}
		}, status: http.StatusOK, effect: polPolicy, wantText: "approved [kids education news games], incident context on", check: func(t *testing.T, p categories.Policy) {
			if g := polGroup(t, p, "ks2"); !g.Context || !slices.Contains(g.Approved, "games") {
				t.Errorf("ks2 is %+v", g)
			}
			// The page offers the block-kind approval too, so saving it
			// as it stands keeps it.
			if _, body := s.b.get("/policies"); !strings.Contains(body, `name="approved" value="games" checked`) {
				t.Error("the page does not show games approved for ks2")
			}
		}},
		{name: "API: nothing to change", api: true, path: "/policies/ks2", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "proxy_login": {"on"}}
		}, status: http.StatusOK, wantText: "Nothing changed in ks2."},
		{name: "API: bad mode", api: true, path: "/policies/ks2", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "mode": {"open"}}
		}, status: http.StatusBadRequest, wantText: `mode "open": want filter or allowlist`},
		{name: "API: bad switch", api: true, path: "/policies/ks2", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "intercept": {"maybe"}}
		}, status: http.StatusBadRequest, wantText: `intercept "maybe": want on or off`},
		{name: "API: bad YouTube mode", api: true, path: "/policies/ks2", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "youtube": {"loose"}}
		}, status: http.StatusBadRequest, wantText: `youtube "loose": want strict, moderate or off`},
		{name: "API: unknown approved category", api: true, path: "/policies/ks2", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "approved": {"kidz"}}
		}, status: http.StatusBadRequest, wantText: `approved "kidz": no such category`},
		{name: "page: no reason", path: "/policies/ks2", form: func(v string) url.Values {
			f := full(v)
			f.Del("reason")
			f.Set("mode", "filter")
			return f
		}, status: http.StatusBadRequest, wantText: "reason is required"},
		{name: "page: stale version", path: "/policies/ks2", form: func(v string) url.Values {
			f := full(v)
			f.Set("version", polStale(v))
			f.Set("mode", "filter")
			return f
		}, status: http.StatusConflict, wantText: "groups settings ks2: the policy was changed by someone else since you loaded it: reload the page"},
		{name: "page: school has no settings", path: "/policies/school", form: full, status: http.StatusBadRequest, wantText: "school-wide allow and deny overrides"},
		{name: "page: no such group", path: "/policies/year9", form: full, status: http.StatusNotFound, wantText: `group "year9": no such group`},
	})
	// What was typed is shown escaped.
	_, body := s.b.get("/policies")
	if strings.Contains(body, "<b>trial</b>") || !strings.Contains(body, "&lt;b&gt;trial&lt;/b&gt;") {
		t.Error("the description is not escaped on the page")
	}
}

func polPoliciesOverrides(t *testing.T, s *polSession) {
	e := s.e
	e.write(func(s *store.Store) error {
		return s.AddEntry("test", "illegal.example", []string{"child-abuse"}, "test entry")
	})
	e.srv.d.Changed()
	overrides := func(group string, allow, deny []string) func(t *testing.T, p categories.Policy) {
		return func(t *testing.T, p categories.Policy) {
			g := polGroup(t, p, group)
			if !slices.Equal(g.Allow, allow) || !slices.Equal(g.Deny, deny) {
				t.Errorf("%s allows %v and denies %v; want %v and %v", group, g.Allow, g.Deny, allow, deny)
			}
		}
	}
	school, _ := polState(t, e)
	schoolAllow := school.School.Allow
	form := func(kind, target, action string) func(v string) url.Values {
		return func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"Year 5 science"}, "kind": {kind}, "target": {target}, "action": {action}}
		}
	}
	polRun(t, s, "/policies", []polCheck{
		{name: "page: deny for ks2", path: "/policies/ks2/overrides", form: form("deny", "https://Example.org/", ""), status: http.StatusOK, effect: polPolicy,
			wantText: "group ks2 now denies example.org", check: func(t *testing.T, p categories.Policy) {
				overrides("ks2", nil, []string{"example.org"})(t, p)
				if !polBlocked(e, "ks2", "www.example.org") {
					t.Error("the running filter does not block www.example.org for ks2")
				}
			}},
		{name: "page: allow replaces the deny", path: "/policies/ks2/overrides", form: form("allow", "example.org", "add"), status: http.StatusOK, effect: polPolicy,
			check: overrides("ks2", []string{"example.org"}, []string{})},
		{name: "API: school-wide deny of a page", api: true, path: "/policies/school/overrides", form: form("deny", "example.net/games", ""), status: http.StatusOK, effect: polPolicy,
			check: overrides("school", schoolAllow, []string{"example.net/games"})},
		{name: "API: remove it", api: true, path: "/policies/school/overrides", form: form("deny", "example.net/games", "remove"), status: http.StatusOK, effect: polPolicy,
			wantText: "Removed the deny override for example.net/games from every group (school-wide)", check: overrides("school", schoolAllow, []string{})},
		{name: "API: remove what is not there", api: true, path: "/policies/ks2/overrides", form: form("deny", "example.com", "remove"), status: http.StatusBadRequest,
			wantText: "group ks2 has no deny override for example.com"},
		{name: "API: bad target", api: true, path: "/policies/ks2/overrides", form: form("allow", "exa mple..org", ""), status: http.StatusBadRequest,
			wantText: `target "exa mple..org": want a domain`},
		{name: "API: query string", api: true, path: "/policies/ks2/overrides", form: form("allow", "example.org/?q=1", ""), status: http.StatusBadRequest,
			wantText: "a query string cannot be part of an entry"},
		{name: "API: bad kind", api: true, path: "/policies/ks2/overrides", form: form("permit", "example.org", ""), status: http.StatusBadRequest,
			wantText: `kind "permit": want allow or deny`},
		{name: "API: bad action", api: true, path: "/policies/ks2/overrides", form: form("allow", "example.org", "toggle"), status: http.StatusBadRequest,
			wantText: `action "toggle": want add or remove`},
		{name: "page: allowing illegal content", path: "/policies/school/overrides", form: form("allow", "illegal.example", ""), status: http.StatusBadRequest,
			wantText: "illegal.example is listed as child-abuse (illegal content); it cannot be allowed for anyone"},
		{name: "page: no reason", path: "/policies/ks2/overrides", form: func(v string) url.Values {
			f := form("deny", "example.com", "")(v)
			f.Del("reason")
			return f
		}, status: http.StatusBadRequest, wantText: "reason is required"},
		{name: "page: stale version", path: "/policies/ks2/overrides", form: func(v string) url.Values {
			return form("deny", "example.com", "")(polStale(v))
		}, status: http.StatusConflict, wantText: "groups deny ks2 example.com: the policy was changed by someone else"},
		{name: "page: no such group", path: "/policies/year9/overrides", form: form("deny", "example.com", ""), status: http.StatusNotFound,
			wantText: `group "year9": no such group`},
	})
	if !polBlocked(e, "ks2", "illegal.example") {
		t.Error("illegal content is not blocked")
	}
	// The page lists the overrides with a remove form each.
	_, body := s.b.get("/policies")
	if !strings.Contains(body, `<input type="hidden" name="target" value="example.org">`) {
		t.Error("the page has no remove form for ks2's example.org")
	}
}

func polPoliciesSchedules(t *testing.T, s *polSession) {
	schedules := func(want ...string) func(t *testing.T, p categories.Policy) {
		return func(t *testing.T, p categories.Policy) {
			var got []string
			for _, s := range polGroup(t, p, "sixth-form").Schedules {
				got = append(got, strings.Join(s.Days, ",")+" "+s.From+"-"+s.To+" +"+strings.Join(s.Allow, ",")+" -"+strings.Join(s.Block, ","))
			}
			if !slices.Equal(got, want) {
				t.Errorf("schedules %q, want %q", got, want)
			}
		}
	}
	lunch := "mon,tue,wed,thu,fri 12:30-13:30 +social-networks,chat -"
	polRun(t, s, "/policies", []polCheck{
		{name: "page: lunchtime", path: "/policies/sixth-form/schedules", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"lunchtime access"}, "days": {"fri", "mon", "tue", "wed", "thu"}, "from": {"12:30"}, "to": {"13:30"},
				"allow": {"social-networks", "chat"}}
		}, status: http.StatusOK, effect: polPolicy, wantText: "Added to sixth-form: mon,tue,wed,thu,fri 12:30-13:30", check: schedules(lunch)},
		{name: "API: evenings with a day spec", api: true, path: "/policies/sixth-form/schedules", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"homework"}, "days": {"sat-sun"}, "from": {"18:00"}, "to": {"20:00"}, "block": {"games"}}
		}, status: http.StatusOK, effect: polPolicy, check: schedules(lunch, "sat,sun 18:00-20:00 + -games")},
		{name: "API: bad time", api: true, path: "/policies/sixth-form/schedules", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "days": {"mon"}, "from": {"25:00"}, "to": {"26:00"}, "block": {"games"}}
		}, status: http.StatusBadRequest, wantText: `time "25:00": want HH:MM`},
		{name: "API: no category", api: true, path: "/policies/sixth-form/schedules", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "days": {"mon"}, "from": {"10:00"}, "to": {"11:00"}}
		}, status: http.StatusBadRequest, wantText: "changes no category"},
		{name: "API: bad day", api: true, path: "/policies/sixth-form/schedules", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "days": {"funday"}, "from": {"10:00"}, "to": {"11:00"}, "block": {"games"}}
		}, status: http.StatusBadRequest, wantText: `"funday" is not a day`},
		{name: "page: no days", path: "/policies/sixth-form/schedules", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "from": {"10:00"}, "to": {"11:00"}, "block": {"games"}}
		}, status: http.StatusBadRequest, wantText: "days: tick at least one day"},
		{name: "page: a window cannot open illegal content", path: "/policies/sixth-form/schedules", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "days": {"mon"}, "from": {"10:00"}, "to": {"11:00"}, "allow": {"terrorism"}}
		}, status: http.StatusBadRequest, wantText: `allow "terrorism": terrorism for sixth-form is locked (illegal content`},
		{name: "page: unknown category", path: "/policies/sixth-form/schedules", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "days": {"mon"}, "from": {"10:00"}, "to": {"11:00"}, "block": {"gamez"}}
		}, status: http.StatusBadRequest, wantText: `unknown category "gamez"`},
		{name: "page: remove a window that is not there", path: "/policies/sixth-form/schedules", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "action": {"remove"}, "index": {"3"}}
		}, status: http.StatusBadRequest, wantText: "index 3: group sixth-form has 2 timetable windows"},
		{name: "page: remove the first", path: "/policies/sixth-form/schedules", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"trial over"}, "action": {"remove"}, "index": {"1"}}
		}, status: http.StatusOK, effect: polPolicy, wantText: "Removed window 1 from sixth-form.", check: schedules("sat,sun 18:00-20:00 + -games")},
		{name: "page: stale version", path: "/policies/sixth-form/schedules", form: func(v string) url.Values {
			return url.Values{"version": {polStale(v)}, "reason": {"r"}, "action": {"remove"}, "index": {"1"}}
		}, status: http.StatusConflict, wantText: "changed by someone else", check: schedules("sat,sun 18:00-20:00 + -games")},
		{name: "page: school has no schedules", path: "/policies/school/schedules", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "days": {"mon"}, "from": {"10:00"}, "to": {"11:00"}, "block": {"games"}}
		}, status: http.StatusBadRequest, wantText: "school-wide allow and deny overrides"},
	})
}

func polPoliciesAddRemoveGroup(t *testing.T, s *polSession) {
	e := s.e
	e.write(func(s *store.Store) error {
		return s.AddUser("test", "test", store.User{Name: "y6.pupil", Group: "ks2"}, testPassword)
	})
	polRun(t, s, "/policies", []polCheck{
		{name: "page: a copy of ks2", path: "/groups", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"residential trip"}, "name": {"year6-trip"}, "like": {"ks2"}, "description": {"Year 6 trip laptops"}}
		}, status: http.StatusOK, effect: polPolicy, wantText: "Group year6-trip added", check: func(t *testing.T, p categories.Policy) {
			g, ks2 := polGroup(t, p, "year6-trip"), polGroup(t, p, "ks2")
			if !slices.Equal(g.Blocked, ks2.Blocked) || g.Description != "Year 6 trip laptops" || g.Mode != ks2.Mode {
				t.Errorf("year6-trip is %+v", g)
			}
		}},
		{name: "API: a new policy", api: true, path: "/groups", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"visitors"}, "name": {"visitors"}, "mode": {"allowlist"}}
		}, status: http.StatusOK, effect: polPolicy, check: func(t *testing.T, p categories.Policy) {
			if g := polGroup(t, p, "visitors"); g.Mode != categories.ModeAllowlist || !slices.Contains(g.Blocked, "adult") || slices.Contains(g.Blocked, "games") {
				t.Errorf("visitors is %+v", g)
			}
		}},
		{name: "API: taken name", api: true, path: "/groups", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "name": {"ks2"}}
		}, status: http.StatusBadRequest, wantText: `group "ks2" already exists`},
		{name: "API: bad name", api: true, path: "/groups", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "name": {"Year 6"}}
		}, status: http.StatusBadRequest, wantText: `name: group name "Year 6": use lower-case letters, digits and '-'`},
		{name: "API: reserved name", api: true, path: "/groups", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}, "name": {"school"}}
		}, status: http.StatusBadRequest, wantText: "reserved for school-wide overrides"},
		{name: "API: remove visitors", api: true, path: "/groups/visitors/remove", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"no visitors this term"}}
		}, status: http.StatusOK, effect: polPolicy, check: func(t *testing.T, p categories.Policy) {
			if slices.ContainsFunc(p.Groups, func(g categories.Group) bool { return g.Name == "visitors" }) {
				t.Error("visitors is still there")
			}
		}},
		{name: "page: a group client ranges use", path: "/groups/ks2/remove", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}}
		}, status: http.StatusBadRequest, wantText: `user y6.pupil is in group "ks2"`},
		{name: "page: stale version", path: "/groups/year6-trip/remove", form: func(v string) url.Values {
			return url.Values{"version": {polStale(v)}, "reason": {"r"}}
		}, status: http.StatusConflict, wantText: "groups remove year6-trip: the policy was changed by someone else"},
		{name: "page: no such group", path: "/groups/year9/remove", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}}
		}, status: http.StatusNotFound, wantText: `group "year9": no such group`},
	})
	e.write(func(s *store.Store) error { return s.RemoveUser("test", "test", "y6.pupil") })
	polRun(t, s, "/policies", []polCheck{
		{name: "page: a group client ranges use", path: "/groups/ks2/remove", form: func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"r"}}
		}, status: http.StatusBadRequest, wantText: `client range 10.0.0.0/8 still uses group "ks2"`},
	})
}

// FuzzParseMatrixCells feeds the matrix parser arbitrary "block" values:
// it must never panic, must accept only a valid group with a blocking
// category, and what it accepts must read back the same.
func FuzzParseMatrixCells(f *testing.F) {
	for _, seed := range []string{"ks2:games", "ks2:child-abuse", "ks2:kids", ":games", "ks2:", "ks2", "Ks2:games", "a-b:adult\nks2:chat", " ks2:games ", "école:games", "ks2:games:x"} {
		f.Add(seed)
	}
	tax := categories.Builtin()
	f.Fuzz(func(t *testing.T, in string) {
		values := strings.Split(in, "\n")
		got, err := parseMatrixCells(tax, values)
		if err != nil {
			if !strings.Contains(err.Error(), "want GROUP:CATEGORY") {
				t.Fatalf("error %q does not say what was expected", err)
			}
			return
		}
		var again []string
		for g, cats := range got {
			if categories.ValidGroupName(g) != nil {
				t.Fatalf("accepted the group %q", g)
			}
			for slug := range cats {
				if c, ok := tax.Lookup(slug); !ok || c.Kind != categories.KindBlock {
					t.Fatalf("accepted the category %q", slug)
				}
				again = append(again, g+":"+slug)
			}
		}
		if len(again) > len(values) {
			t.Fatalf("%d cells from %d values", len(again), len(values))
		}
		back, err := parseMatrixCells(tax, again)
		if err != nil || len(back) != len(got) {
			t.Fatalf("read back %v, %v; want %v", back, err, got)
		}
		for g, cats := range got {
			if len(back[g]) != len(cats) {
				t.Fatalf("read back %v, want %v", back, got)
			}
		}
	})
}
