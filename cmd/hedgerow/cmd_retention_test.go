package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hedgerow/categories"
	"hedgerow/store"
)

// runRetentionCLI is runCLI with the retention subcommands under
// "incidents", whether or not incidentsCommand adds them itself yet.
func runRetentionCLI(t *testing.T, data string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		log: slog.New(slog.DiscardHandler), tax: categories.Builtin(), now: time.Now}
	root := a.rootCommand()
	for _, c := range root.Commands() {
		if c.Name() != "incidents" {
			continue
		}
		have := false
		for _, sub := range c.Commands() {
			have = have || sub.Name() == "purge"
		}
		if !have {
			c.AddCommand(a.retentionCommands()...)
		}
	}
	root.SetArgs(append(args, "--data", data))
	root.SetOut(&out)
	root.SetErr(&errb)
	if err := root.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(&errb, "hedgerow:", err)
		return out.String(), errb.String(), 2
	}
	return out.String(), errb.String(), 0
}

const (
	cliMarker  = "MARKER-7f3a9c-pupil-secret"
	cliMarker2 = "MARKER-c41d7e-subject-secret"
	cliKeeper  = "KEEPER-51bd02-still-needed"
)

func rawDB(t *testing.T, data string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(data, "hedgerow.db"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestRetentionCLI(t *testing.T) {
	data := t.TempDir()
	runCLI(t, data, "", "groups", "list") // creates the database
	a := &app{dataDir: data, tax: categories.Builtin(), now: time.Now, log: slog.New(slog.DiscardHandler)}
	now := time.Now().UTC()
	mk := func(client, host, url, severity, state string, age time.Duration) store.Incident {
		t0 := now.Add(-age)
		return store.Incident{First: t0, Last: t0, Count: 1, Channel: store.ChannelHTTP, Client: client, Group: "ks2", Host: host,
			URL: url, SearchTerm: url, Category: "games", Severity: severity, Rule: "category", Blocked: true, State: state}
	}
	err := a.writeExisting(func(s *store.Store) error {
		if err := s.SaveIncidents([]store.Incident{
			mk("10.0.0.7", "old.example", "http://old.example/"+cliMarker, "low", store.StateNew, 40*24*time.Hour),
			mk("10.0.0.7", "kept.example", "http://kept.example/"+cliKeeper, "high", store.StateNew, 40*24*time.Hour),
			mk("10.0.0.7", "case.example", "http://case.example/", "critical", store.StateEscalated, 400*24*time.Hour),
			mk("10.0.0.9", "subject.example", "http://subject.example/"+cliMarker2, "high", store.StateNew, time.Hour),
		}); err != nil {
			return err
		}
		if _, err := s.AddReport(store.Report{Kind: store.ReportConcern, Client: "10.0.0.8", Message: cliMarker, Time: now.Add(-400 * 24 * time.Hour)}); err != nil {
			return err
		}
		_, err := s.AddReport(store.Report{Kind: store.ReportConcern, Client: "10.0.0.9", Message: cliMarker2})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(rawDB(t, data), []byte(cliMarker)) {
		t.Fatal("marker not in the file to begin with")
	}

	// Bad periods are refused before anything is deleted.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--low", "30x"}, "--low"},
		{[]string{"--keep", "-5d"}, "--keep"},
		{[]string{"--keep", "12h"}, "at least one day"},
	} {
		if _, errs, code := runRetentionCLI(t, data, append([]string{"incidents", "purge"}, tc.args...)...); code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("purge %v: exit %d %q, want an error mentioning %q", tc.args, code, errs, tc.want)
		}
	}

	// The old concern goes with the incident it made in the review queue.
	out, errs, code := runRetentionCLI(t, data, "incidents", "purge")
	if code != 0 || !strings.Contains(out, "deleted 2 incidents and 1 reports") || !strings.Contains(out, "compacted") {
		t.Fatalf("purge: %d %q %q", code, out, errs)
	}
	raw := rawDB(t, data)
	if bytes.Contains(raw, []byte(cliMarker)) {
		t.Fatal("purged data is still in the database file")
	}
	if !bytes.Contains(raw, []byte(cliKeeper)) || !bytes.Contains(raw, []byte(cliMarker2)) {
		t.Fatal("purge removed what it should keep")
	}
	out, _, _ = runCLI(t, data, "", "incidents", "list", "--limit", "0")
	if !strings.Contains(out, "case.example") || strings.Contains(out, "old.example") {
		t.Errorf("after purge:\n%s", out)
	}

	// Subject access: argument checks.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "exactly one of --client or --user"},
		{[]string{"--client", "10.0.0.9", "--user", "x"}, "exactly one of --client or --user"},
		{[]string{"--client", "10.0.0.9", "--erase"}, "--reason is required"},
		{[]string{"--client", "10.0.0.9", "--reason", "r"}, "--reason goes with --erase"},
	} {
		if _, errs, code := runRetentionCLI(t, data, append([]string{"incidents", "subject"}, tc.args...)...); code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("subject %v: exit %d %q, want %q", tc.args, code, errs, tc.want)
		}
	}
	// Export to stdout: only the subject's records.
	out, errs, code = runRetentionCLI(t, data, "incidents", "subject", "--client", "10.0.0.9")
	var sd store.SubjectData
	if code != 0 || json.Unmarshal([]byte(out), &sd) != nil {
		t.Fatalf("subject export: %d %q %q", code, out, errs)
	}
	// The subject's incident, their concern, and the incident the concern made.
	if len(sd.Incidents) != 2 || sd.Incidents[0].Host != "subject.example" || sd.Incidents[1].Rule != store.RuleConcern ||
		len(sd.Reports) != 1 || sd.Reports[0].Client != "10.0.0.9" {
		t.Errorf("export %+v", sd)
	}
	// Export to a file and erase.
	file := filepath.Join(t.TempDir(), "sar.json")
	out, errs, code = runRetentionCLI(t, data, "incidents", "subject", "--client", "10.0.0.9", "--out", file, "--erase", "--reason", "erasure request 14")
	if code != 0 || !strings.Contains(out, "erased 2 incidents and 1 reports") {
		t.Fatalf("subject erase: %d %q %q", code, out, errs)
	}
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v %v", st, err)
	}
	body, _ := os.ReadFile(file)
	if err := json.Unmarshal(body, &sd); err != nil || len(sd.Incidents) != 2 || !strings.Contains(string(body), cliMarker2) {
		t.Errorf("export file: %v %s", err, body)
	}
	raw = rawDB(t, data)
	if bytes.Contains(raw, []byte(cliMarker2)) {
		t.Fatal("erased data is still in the database file")
	}
	if !bytes.Contains(raw, []byte(cliKeeper)) {
		t.Fatal("erasure removed another pupil's data")
	}
	out, _, _ = runCLI(t, data, "", "audit")
	for _, action := range []string{"retention-purge", "subject-export", "subject-erase"} {
		if !strings.Contains(out, action) {
			t.Errorf("audit lacks %s:\n%s", action, out)
		}
	}
}

// TestRetentionCommandsHaveExamples: what TestCLIHelpHasExamples checks,
// for the subcommands before incidentsCommand adds them.
func TestRetentionCommandsHaveExamples(t *testing.T) {
	a := &app{tax: categories.Builtin()}
	for _, c := range a.retentionCommands() {
		if c.Example == "" {
			t.Errorf("hedgerow incidents %s has no example", c.Name())
		}
	}
}

func TestParseRetentionAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "720h": 720 * time.Hour, "": time.Minute, "1d": 24 * time.Hour} {
		if got, err := parseRetentionAge(in, time.Minute); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"30", "d", "0d", "-1d", "1.5d", "soon", "-3h", "0s"} {
		if _, err := parseRetentionAge(in, 0); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
