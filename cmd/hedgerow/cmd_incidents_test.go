package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"hedgerow/categories"
	"hedgerow/store"
)

// TestIncidentsCLI: list with filters, review, export, and every look audited.
func TestIncidentsCLI(t *testing.T) {
	data := t.TempDir()
	runCLI(t, data, "", "groups", "list") // creates the database
	a := &app{dataDir: data, tax: categories.Builtin(), now: time.Now, log: slog.New(slog.DiscardHandler)}
	w := store.NewIncidentWriter(store.WriterConfig{}, a.writeExisting, a.log, nil)
	t0 := time.Now().Add(-time.Hour)
	for i, host := range []string{"pornhub.com", "pornhub.com", "www.bet365.com"} {
		w.Record(store.Attempt{Time: t0.Add(time.Duration(i) * time.Second), Channel: store.ChannelHTTP, Client: netip.MustParseAddr("10.0.0.7"),
			Group: "ks2", Host: host, URL: "http://" + host + "/", SearchTerm: "=HYPERLINK(\"x\")", Category: "adult", Severity: "high",
			Rule: "category", Blocked: true, Intent: store.IntentNavigate})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w.Run(ctx) // drains what was recorded

	out, errs, code := runCLI(t, data, "", "incidents", "list", "--json", "--client", "10.0.0.7", "--since", "2h")
	var incs []store.Incident
	if code != 0 || json.Unmarshal([]byte(out), &incs) != nil || len(incs) != 2 || incs[1].Count != 2 {
		t.Fatalf("list: %d %s %s", code, out, errs)
	}
	if _, errs, code := runCLI(t, data, "", "incidents", "list", "--state", "open"); code == 0 || !strings.Contains(errs, "want one of") {
		t.Errorf("bad state accepted: %s", errs)
	}
	if _, errs, code := runCLI(t, data, "", "incidents", "review", "1", "--state", "escalated"); code == 0 || !strings.Contains(errs, "note is required") {
		t.Errorf("review without a note: %s", errs)
	}
	if out, errs, code := runCLI(t, data, "", "incidents", "review", "1", "--state", "escalated", "--note", "spoke to the pupil"); code != 0 {
		t.Fatalf("review: %s %s", out, errs)
	}
	out, _, _ = runCLI(t, data, "", "incidents", "list", "--state", "escalated")
	if !strings.Contains(out, "pornhub.com") || strings.Contains(out, "bet365") {
		t.Errorf("escalated: %s", out)
	}
	out, _, code = runCLI(t, data, "", "incidents", "export", "--format", "csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 3 || rows[0][0] != "id" {
		t.Fatalf("export: %v %q", err, out)
	}
	for _, row := range rows[1:] {
		if strings.HasPrefix(row[10], "=") {
			t.Errorf("a search term exported as a spreadsheet formula: %q", row[10])
		}
	}
	out, _, code = runCLI(t, data, "", "incidents", "digest")
	if code != 0 || !strings.Contains(out, "Incidents: 2 (3 blocked attempts)") || !strings.Contains(out, "Pornography") ||
		strings.Contains(out, "10.0.0.7") {
		t.Errorf("digest:\n%s", out)
	}
	out, _, _ = runCLI(t, data, "", "audit")
	for _, action := range []string{"incidents-list", "incidents-review", "incidents-export"} {
		if !strings.Contains(out, action) {
			t.Errorf("audit lacks %s:\n%s", action, out)
		}
	}
}
