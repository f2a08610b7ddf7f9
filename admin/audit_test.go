package admin

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"hedgerow/store"
)

type auditTestPage struct {
	Records []store.AuditRecord `json:"records"`
	Next    uint64              `json:"next_before"`
}

func auditTestGet(t *testing.T, e *testEnv, tok, query string) (int, auditTestPage, string) {
	t.Helper()
	resp, body := e.api(tok, http.MethodGet, "/audit?"+query, "")
	var p auditTestPage
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
	}
	return resp.StatusCode, p, body
}

// TestAuditLog makes real changes and incident views through the UI, then
// reads them back through the audit page and API with its filters.
func TestAuditLog(t *testing.T) {
	e := newTestEnv(t)
	const xss = `<img src=x onerror=alert(1)>`
	e.write(func(s *store.Store) error {
		now := time.Now().UTC()
		if err := s.SaveIncidents([]store.Incident{{First: now, Last: now, Count: 1, Channel: "dns", Client: "10.0.0.7", User: "jamie",
			Group: "ks2", Host: "adult.example", Category: "adult", Severity: "high", Rule: "category", Blocked: true, Review: true, State: store.StateNew}}); err != nil {
			return err
		}
		return s.AddUser("test", "IT lead who is also the DSL", store.User{Name: "both", Roles: []string{store.RoleAdmin, store.RoleDSL}}, testPassword)
	})
	ada := e.browser().login("ada")
	dora := e.browser().login("dora")
	tok := e.token("ada")

	if resp, body := ada.post("/lists/entries", url.Values{"target": {"newsite.example"}, "category": {"games"}, "reason": {"games " + xss}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("add: %d %s", resp.StatusCode, body)
	}
	if resp, _ := dora.get("/incidents/1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("dora views incident 1: %d", resp.StatusCode)
	}
	if resp, body := dora.post("/incidents/1/review", url.Values{"state": {store.StateReviewed}, "note": {"spoke to Jamie in Y5"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("review: %d %s", resp.StatusCode, body)
	}

	var all []store.AuditRecord
	e.read(func(s *store.Store) error { var err error; all, err = s.Audit(0); return err })

	for _, tc := range []struct {
		name, query string
		want        func(r store.AuditRecord) bool
	}{
		{"everything", "", func(store.AuditRecord) bool { return true }},
		{"list edits", "action=lists", func(r store.AuditRecord) bool { return strings.HasPrefix(r.Action, "lists") }},
		{"incident views and reviews", "action=incidents-", func(r store.AuditRecord) bool { return strings.HasPrefix(r.Action, "incidents-") }},
		{"who viewed which incident", "action=incidents-show", func(r store.AuditRecord) bool { return r.Action == "incidents-show" }},
		{"one person, any case", "actor=DORA", func(r store.AuditRecord) bool { return r.Actor == "dora" }},
		{"both filters", "actor=ada&action=lists", func(r store.AuditRecord) bool { return r.Actor == "ada" && strings.HasPrefix(r.Action, "lists") }},
		{"nothing matches", "actor=nobody", func(store.AuditRecord) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []uint64
			for _, r := range all {
				if tc.want(r) {
					want = append(want, r.Seq)
				}
			}
			status, p, body := auditTestGet(t, e, tok, tc.query)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			var got []uint64
			for _, r := range p.Records {
				got = append(got, r.Seq)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("records %v, want %v (newest first)", got, want)
			}
			if tc.name != "nothing matches" && len(want) == 0 {
				t.Errorf("the test made no %s records", tc.name)
			}
			resp, page := ada.get("/audit?" + tc.query)
			rows := max(0, strings.Count(page, "<tr>")-1) // less the heading
			if resp.StatusCode != http.StatusOK || rows != len(want) {
				t.Errorf("page: status %d, %d rows, want %d", resp.StatusCode, rows, len(want))
			}
		})
	}

	// Paging: every record once, newest first, whatever the page size.
	for _, limit := range []int{1, 2, 3} {
		var seqs []uint64
		before := uint64(0)
		for range len(all) + 1 {
			q := fmt.Sprintf("limit=%d", limit)
			if before != 0 {
				q += fmt.Sprintf("&before=%d", before)
			}
			_, p, body := auditTestGet(t, e, tok, q)
			if len(p.Records) > limit {
				t.Fatalf("limit %d: %d records: %s", limit, len(p.Records), body)
			}
			for _, r := range p.Records {
				seqs = append(seqs, r.Seq)
			}
			if p.Next == 0 {
				break
			}
			before = p.Next
		}
		var want []uint64
		for _, r := range all {
			want = append(want, r.Seq)
		}
		if fmt.Sprint(seqs) != fmt.Sprint(want) {
			t.Errorf("limit %d: paged through %v, want %v", limit, seqs, want)
		}
	}

	// What the page shows: the change as JSON in a <details>, escaped; the
	// DSL's note kept from IT staff who are not the DSL.
	_, page := ada.get("/audit")
	for _, want := range []string{"<details><summary>Before and after</summary>", "<pre>{\n  &#34;target&#34;: &#34;newsite.example&#34;",
		html.EscapeString("games " + xss), "incidents-show", "incident 1", "(the note is visible to the DSL)"} {
		if !strings.Contains(page, want) {
			t.Errorf("audit page lacks %q", want)
		}
	}
	if strings.Contains(page, xss) || strings.Contains(page, "Jamie") {
		t.Errorf("audit page shows unescaped input or the DSL's note")
	}
	_, _, body := auditTestGet(t, e, tok, "action=incidents-review")
	if strings.Contains(body, "Jamie") {
		t.Errorf("audit API shows the DSL's note to IT staff: %s", body)
	}
	_, page = e.browser().login("both").get("/audit?action=incidents-review")
	if !strings.Contains(page, "spoke to Jamie in Y5") {
		t.Errorf("the DSL does not see their note in the audit log")
	}
	_, p, _ := auditTestGet(t, e, tok, "action=lists-add&actor=ada")
	var after store.LocalEntry
	if len(p.Records) != 1 || json.Unmarshal(p.Records[0].After, &after) != nil || after.Target != "newsite.example" || fmt.Sprint(after.Categories) != "[games]" {
		t.Errorf("API record without its change: %+v", p.Records)
	}

	for _, tc := range []struct{ query, msg string }{
		{"limit=0", `limit \"0\": want a number from 1 to 1000`},
		{"limit=1001", `limit \"1001\": want a number from 1 to 1000`},
		{"limit=ten", `limit \"ten\"`},
		{"before=x", `before \"x\": want the record number`},
	} {
		if status, _, body := auditTestGet(t, e, tok, tc.query); status != http.StatusBadRequest || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: status %d %s, want 400 saying %s", tc.query, status, body, tc.msg)
		}
	}
}

// TestQueryAuditReadsFurtherBack finds rare records behind many others:
// the window read from the store must grow until it reaches them.
func TestQueryAuditReadsFurtherBack(t *testing.T) {
	e := newTestEnv(t) // its setup wrote one lists-add record, the oldest
	e.write(func(s *store.Store) error {
		for i := range 300 {
			if err := s.RecordView("dora", "incidents-view", fmt.Sprintf("incidents %d from 10.0.0.1", i+1)); err != nil {
				return err
			}
		}
		return nil
	})
	var hundredth uint64
	e.read(func(s *store.Store) error {
		all, err := s.Audit(0)
		for _, r := range all {
			if r.Target == "incidents 100 from 10.0.0.1" {
				hundredth = r.Seq
			}
		}
		return err
	})
	for _, tc := range []struct {
		name  string
		q     auditQuery
		n     int
		more  bool
		first string
	}{
		{"rare, far back", auditQuery{Prefixes: []string{"lists"}, Limit: 5}, 1, false, "adult.example"},
		{"common, a page", auditQuery{Prefixes: []string{"incidents-"}, Limit: 200}, 200, true, "incidents 300 from 10.0.0.1"},
		{"common, the last page", auditQuery{Prefixes: []string{"incidents-"}, Actor: "dora", Limit: 200, Before: hundredth + 1}, 100, false, "incidents 100 from 10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var recs []store.AuditRecord
			var more bool
			e.read(func(s *store.Store) error {
				var err error
				recs, more, err = queryAudit(s, tc.q)
				return err
			})
			if len(recs) != tc.n || more != tc.more || len(recs) == 0 || recs[0].Target != tc.first {
				t.Fatalf("%d records (more %v); want %d (more %v), first %q", len(recs), more, tc.n, tc.more, tc.first)
			}
		})
	}
}
