package store

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestAddReportAndList(t *testing.T) {
	s, c := openNew(t)
	given := time.Date(2026, 2, 1, 10, 30, 0, 0, time.FixedZone("BST", 3600))
	in := []Report{
		{Kind: ReportUnblock, Client: "10.1.2.3", Group: "ks2", URL: "http://science.example/frogs", Host: "science.example", Category: "games", Message: "we need it for homework"},
		{Kind: ReportConcern, Client: "10.1.2.4", User: "pupil7", Host: "bad.example", Category: "self-harm", Message: "my friend is looking at this", Time: given},
		{Kind: ReportUnblock, Client: "2001:db8::1", State: "done", ID: 99}, // ID and state are the store's to set
	}
	var wantTimes []time.Time
	for i, r := range in {
		if r.Time.IsZero() {
			wantTimes = append(wantTimes, c.peek())
		} else {
			wantTimes = append(wantTimes, r.Time.UTC())
		}
		id, err := s.AddReport(r)
		if err != nil {
			t.Fatalf("AddReport %d: %v", i, err)
		}
		if id != uint64(i+1) {
			t.Errorf("report %d got ID %d, want %d", i, id, i+1)
		}
	}
	for _, tc := range []struct {
		name  string
		kind  string
		limit int
		want  []uint64
	}{
		{"all", "", 0, []uint64{3, 2, 1}},
		{"all, limited", "", 2, []uint64{3, 2}},
		{"unblock", ReportUnblock, 0, []uint64{3, 1}},
		{"unblock, limited", ReportUnblock, 1, []uint64{3}},
		{"concern", ReportConcern, 0, []uint64{2}},
		{"limit past the end", ReportConcern, 10, []uint64{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Reports(tc.kind, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var ids []uint64
			for _, r := range got {
				ids = append(ids, r.ID)
				want := in[r.ID-1]
				want.ID, want.State, want.Time = r.ID, ReportNew, wantTimes[r.ID-1]
				if r.Time.Location() != time.UTC || !r.Time.Equal(want.Time) {
					t.Errorf("report %d time %v, want %v in UTC", r.ID, r.Time, want.Time)
				}
				r.Time = want.Time
				if r != want {
					t.Errorf("report %d = %+v, want %+v", r.ID, r, want)
				}
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("IDs %v, want %v", ids, tc.want)
			}
		})
	}
	// Keys are big-endian IDs, so bbolt's order is filing order.
	_ = s.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bReports).Cursor().Last()
		if len(k) != 8 || binary.BigEndian.Uint64(k) != 3 {
			t.Errorf("last key %x, want 8-byte big-endian 3", k)
		}
		return nil
	})
	mustCheck(t, s)
}

func TestReportsOrderPastOneByte(t *testing.T) {
	// IDs past 255 would sort wrongly with little-endian or text keys.
	s, _ := openNew(t)
	for i := 0; i < 300; i++ {
		if _, err := s.AddReport(Report{Kind: ReportUnblock, Client: "10.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Reports("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 300 {
		t.Fatalf("%d reports, want 300", len(got))
	}
	for i, r := range got {
		if r.ID != uint64(300-i) {
			t.Fatalf("position %d has ID %d, want %d", i, r.ID, 300-i)
		}
	}
}

func TestAddReportRefused(t *testing.T) {
	s, _ := openNew(t)
	if _, err := s.AddReport(Report{Kind: ReportConcern, Client: "10.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		r       Report
		wantErr string
	}{
		{"no kind", Report{Client: "10.0.0.1"}, `report kind ""`},
		{"unknown kind", Report{Kind: "complaint", Client: "10.0.0.1"}, `report kind "complaint": want unblock or concern`},
		{"kind in capitals", Report{Kind: "Unblock", Client: "10.0.0.1"}, `"Unblock"`},
		{"no client", Report{Kind: ReportUnblock}, "client address is required"},
		{"message too long", Report{Kind: ReportConcern, Client: "10.0.0.1", Message: strings.Repeat("m", maxReportMessage+1)}, "message is 4097 bytes"},
		{"URL too long", Report{Kind: ReportUnblock, Client: "10.0.0.1", URL: strings.Repeat("u", maxReportURL+1)}, "URL is 8193 bytes"},
		{"host too long", Report{Kind: ReportUnblock, Client: "10.0.0.1", Host: strings.Repeat("h", maxReportField+1)}, "report host is 257 bytes"},
		{"user too long", Report{Kind: ReportUnblock, Client: "10.0.0.1", User: strings.Repeat("u", maxReportField+1)}, "report user is 257 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := txID(t, s)
			id, err := s.AddReport(tc.r)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("AddReport = %d, %v, want an error containing %q", id, err, tc.wantErr)
			}
			if txID(t, s) != before {
				t.Error("refused report was written")
			}
			if rs, _ := s.Reports("", 0); len(rs) != 1 {
				t.Errorf("%d reports after a refused one, want 1", len(rs))
			}
		})
	}
}

func TestReportsRefusesBadQuery(t *testing.T) {
	s, _ := openNew(t)
	for _, tc := range []struct {
		kind    string
		limit   int
		wantErr string
	}{
		{"other", 0, `report kind "other"`},
		{"", -1, "limit -1"},
	} {
		if _, err := s.Reports(tc.kind, tc.limit); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("Reports(%q, %d) = %v, want an error containing %q", tc.kind, tc.limit, err, tc.wantErr)
		}
	}
	if rs, err := s.Reports("", 0); err != nil || len(rs) != 0 {
		t.Errorf("Reports on a new database = %v, %v, want none", rs, err)
	}
}

// TestMigrateSchema1AddsReports opens a database as schema 1 left it (no
// reports bucket) with the real migrations.
func TestMigrateSchema1AddsReports(t *testing.T) {
	path := dbPath(t)
	s, err := Open(path, testTax, Options{Defaults: defaults()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser("it", "before the upgrade", User{Name: "alice"}, goodPassword); err != nil {
		t.Fatal(err)
	}
	s.Close()
	boltFile(t, path, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bReports); err != nil {
			return err
		}
		return tx.Bucket(bMeta).Put(kSchema, binary.BigEndian.AppendUint32(nil, 1))
	})

	if _, err := Open(path, testTax, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "open it read-write first") {
		t.Fatalf("read-only Open of schema 1 = %v, want a request to open it read-write", err)
	}
	s, err = Open(path, testTax, Options{Defaults: defaults()})
	if err != nil {
		t.Fatalf("Open migrating schema 1: %v", err)
	}
	defer s.Close()
	_ = s.db.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint32(tx.Bucket(bMeta).Get(kSchema)); v != SchemaVersion {
			t.Errorf("schema %d after migration, want %d", v, SchemaVersion)
		}
		return nil
	})
	if id, err := s.AddReport(Report{Kind: ReportUnblock, Client: "10.0.0.1"}); err != nil || id != 1 {
		t.Errorf("AddReport after migration = %d, %v", id, err)
	}
	if _, err := s.User("alice"); err != nil {
		t.Errorf("user lost in migration: %v", err)
	}
	mustCheck(t, s)
}

func TestConcernIsAnIncident(t *testing.T) {
	s, _ := openNew(t)
	if _, err := s.AddReport(Report{Kind: ReportUnblock, Client: "10.0.0.5", Host: "games.example"}); err != nil {
		t.Fatal(err)
	}
	id, err := s.AddReport(Report{Kind: ReportConcern, Client: "10.0.0.5", User: "jsmith", Group: "ks3-ks4", Host: "self-harm.example",
		Category: "Self-harm and suicide", Message: "my friend keeps looking at this"})
	if err != nil {
		t.Fatal(err)
	}
	incs, err := s.Incidents(IncidentFilter{ReviewOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(incs) != 1 {
		t.Fatalf("%d incidents for review, want the concern alone (report %d): %+v", len(incs), id, incs)
	}
	in := incs[0]
	if in.Rule != RuleConcern || in.Category != "self-harm" || in.State != StateNew || in.Client != "10.0.0.5" || in.User != "jsmith" || in.Host != "self-harm.example" ||
		len(in.Notes) != 1 || in.Notes[0].Text != "my friend keeps looking at this" {
		t.Errorf("concern incident %+v", in)
	}
}
