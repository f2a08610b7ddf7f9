package store

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// retSubjectFixture writes incidents and reports of three devices and two users.
func retSubjectFixture(t testing.TB, s *Store) {
	t.Helper()
	mk := func(host, client, user string) Incident {
		in := retInc(host, "high", true, StateNew, retDay)
		in.Client, in.User = client, user
		return in
	}
	retSave(t, s,
		mk("a.example", "10.0.0.7", ""),
		mk("b.example", "10.0.0.7", "Alice"),
		mk("c.example", "10.0.0.8", "alice"),
		mk("d.example", "10.0.0.9", "bob"),
		mk("e.example", "10.0.0.70", ""),
	)
	for _, r := range []Report{
		{Kind: ReportUnblock, Client: "10.0.0.7", Host: "r1.example"},
		{Kind: ReportConcern, Client: "10.0.0.8", User: "alice", Host: "r2.example"},
		{Kind: ReportConcern, Client: "10.0.0.9", Host: "r3.example"},
	} {
		if _, err := s.AddReport(r); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSubjectExport(t *testing.T) {
	s, _ := openNew(t)
	retSubjectFixture(t, s)
	for _, tc := range []struct {
		sub           Subject
		incs, reports []string
	}{
		{Subject{Client: "10.0.0.7"}, []string{"a.example", "b.example"}, []string{"r1.example"}},
		// A concern is an incident of its own too (rule concern).
		{Subject{User: "alice"}, []string{"b.example", "c.example", "r2.example"}, []string{"r2.example"}},
		{Subject{Client: "::ffff:10.0.0.9"}, []string{"d.example", "r3.example"}, []string{"r3.example"}},
		{Subject{User: "carol"}, nil, nil},
	} {
		t.Run(tc.sub.String(), func(t *testing.T) {
			n := len(retAuditOf(t, s, "subject-export"))
			d, err := s.SubjectExport("dsl", tc.sub)
			if err != nil {
				t.Fatal(err)
			}
			var incs, reps []string
			for _, in := range d.Incidents {
				incs = append(incs, in.Host)
			}
			for _, r := range d.Reports {
				reps = append(reps, r.Host)
			}
			if !slices.Equal(incs, tc.incs) || !slices.Equal(reps, tc.reports) {
				t.Errorf("exported incidents %v reports %v, want %v %v", incs, reps, tc.incs, tc.reports)
			}
			if d.Subject != tc.sub || d.Exported.IsZero() || d.Incidents == nil || d.Reports == nil {
				t.Errorf("export header %+v", d)
			}
			recs := retAuditOf(t, s, "subject-export")
			if len(recs) != n+1 {
				t.Fatalf("%d subject-export audit records, want %d", len(recs), n+1)
			}
			r := recs[len(recs)-1]
			if got := retCounted(t, recs[n:]); r.Actor != "dsl" || r.Target != tc.sub.String() ||
				got != (PurgeResult{Incidents: len(tc.incs), Reports: len(tc.reports)}) {
				t.Errorf("audit %+v counts %+v", r, got)
			}
		})
	}
	for _, bad := range []struct {
		sub  Subject
		want string
	}{
		{Subject{}, "give a device address or a user name"},
		{Subject{Client: "10.0.0.7", User: "alice"}, "not both"},
		{Subject{Client: "10.0.0.0/24"}, "want an IP address"},
		{Subject{User: "  "}, "give a device address"},
	} {
		if _, err := s.SubjectExport("dsl", bad.sub); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want %q", bad.sub, err, bad.want)
		}
		if _, err := s.SubjectErase("dsl", "request", bad.sub); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("erase %+v: %v, want %q", bad.sub, err, bad.want)
		}
	}
}

func TestSubjectErase(t *testing.T) {
	s, _ := openNew(t)
	retSubjectFixture(t, s)
	if _, err := s.SubjectErase("dsl", " ", Subject{User: "alice"}); err == nil || !strings.Contains(err.Error(), "reason is required") {
		t.Errorf("erase without a reason: %v", err)
	}
	res, err := s.SubjectErase("dsl", "SAR 2026-14 from a parent", Subject{User: "ALICE"})
	if err != nil || res != (PurgeResult{Incidents: 3, Reports: 1}) { // b, c and the concern's own incident
		t.Fatalf("erase: %+v %v", res, err)
	}
	if got := retHosts(t, s); !slices.Equal(got, []string{"a.example", "d.example", "e.example", "r3.example"}) {
		t.Errorf("left %v", got)
	}
	recs := retAuditOf(t, s, "subject-erase")
	if got := retCounted(t, recs); got != res {
		t.Errorf("audited %+v, want %+v", got, res)
	}
	for _, r := range recs {
		if r.Actor != "dsl" || r.Reason != "SAR 2026-14 from a parent" || r.Target != "user ALICE" {
			t.Errorf("audit %+v", r)
		}
	}
	// Nobody found: still audited.
	res, err = s.SubjectErase("dsl", "SAR 2026-15", Subject{User: "carol"})
	if err != nil || res != (PurgeResult{}) {
		t.Fatalf("%+v %v", res, err)
	}
	if recs := retAuditOf(t, s, "subject-erase"); recs[len(recs)-1].Target != "user carol" {
		t.Errorf("an erasure that found nothing was not audited")
	}
	mustCheck(t, s)
}

// TestSubjectEraseCompactLeavesNoTrace is the retMarker test for erasure.
func TestSubjectEraseCompactLeavesNoTrace(t *testing.T) {
	path := dbPath(t)
	c := newClock()
	s, err := Open(path, testTax, Options{Defaults: defaults(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	retSubjectFixture(t, s)
	pupil := retInc("f.example", "low", true, StateEscalated, retDay)
	pupil.Client, pupil.URL, pupil.SearchTerm = "10.0.0.9", "http://f.example/"+retMarker, retMarker
	other := retInc("g.example", "low", true, StateNew, retDay)
	other.Client, other.URL, other.SearchTerm = "10.0.0.99", "http://g.example/"+retKeeper, retKeeper
	retSave(t, s, pupil, other)
	if _, err := s.AddReport(Report{Kind: ReportConcern, Client: "10.0.0.9", Message: retMarker}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if !retRawHas(t, path, retMarker) || !retRawHas(t, path, retKeeper) {
		t.Fatal("the markers are not in the file to begin with")
	}
	s, err = Open(path, testTax, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.SubjectErase("dsl", "erasure request", Subject{Client: "10.0.0.9"})
	if err != nil || res != (PurgeResult{Incidents: 4, Reports: 2}) { // two, and the two concerns' own incidents
		t.Fatalf("erase: %+v %v", res, err)
	}
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	if d, err := s.SubjectExport("dsl", Subject{Client: "10.0.0.9"}); err != nil || len(d.Incidents)+len(d.Reports) != 0 {
		t.Errorf("after erasure the export holds %+v %v", d, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if retRawHas(t, path, retMarker) {
		t.Fatalf("the erased marker %q is still in the database file after compaction", retMarker)
	}
	if !retRawHas(t, path, retKeeper) {
		t.Error("another pupil's data went too")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
}
