package store

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const retDay = 24 * time.Hour

// retNow is the controllable clock the retention tests measure ages against.
var retNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// inc builds an incident last seen ago before retNow.
func retInc(host, severity string, blocked bool, state string, ago time.Duration) Incident {
	t := retNow.Add(-ago)
	return Incident{First: t, Last: t, Count: 1, Channel: ChannelHTTP, Client: "10.0.0.7", Group: "ks2", Host: host,
		URL: "http://" + host + "/", Category: "games", Severity: severity, Rule: "category", Blocked: blocked, State: state}
}

func retSave(t testing.TB, s *Store, incs ...Incident) []uint64 {
	t.Helper()
	if err := s.SaveIncidents(incs); err != nil {
		t.Fatal(err)
	}
	ids := make([]uint64, len(incs))
	for i, in := range incs {
		ids[i] = in.ID
	}
	return ids
}

func retHosts(t testing.TB, s *Store) []string {
	t.Helper()
	incs, err := s.Incidents(IncidentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range incs {
		out = append(out, in.Host)
	}
	slices.Sort(out)
	return out
}

// retAuditOf returns the audit records of one action, oldest first.
func retAuditOf(t testing.TB, s *Store, action string) []AuditRecord {
	t.Helper()
	recs, err := s.Audit(0)
	if err != nil {
		t.Fatal(err)
	}
	var out []AuditRecord
	for _, r := range slices.Backward(recs) {
		if r.Action == action {
			out = append(out, r)
		}
	}
	return out
}

// retCounted sums the counts the audit records of an action carry.
func retCounted(t testing.TB, recs []AuditRecord) PurgeResult {
	t.Helper()
	var sum PurgeResult
	for _, r := range recs {
		var c PurgeResult
		if err := json.Unmarshal(r.After, &c); err != nil {
			t.Fatalf("audit record %d: counts %s: %v", r.Seq, r.After, err)
		}
		sum.Incidents += c.Incidents
		sum.Reports += c.Reports
	}
	return sum
}

func TestPurgeTiers(t *testing.T) {
	s, _ := openNew(t)
	retSave(t, s,
		retInc("low-old.example", "low", true, StateNew, 31*retDay),         // gone: low past 30 days
		retInc("low-recent.example", "low", true, StateNew, 29*retDay),      // kept
		retInc("search-old.example", "", false, StateNew, 31*retDay),        // gone: a monitored search is low tier
		retInc("search-recent.example", "", false, StateNew, 10*retDay),     // kept
		retInc("high-200.example", "high", true, StateReviewed, 200*retDay), // kept: under a year
		retInc("high-366.example", "high", true, StateNew, 366*retDay),      // gone
		retInc("critical-364.example", "critical", true, StateNew, 364*retDay),
		retInc("dismissed-400.example", "high", true, StateDismissed, 400*retDay), // gone
		retInc("escalated-high.example", "critical", true, StateEscalated, 400*retDay),
		retInc("escalated-low.example", "low", true, StateEscalated, 100*retDay),
	)
	for _, r := range []Report{
		{Kind: ReportConcern, Client: "10.0.0.7", Host: "old.example", Time: retNow.Add(-366 * retDay)},
		{Kind: ReportUnblock, Client: "10.0.0.7", Host: "recent.example", Time: retNow.Add(-100 * retDay)},
	} {
		if _, err := s.AddReport(r); err != nil {
			t.Fatal(err)
		}
	}

	res, err := s.Purge("", DefaultRetention(), retNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The old concern's own incident goes with it.
	if want := (PurgeResult{Incidents: 5, Reports: 1}); res != want {
		t.Errorf("purge deleted %+v, want %+v", res, want)
	}
	want := []string{"critical-364.example", "escalated-high.example", "escalated-low.example", "high-200.example",
		"low-recent.example", "search-recent.example"}
	if got := retHosts(t, s); !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
	reps, err := s.Reports("", 0)
	if err != nil || len(reps) != 1 || reps[0].Host != "recent.example" {
		t.Errorf("reports left: %+v %v", reps, err)
	}
	recs := retAuditOf(t, s, "retention-purge")
	if got := retCounted(t, recs); got != res {
		t.Errorf("audit counts %+v, want %+v", got, res)
	}
	for _, r := range recs {
		if r.Actor != RetentionActor || !strings.Contains(r.Reason, "30d") || !strings.Contains(r.Reason, "365d") {
			t.Errorf("audit record %+v: want actor %q and the rule in the reason", r, RetentionActor)
		}
	}

	// Nothing more to delete: no deletion, no audit record.
	n := auditLen(t, s)
	if res, err := s.Purge("cli:it", DefaultRetention(), retNow, 0); err != nil || res != (PurgeResult{}) {
		t.Errorf("second purge: %+v %v", res, err)
	}
	if auditLen(t, s) != n {
		t.Error("a purge that deleted nothing wrote an audit record")
	}

	// Ten years on, escalated incidents are still kept, until released.
	later := retNow.Add(10 * 365 * retDay)
	if _, err := s.Purge("cli:it", DefaultRetention(), later, 0); err != nil {
		t.Fatal(err)
	}
	if got := retHosts(t, s); !slices.Equal(got, []string{"escalated-high.example", "escalated-low.example"}) {
		t.Errorf("ten years on, left %v, want the escalated incidents only", got)
	}
	all, _ := s.Incidents(IncidentFilter{})
	for _, in := range all {
		if in.Host == "escalated-high.example" {
			if err := s.ReviewIncident("dsl", in.ID, StateReviewed, "case closed"); err != nil {
				t.Fatal(err)
			}
		}
	}
	res, err = s.Purge("cli:it", DefaultRetention(), later, 0)
	if err != nil || res != (PurgeResult{Incidents: 1}) {
		t.Errorf("purge after release: %+v %v, want 1 incident", res, err)
	}
	if got := retHosts(t, s); !slices.Equal(got, []string{"escalated-low.example"}) {
		t.Errorf("after release, left %v", got)
	}
	if last := retAuditOf(t, s, "retention-purge"); last[len(last)-1].Actor != "cli:it" {
		t.Errorf("actor %q, want the caller's", last[len(last)-1].Actor)
	}
	mustCheck(t, s)
}

func TestPurgeCustomTiers(t *testing.T) {
	s, _ := openNew(t)
	retSave(t, s, retInc("low-8.example", "low", true, StateNew, 8*retDay), retInc("high-91.example", "high", true, StateNew, 91*retDay),
		retInc("high-89.example", "high", true, StateNew, 89*retDay))
	res, err := s.Purge("", Retention{Low: 7 * retDay, Incidents: 90 * retDay}, retNow, 0)
	if err != nil || res.Incidents != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	if got := retHosts(t, s); !slices.Equal(got, []string{"high-89.example"}) {
		t.Errorf("left %v", got)
	}
	// A unit slip is refused rather than emptying the record.
	for _, r := range []Retention{{Low: 30 * time.Minute}, {Incidents: time.Hour}, {Low: -retDay}} {
		if _, err := s.Purge("", r, retNow, 0); err == nil || !strings.Contains(err.Error(), "at least one day") {
			t.Errorf("retention %+v: err %v, want a refusal", r, err)
		}
	}
}

func TestPurgeBatches(t *testing.T) {
	s, _ := openNew(t)
	var incs []Incident
	for i := range 5 {
		incs = append(incs, retInc("old"+string(rune('a'+i))+".example", "low", true, StateNew, 40*retDay))
	}
	incs = append(incs, retInc("kept.example", "high", true, StateNew, 40*retDay))
	retSave(t, s, incs...)
	before := txID(t, s)
	res, err := s.Purge("", DefaultRetention(), retNow, 2)
	if err != nil || res != (PurgeResult{Incidents: 5}) {
		t.Fatalf("purge: %+v %v, want 5 incidents", res, err)
	}
	if got := retHosts(t, s); !slices.Equal(got, []string{"kept.example"}) {
		t.Errorf("left %v", got)
	}
	recs := retAuditOf(t, s, "retention-purge")
	var sizes []int
	for _, r := range recs {
		var c PurgeResult
		_ = json.Unmarshal(r.After, &c)
		sizes = append(sizes, c.Incidents)
	}
	if !slices.Equal(sizes, []int{2, 2, 1}) {
		t.Errorf("deletions per audited transaction %v, want [2 2 1]", sizes)
	}
	if n := txID(t, s) - before; n != 3 {
		t.Errorf("%d write transactions, want 3 (batches of at most 2)", n)
	}
}

// retRawHas reports whether the database file's bytes contain s.
func retRawHas(t testing.TB, path, s string) bool {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(raw, []byte(s))
}

const (
	retMarker = "MARKER-7f3a9c-pupil-secret"
	retKeeper = "KEEPER-51bd02-still-needed"
)

// TestPurgeCompactLeavesNoTrace is the retMarker test: after a purge
// and a compaction, deleted personal data is nowhere in the file.
func TestPurgeCompactLeavesNoTrace(t *testing.T) {
	path := dbPath(t)
	c := newClock()
	s, err := Open(path, testTax, Options{Defaults: defaults(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	var incs []Incident
	for i := range 300 {
		in := retInc("old.example", "low", true, StateNew, 40*retDay)
		in.URL = "http://old.example/" + retMarker + "/" + string(rune('a'+i%26))
		in.SearchTerm = retMarker
		incs = append(incs, in)
	}
	kept := retInc("kept.example", "high", true, StateNew, 40*retDay)
	kept.URL, kept.SearchTerm = "http://kept.example/"+retKeeper, retKeeper
	incs = append(incs, kept)
	retSave(t, s, incs...)
	if _, err := s.AddReport(Report{Kind: ReportConcern, Client: "10.0.0.7", URL: "http://x.example/" + retMarker,
		Message: retMarker, Time: retNow.Add(-400 * retDay)}); err != nil {
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
	res, err := s.Purge("", DefaultRetention(), retNow, 0)
	if err != nil || res != (PurgeResult{Incidents: 301, Reports: 1}) { // 300, and the concern's own
		t.Fatalf("purge: %+v %v", res, err)
	}
	if !retRawHas(t, path, retMarker) {
		t.Log("note: the deleted bytes were already gone before compaction")
	} else {
		t.Log("after Purge and before Compact the deleted marker is still in the file (free pages), as expected")
	}
	before, _ := os.Stat(path)
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	// The store is usable after compaction, and kept what it should.
	mustCheck(t, s)
	if got := retHosts(t, s); !slices.Equal(got, []string{"kept.example"}) {
		t.Errorf("after compaction, left %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if retRawHas(t, path, retMarker) {
		t.Fatalf("the purged marker %q is still in the database file after compaction", retMarker)
	}
	if !retRawHas(t, path, retKeeper) {
		t.Error("compaction lost the kept incident's bytes")
	}
	after, _ := os.Stat(path)
	t.Logf("file %d bytes before compaction, %d after", before.Size(), after.Size())
	if after.Mode().Perm() != 0o600 {
		t.Errorf("compacted file mode %v, want 0600", after.Mode().Perm())
	}
	if left, _ := filepath.Glob(path + compactSuffix + "*"); len(left) > 0 {
		t.Errorf("temporary copies left behind: %v", left)
	}
	// It reopens as a hedgerow database with everything else intact.
	s, err = Open(path, testTax, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(retAuditOf(t, s, "init")) != 1 || len(retAuditOf(t, s, "retention-purge")) != 2 {
		t.Error("audit trail not intact after compaction")
	}
}

func TestCompactKeepsSequencesAndWorks(t *testing.T) {
	s, _ := openNew(t)
	ids := retSave(t, s, retInc("a.example", "high", true, StateNew, retDay), retInc("b.example", "high", true, StateNew, retDay))
	if _, err := s.AddReport(Report{Kind: ReportUnblock, Client: "10.0.0.7"}); err != nil {
		t.Fatal(err)
	}
	nAudit := auditLen(t, s)
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	// New records continue the sequences: nothing is overwritten.
	next := retSave(t, s, retInc("c.example", "high", true, StateNew, retDay))
	if next[0] != ids[1]+1 {
		t.Errorf("incident after compaction got ID %d, want %d", next[0], ids[1]+1)
	}
	if id, err := s.AddReport(Report{Kind: ReportUnblock, Client: "10.0.0.7"}); err != nil || id != 2 {
		t.Errorf("report after compaction got ID %d (%v), want 2", id, err)
	}
	if err := s.RecordView("dsl", "incidents-list", "x"); err != nil {
		t.Fatal(err)
	}
	if recs, _ := s.Audit(1); recs[0].Seq != uint64(nAudit+1) {
		t.Errorf("audit sequence after compaction %d, want %d", recs[0].Seq, nAudit+1)
	}
	if got := retHosts(t, s); !slices.Equal(got, []string{"a.example", "b.example", "c.example"}) {
		t.Errorf("incidents %v", got)
	}
}

func TestCompactRefusesReadOnly(t *testing.T) {
	path := dbPath(t)
	s, err := Open(path, testTax, Options{Defaults: defaults()})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	ro, err := Open(path, testTax, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Compact(); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("compact of a read-only store: %v", err)
	}
}

// TestCompactWhileAnotherWaits: a writer that opened the file before the
// swap and waits for the lock (serve's incident writer) must not write into
// the replaced file, where its incidents would be lost.
func TestCompactWhileAnotherWaits(t *testing.T) {
	path := dbPath(t)
	s, err := Open(path, testTax, Options{Defaults: defaults()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	retSave(t, s, retInc("a.example", "high", true, StateNew, retDay))
	type result struct {
		err   error
		saved bool
	}
	done := make(chan result, 1)
	go func() {
		w, err := Open(path, testTax, Options{LockTimeout: 20 * time.Second})
		if err != nil {
			done <- result{err: err}
			return
		}
		defer w.Close()
		err = w.SaveIncidents([]Incident{retInc("late.example", "high", true, StateNew, retDay)})
		done <- result{err: err, saved: err == nil}
	}()
	time.Sleep(300 * time.Millisecond) // the waiter has opened the old file and polls for its lock
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	s, err = Open(path, testTax, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := retHosts(t, s)
	switch {
	case r.saved:
		t.Logf("the waiter reached the new file")
		if !slices.Contains(got, "late.example") {
			t.Fatalf("the waiter's write is lost: incidents %v", got)
		}
	case r.err != nil:
		t.Logf("the waiter on the old file was refused: %v", r.err)
		if !strings.Contains(r.err.Error(), "invalid") {
			t.Errorf("waiter error %v, want bbolt's invalid database", r.err)
		}
		if slices.Contains(got, "late.example") {
			t.Error("a refused write is in the file")
		}
	}
	if !slices.Contains(got, "a.example") {
		t.Errorf("incidents %v", got)
	}
}
