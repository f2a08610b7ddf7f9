package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"hedgerow/categories"
	"hedgerow/store"
)

// polReport files a block-page report as the proxy does.
func polReport(t *testing.T, e *testEnv, r store.Report) uint64 {
	t.Helper()
	var id uint64
	e.write(func(s *store.Store) error {
		var err error
		id, err = s.AddReport(r)
		return err
	})
	return id
}

// polReportState is a stored report's state.
func polReportState(t *testing.T, e *testEnv, id uint64) string {
	t.Helper()
	var r store.Report
	e.read(func(s *store.Store) error {
		var err error
		r, err = s.Report(id)
		return err
	})
	return r.State
}

func TestUnblockRequests(t *testing.T) {
	s := newPolSession(t)
	e := s.e
	e.write(func(st *store.Store) error {
		for _, en := range [][2]string{{"illegal.example", "child-abuse"}, {"games.example.org", "games"}, {"lesson.example.net", "games"}} {
			if err := st.AddEntry("test", en[0], []string{en[1]}, "test entry"); err != nil {
				return err
			}
		}
		return nil
	})
	e.srv.d.Changed()
	if !polBlocked(e, "ks2", "games.example.org") || !polBlocked(e, "ks3-ks4", "www.lesson.example.net") {
		t.Fatal("the requested sites are not blocked to begin with")
	}
	homework := polReport(t, e, store.Report{Kind: store.ReportUnblock, Client: "10.1.2.3", User: "jo.bloggs", Group: "ks2",
		URL: "https://games.example.org/maths", Host: "games.example.org", Category: "games", Message: "for <b>maths</b> homework"})
	lesson := polReport(t, e, store.Report{Kind: store.ReportUnblock, Client: "10.1.2.4", URL: "https://Lesson.Example.net/page", Message: "lesson"})
	declined := polReport(t, e, store.Report{Kind: store.ReportUnblock, Client: "10.1.2.5", Group: "ks2", Host: "chat.example.com"})
	illegal := polReport(t, e, store.Report{Kind: store.ReportUnblock, Client: "10.1.2.6", Group: "ks2", Host: "illegal.example"})
	gone := polReport(t, e, store.Report{Kind: store.ReportUnblock, Client: "10.1.2.7", Group: "year9", Host: "example.com"})
	concern := polReport(t, e, store.Report{Kind: store.ReportConcern, Client: "10.1.2.8", Message: "worried"})

	// IT staff see the requests, newest first, with pseudonyms only.
	_, body := s.b.get("/requests")
	key, err := e.srv.pseudonymKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"10.1.2.3", "jo.bloggs", "worried"} {
		if strings.Contains(body, secret) {
			t.Errorf("the requests page shows %q to IT staff", secret)
		}
	}
	for _, want := range []string{store.Pseudonym(key, "client:10.1.2.3"), store.Pseudonym(key, "user:jo.bloggs"), "for &lt;b&gt;maths&lt;/b&gt; homework"} {
		if !strings.Contains(body, want) {
			t.Errorf("the requests page lacks %q", want)
		}
	}
	if i, j := strings.Index(body, fmt.Sprintf(`id="request-%d"`, gone)), strings.Index(body, fmt.Sprintf(`id="request-%d"`, homework)); i < 0 || j < 0 || i > j {
		t.Error("requests are not listed newest first")
	}
	resp, raw := e.api(s.tok, http.MethodGet, "/requests", "")
	var page requestsPage
	if err := json.Unmarshal([]byte(raw), &page); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("API: status %d, %v: %s", resp.StatusCode, err, raw)
	}
	if len(page.Requests) != 5 || page.Requests[4].Client != store.Pseudonym(key, "client:10.1.2.3") || !page.Requests[4].Pseudonymised {
		t.Errorf("API: %+v", page.Requests)
	}

	state := func(id uint64, want string) func(t *testing.T, _ categories.Policy) {
		return func(t *testing.T, _ categories.Policy) {
			if got := polReportState(t, e, id); got != want {
				t.Errorf("request %d is %s, want %s", id, got, want)
			}
		}
	}
	note := func(scope, n string) func(string) url.Values {
		return func(string) url.Values { return url.Values{"note": {n}, "scope": {scope}} }
	}
	path := func(id uint64, verb string) string { return fmt.Sprintf("/requests/%d/%s", id, verb) }
	polRun(t, s, "/requests", []polCheck{
		{name: "page: approve without a note", path: path(homework, "approve"), form: note("", ""), status: http.StatusBadRequest,
			wantText: "note is required", check: state(homework, store.ReportNew)},
		{name: "page: approve for the group", path: path(homework, "approve"), form: note("", "fine for Year 5"), status: http.StatusOK, effect: polApproved,
			wantText: fmt.Sprintf("Unblock request %d approved: group ks2 now allows games.example.org.", homework), check: func(t *testing.T, p categories.Policy) {
				state(homework, store.ReportApproved)(t, p)
				if !slices.Contains(polGroup(t, p, "ks2").Allow, "games.example.org") {
					t.Error("ks2 has no allow override for games.example.org")
				}
			}},
		{name: "API: approve again", api: true, path: path(homework, "approve"), form: note("group", "again"), status: http.StatusConflict,
			wantText: fmt.Sprintf("unblock request %d is already approved", homework)},
		{name: "API: without a group, for the group", api: true, path: path(lesson, "approve"), form: note("group", "ok"), status: http.StatusBadRequest,
			wantText: "does not say which group the device was in; approve it for every group (school-wide) instead", check: state(lesson, store.ReportNew)},
		{name: "API: bad scope", api: true, path: path(lesson, "approve"), form: note("class", "ok"), status: http.StatusBadRequest,
			wantText: `scope "class": want group`, check: state(lesson, store.ReportNew)},
		{name: "API: approve school-wide", api: true, path: path(lesson, "approve"), form: note("school", "whole-school lesson"), status: http.StatusOK, effect: polApproved,
			wantText: "every group now allows lesson.example.net", check: func(t *testing.T, p categories.Policy) {
				state(lesson, store.ReportApproved)(t, p)
				if !slices.Contains(p.School.Allow, "lesson.example.net") {
					t.Error("no school-wide allow override for lesson.example.net")
				}
			}},
		{name: "API: illegal content stays blocked and the request new", api: true, path: path(illegal, "approve"), form: note("school", "ok"), status: http.StatusBadRequest,
			wantText: "illegal.example is listed as child-abuse (illegal content)", check: state(illegal, store.ReportNew)},
		{name: "API: a group that no longer exists", api: true, path: path(gone, "approve"), form: note("group", "ok"), status: http.StatusBadRequest,
			wantText: `group "year9": no such group`, check: state(gone, store.ReportNew)},
		{name: "API: a concern is no unblock request", api: true, path: path(concern, "approve"), form: note("school", "ok"), status: http.StatusNotFound,
			wantText: fmt.Sprintf("unblock request %d: there is none with that number", concern), check: state(concern, store.ReportNew)},
		{name: "API: no such request", api: true, path: path(999, "approve"), form: note("school", "ok"), status: http.StatusNotFound,
			wantText: "report 999: no such report"},
		{name: "page: decline without a note", path: path(declined, "decline"), form: note("", ""), status: http.StatusBadRequest,
			wantText: "note is required: say why the site stays blocked", check: state(declined, store.ReportNew)},
		{name: "page: decline", path: path(declined, "decline"), form: note("", "chat is not for lessons"), status: http.StatusOK, effect: polAudited,
			wantText: fmt.Sprintf("Unblock request %d declined.", declined), check: state(declined, store.ReportDeclined)},
		{name: "API: decline a decided one", api: true, path: path(homework, "decline"), form: note("", "changed my mind"), status: http.StatusConflict,
			wantText: "is already approved", check: state(homework, store.ReportApproved)},
		{name: "API: decline", api: true, path: path(illegal, "decline"), form: note("", "illegal"), status: http.StatusOK, effect: polAudited,
			check: state(illegal, store.ReportDeclined)},
	})
	if !polBlocked(e, "ks2", "illegal.example") || polBlocked(e, "ks2", "games.example.org") || polBlocked(e, "ks3-ks4", "www.lesson.example.net") {
		t.Error("the running filter does not reflect the approvals")
	}
	// The override's reason is the request, with the administrator's note.
	var found bool
	for _, a := range polAudit(t, e, 20) {
		if a.Action == "groups allow ks2 games.example.org" {
			found = true
			want := fmt.Sprintf("unblock request %d from the block page: for <b>maths</b> homework; approved by ada: fine for Year 5", homework)
			if a.Reason != want || a.Actor != "ada" {
				t.Errorf("audit record %+v, want the reason %q", a, want)
			}
		}
	}
	if !found {
		t.Error("no audit record of the approval's override")
	}
	_, body = s.b.get("/requests")
	if strings.Count(body, `action="/requests/`) != 2*1 { // only "gone" is still new
		t.Errorf("decided requests still offer approve and decline:\n%s", body)
	}
}

func TestConcerns(t *testing.T) {
	s := newPolSession(t)
	e := s.e
	dsl := s.as("dora")
	first := polReport(t, e, store.Report{Kind: store.ReportConcern, Client: "10.1.2.3", User: "jo.bloggs", Group: "ks2",
		URL: "https://forum.example.org/t/1", Host: "forum.example.org", Message: "someone is <i>bullying</i> me"})
	second := polReport(t, e, store.Report{Kind: store.ReportConcern, Client: "10.1.2.4", Message: "a friend is sad"})
	unblock := polReport(t, e, store.Report{Kind: store.ReportUnblock, Client: "10.1.2.5", Host: "example.com"})

	// The DSL sees who, and each look is audited with the reports and the
	// address it came from.
	audits := polAuditCount(t, e)
	_, body := dsl.b.get("/concerns")
	for _, want := range []string{"10.1.2.3", "jo.bloggs", "someone is &lt;i&gt;bullying&lt;/i&gt; me", "https://forum.example.org/t/1"} {
		if !strings.Contains(body, want) {
			t.Errorf("the concerns page lacks %q", want)
		}
	}
	if strings.Contains(body, "example.com") {
		t.Error("an unblock request is in the concerns queue")
	}
	resp, raw := e.api(dsl.tok, http.MethodGet, "/concerns", "")
	var page concernsPage
	if err := json.Unmarshal([]byte(raw), &page); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("API: status %d, %v: %s", resp.StatusCode, err, raw)
	}
	if len(page.Concerns) != 2 || page.Concerns[1].User != "jo.bloggs" {
		t.Errorf("API: %+v", page.Concerns)
	}
	recs := polAudit(t, e, 2)
	if polAuditCount(t, e) != audits+2 {
		t.Fatalf("%d audit records for two looks, want 2", polAuditCount(t, e)-audits)
	}
	for _, a := range recs {
		if want := fmt.Sprintf("reports %d,%d from 127.0.0.1", second, first); a.Actor != "dora" || a.Action != "concerns-view" || a.Target != want {
			t.Errorf("audit record %+v, want dora's concerns-view of %q", a, want)
		}
	}

	state := func(id uint64, want string) func(t *testing.T, _ categories.Policy) {
		return func(t *testing.T, _ categories.Policy) {
			if got := polReportState(t, e, id); got != want {
				t.Errorf("report %d is %s, want %s", id, got, want)
			}
		}
	}
	note := func(n string) func(string) url.Values {
		return func(string) url.Values { return url.Values{"note": {n}} }
	}
	path := func(id uint64) string { return fmt.Sprintf("/concerns/%d/done", id) }
	polRun(t, dsl, "/concerns", []polCheck{
		{name: "page: without a note", path: path(first), form: note(""), status: http.StatusBadRequest,
			wantText: "note is required: say what was seen and what was done", check: state(first, store.ReportNew)},
		{name: "page: done", path: path(first), form: note("spoke to Jo and her form tutor"), status: http.StatusOK, effect: polAudited,
			wantText: fmt.Sprintf("Concern %d marked done.", first), check: state(first, store.ReportDone)},
		{name: "API: done again", api: true, path: path(first), form: note("again"), status: http.StatusConflict,
			wantText: fmt.Sprintf("concern %d is already done", first)},
		{name: "API: an unblock request is no concern", api: true, path: path(unblock), form: note("x"), status: http.StatusNotFound,
			wantText: fmt.Sprintf("concern %d: there is none with that number", unblock), check: state(unblock, store.ReportNew)},
		{name: "API: done", api: true, path: path(second), form: note("checked in with them"), status: http.StatusOK, effect: polAudited,
			check: state(second, store.ReportDone)},
	})
	// Waiting concerns come first: file a new one and look.
	third := polReport(t, e, store.Report{Kind: store.ReportConcern, Client: "10.1.2.9", Message: "third"})
	_, body = dsl.b.get("/concerns")
	if i, j := strings.Index(body, fmt.Sprintf(`id="concern-%d"`, third)), strings.Index(body, fmt.Sprintf(`id="concern-%d"`, second)); i < 0 || j < 0 || i > j {
		t.Error("the waiting concern is not listed first")
	}
	var a []store.AuditRecord
	for _, r := range polAudit(t, e, 10) {
		if r.Action == "reports-done" {
			a = append(a, r)
		}
	}
	if len(a) != 2 || a[1].Reason != "spoke to Jo and her form tutor" || a[1].Actor != "dora" {
		t.Errorf("done decisions in the audit log: %+v", a)
	}
}
