package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hedgerow/categories"
)

// runCLI runs one hedgerow command in-process against a data directory.
func runCLI(t *testing.T, data, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		log: slog.New(slog.DiscardHandler), tax: categories.Builtin(), now: time.Now}
	code = a.run(context.Background(), append(args, "--data", data))
	return out.String(), errb.String(), code
}

func TestCLIErrors(t *testing.T) {
	data := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"check needs a group or client", []string{"check", "example.com"}, "exactly one of --group"},
		{"check with both", []string{"check", "--group", "ks2", "--client", "127.0.0.1", "x.com"}, "exactly one of --group"},
		{"unknown group", []string{"check", "--group", "year12", "x.com"}, `no such group`},
		{"unmapped client", []string{"check", "--client", "8.8.8.8", "x.com"}, "no mapped range"},
		{"bad client address", []string{"check", "--client", "not-an-ip", "x.com"}, "want an IP address"},
		{"invalid target", []string{"check", "--group", "ks2", "bad name!"}, `"bad name!"`},
		{"reason required for lists add", []string{"lists", "add", "x.example", "--category", "adult"}, "--reason is required"},
		{"unknown category", []string{"lists", "add", "x.example", "--category", "porn", "--reason", "r"}, `unknown category "porn"`},
		{"import needs a feed", []string{"import", "/nonexistent", "--reason", "r"}, "--feed NAME is required"},
		{"import of a missing file", []string{"import", "/nonexistent/list.txt", "--feed", "x", "--category", "adult", "--reason", "r"}, "nothing was changed"},
		{"import needs a category", []string{"import", "/dev/null", "--feed", "x", "--reason", "r"}, "category"},
		{"critical cannot be unblocked", []string{"groups", "unblock", "staff", "child-abuse", "--reason", "r"}, "cannot be unblocked"},
		{"bad mode", []string{"groups", "mode", "ks2", "open", "--reason", "r"}, `mode "open"`},
		{"client with host bits", []string{"clients", "add", "10.1.2.3/16", "ks2", "--reason", "r"}, "did you mean 10.1.0.0/16"},
		{"client to unknown group", []string{"clients", "add", "10.1.0.0/16", "year12", "--reason", "r"}, `unknown group "year12"`},
		{"schedule with a bad day", []string{"groups", "schedule", "ks2", "--days", "mon-fry", "--from", "12:00", "--to", "13:00", "--allow", "games", "--reason", "r"}, `"fry" is not a day`},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runCLI(t, data, "", tc.args...)
			if code == 0 {
				t.Fatalf("exit 0, want an error mentioning %q", tc.wantErr)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q, want it to mention %q", stderr, tc.wantErr)
			}
		})
	}
	// None of the failed changes reached the audit trail.
	out, _, code := runCLI(t, data, "", "audit", "--json")
	if code != 0 {
		t.Fatal(out)
	}
	var recs []struct{ Action string }
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Action != "init" && r.Action != "import" {
			t.Errorf("a failed command left audit record %q", r.Action)
		}
	}
}

func TestCLIHelpHasExamples(t *testing.T) {
	a := &app{tax: categories.Builtin()}
	root := a.rootCommand()
	for _, c := range append(root.Commands(), root) {
		for _, sub := range append(c.Commands(), c) {
			if sub.Name() == "help" || sub.Name() == "completion" || sub.Hidden {
				continue
			}
			if sub.Example == "" {
				t.Errorf("hedgerow %s has no example in --help", sub.CommandPath())
			}
		}
	}
}

func TestCLIEditsAndCheck(t *testing.T) {
	data := t.TempDir()
	steps := [][]string{
		{"lists", "add", "HTTP://Bad.Example./", "--category", "adult", "--reason", "reported"},
		{"groups", "add", "trip", "--like", "ks2", "--reason", "residential trip"},
		{"groups", "allow", "trip", "games.example", "--reason", "quiz night"},
		{"clients", "add", "10.9.0.0/16", "trip", "--reason", "trip laptops"},
	}
	for _, s := range steps {
		if out, errs, code := runCLI(t, data, "", s...); code != 0 {
			t.Fatalf("%v: exit %d: %s %s", s, code, out, errs)
		}
	}
	out, errs, code := runCLI(t, data, "www.bad.example\ngames.example\nbad name!\n", "check", "--client", "10.9.1.1", "--json", "-")
	if code != 1 {
		t.Fatalf("check with one bad line: exit %d, want 1: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3: %s", len(lines), out)
	}
	want := []struct{ action, rule, group string }{{"block", "category", "trip"}, {"allow", "group-allow", "trip"}, {"error", "", "trip"}}
	for i, line := range lines {
		var r struct{ Input, Action, Rule, Group, Category, Severity string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Action != want[i].action || r.Rule != want[i].rule || r.Group != want[i].group {
			t.Errorf("line %d = %+v, want %+v", i+1, r, want[i])
		}
	}
	// The audit trail names who, what and why, newest first.
	out, _, _ = runCLI(t, data, "", "audit", "--json", "--limit", "1")
	if !strings.Contains(out, `"clients add 10.9.0.0/16 trip"`) || !strings.Contains(out, "trip laptops") {
		t.Errorf("latest audit record = %s", out)
	}
}

func TestSystemResolvers(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("# comment\nnameserver 192.0.2.53\nnameserver 127.0.0.1\nnameserver 2001:db8::53\noptions edns0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := systemResolvers(conf, "127.0.0.1:53")
	want := []string{"192.0.2.53:53", "[2001:db8::53]:53"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("systemResolvers = %v, want %v (own address left out)", got, want)
	}
	if got := systemResolvers(filepath.Join(dir, "missing"), ""); len(got) == 0 {
		t.Error("no fallback resolvers when resolv.conf is missing")
	}
	if withPort("192.0.2.1") != "192.0.2.1:53" || withPort("192.0.2.1:5353") != "192.0.2.1:5353" || withPort("[2001:db8::1]") != "[2001:db8::1]:53" {
		t.Error("withPort")
	}
}
