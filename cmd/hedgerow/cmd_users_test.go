package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"hedgerow/categories"
	"hedgerow/store"
)

// openData opens the database of a CLI test's data directory for reading.
func openData(t *testing.T, data string) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(data, "hedgerow.db"), categories.Builtin(), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCLIUsers(t *testing.T) {
	data := t.TempDir()
	generated := regexp.MustCompile(`password for bob \(shown only now\): (\S+)\n`)
	var bobPassword string
	steps := []struct {
		name    string
		stdin   string
		args    []string
		wantErr string // "" for success
		wantOut string
	}{
		{"add with a piped password", "a long passphrase\n", []string{"users", "add", "alice", "--role", "admin", "--reason", "new technician"}, "", "done: users add alice"},
		{"add with a generated password", "", []string{"users", "add", "Bob", "--role", "dsl,viewer", "--group", "staff", "--generate", "--reason", "new DSL"}, "", "password for bob (shown only now): "},
		{"add a proxy-only account, CRLF line", "pupil password\r\n", []string{"users", "add", "7b.pupil", "--group", "ks3-ks4", "--reason", "Year 7"}, "", "done: users add 7b.pupil"},
		{"duplicate", "a long passphrase\n", []string{"users", "add", "ALICE", "--reason", "again"}, "already exists", ""},
		{"no reason", "a long passphrase\n", []string{"users", "add", "carol"}, "--reason is required", ""},
		{"bad name, refused before the password is read", "", []string{"users", "add", "carol smith", "--reason", "r"}, `user name "carol smith"`, ""},
		{"short password", "short\n", []string{"users", "add", "carol", "--reason", "r"}, "want at least 10", ""},
		{"no password on stdin", "", []string{"users", "add", "carol", "--reason", "r"}, "no password on standard input", ""},
		{"unknown role", "a long passphrase\n", []string{"users", "add", "carol", "--role", "root", "--reason", "r"}, `role "root"`, ""},
		{"unknown group", "a long passphrase\n", []string{"users", "add", "carol", "--group", "year12", "--reason", "r"}, `unknown group "year12"`, ""},
		{"passwd", "another passphrase\n", []string{"users", "passwd", "alice", "--reason", "forgotten"}, "", "done: users passwd alice"},
		{"passwd of nobody", "another passphrase\n", []string{"users", "passwd", "carol", "--reason", "r"}, "no such user", ""},
		{"passwd needs a reason", "another passphrase\n", []string{"users", "passwd", "alice"}, "--reason is required", ""},
		{"disable", "", []string{"users", "disable", "7b.pupil", "--reason", "misuse"}, "", "done: users disable 7b.pupil"},
		{"disable twice", "", []string{"users", "disable", "7b.pupil", "--reason", "misuse"}, "already disabled", ""},
		{"enable", "", []string{"users", "enable", "7b.pupil", "--reason", "sorted out"}, "", "done: users enable 7b.pupil"},
		{"enable an enabled account", "", []string{"users", "enable", "alice", "--reason", "r"}, "already enabled", ""},
		{"remove nobody", "", []string{"users", "remove", "carol", "--reason", "r"}, "no such user", ""},
		{"remove needs a reason", "", []string{"users", "remove", "7b.pupil"}, "--reason is required", ""},
	}
	for _, st := range steps {
		out, errs, code := runCLI(t, data, st.stdin, st.args...)
		if st.wantErr != "" {
			if code == 0 || !strings.Contains(errs, st.wantErr) {
				t.Errorf("%s: exit %d, stderr %q; want an error mentioning %q", st.name, code, errs, st.wantErr)
			}
			continue
		}
		if code != 0 || !strings.Contains(out, st.wantOut) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %q", st.name, code, out, errs, st.wantOut)
		}
		if m := generated.FindStringSubmatch(out); m != nil {
			bobPassword = m[1]
		}
	}
	if len(bobPassword) != generatedPasswordLen {
		t.Fatalf("generated password %q, want %d characters", bobPassword, generatedPasswordLen)
	}

	out, _, code := runCLI(t, data, "", "users", "list", "--json")
	if code != 0 {
		t.Fatalf("users list --json: exit %d", code)
	}
	if strings.Contains(out, "hash") || strings.Contains(out, "$2a$") {
		t.Errorf("users list --json shows the hash: %s", out)
	}
	var listed []store.Account
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, roles, group string }{{"7b.pupil", "", "ks3-ks4"}, {"alice", "admin", ""}, {"bob", "dsl,viewer", "staff"}}
	if len(listed) != len(want) {
		t.Fatalf("listed %+v, want %d users", listed, len(want))
	}
	for i, w := range want {
		u := listed[i]
		if u.Name != w.name || strings.Join(u.Roles, ",") != w.roles || u.Group != w.group || u.Disabled || u.Created.IsZero() {
			t.Errorf("user %d = %+v, want %+v", i, u, w)
		}
	}
	out, _, _ = runCLI(t, data, "", "users", "list")
	for _, w := range []string{"NAME", "ROLES", "alice", "dsl,viewer", "ks3-ks4"} {
		if !strings.Contains(out, w) {
			t.Errorf("users list lacks %q:\n%s", w, out)
		}
	}

	// The passwords set work; the removed account is gone.
	if _, errs, code := runCLI(t, data, "", "users", "remove", "7b.pupil", "--reason", "left"); code != 0 {
		t.Fatalf("users remove: %s", errs)
	}
	s := openData(t, data)
	for _, tc := range []struct{ name, password string }{{"alice", "another passphrase"}, {"bob", bobPassword}} {
		u, err := s.User(tc.name)
		if err != nil || !store.CheckPassword(u, tc.password) {
			t.Errorf("%s cannot log in with %q: %v", tc.name, tc.password, err)
		}
	}
	if u, _ := s.User("alice"); store.CheckPassword(u, "a long passphrase") {
		t.Error("alice's old password still works")
	}
	if _, err := s.User("7b.pupil"); err == nil {
		t.Error("removed user still there")
	}

	// Every successful change is audited, with the OS user as actor, and no
	// failed one is.
	recs, err := s.Audit(0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range recs {
		if !strings.HasPrefix(r.Action, "users-") {
			continue
		}
		actions = append(actions, r.Action+" "+r.Target)
		if r.Actor != actor() {
			t.Errorf("audit actor %q, want %q", r.Actor, actor())
		}
		if raw, _ := json.Marshal(r); strings.Contains(string(raw), "hash") || strings.Contains(string(raw), "passphrase") {
			t.Errorf("audit record holds a secret: %s", raw)
		}
	}
	wantActions := []string{"users-remove user 7b.pupil", "users-enable user 7b.pupil", "users-disable user 7b.pupil",
		"users-passwd user alice", "users-add user 7b.pupil", "users-add user bob", "users-add user alice"}
	if strings.Join(actions, "; ") != strings.Join(wantActions, "; ") {
		t.Errorf("audit trail:\n got  %v\n want %v", actions, wantActions)
	}
}

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		p := generatePassword()
		if len(p) != generatedPasswordLen {
			t.Fatalf("password %q has %d characters, want %d", p, len(p), generatedPasswordLen)
		}
		if strings.Trim(p, passwordAlphabet) != "" {
			t.Fatalf("password %q has characters outside the alphabet", p)
		}
		if err := store.ValidPassword(p); err != nil {
			t.Fatalf("generated password refused: %v", err)
		}
		if seen[p] {
			t.Fatalf("password %q generated twice", p)
		}
		seen[p] = true
	}
}

func TestCLIReports(t *testing.T) {
	data := t.TempDir()
	out, errs, code := runCLI(t, data, "", "reports", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("reports on a new database: exit %d, %q %q; want []", code, out, errs)
	}
	s, err := store.Open(filepath.Join(data, "hedgerow.db"), categories.Builtin(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []store.Report{
		{Kind: store.ReportUnblock, Client: "10.1.2.3", Group: "ks2", URL: "http://science.example/frogs", Category: "games", Message: "for homework"},
		{Kind: store.ReportConcern, Client: "10.1.2.4", User: "7b.pupil", Host: "bad.example", Category: "self-harm", Message: "\x1b[2Jworried\tabout\na friend\u202e"},
		{Kind: store.ReportUnblock, Client: "10.1.2.5", Host: "maths.example"},
	} {
		if _, err := s.AddReport(r); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	for _, tc := range []struct {
		name    string
		args    []string
		wantIDs []uint64
	}{
		{"all", nil, []uint64{3, 2, 1}},
		{"concern", []string{"--kind", "concern"}, []uint64{2}},
		{"unblock", []string{"--kind", "unblock"}, []uint64{3, 1}},
		{"limit", []string{"--limit", "2"}, []uint64{3, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := runCLI(t, data, "", append([]string{"reports", "--json"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var rs []store.Report
			if err := json.Unmarshal([]byte(out), &rs); err != nil {
				t.Fatal(err)
			}
			var ids []uint64
			for _, r := range rs {
				ids = append(ids, r.ID)
				if r.State != store.ReportNew {
					t.Errorf("report %d state %q", r.ID, r.State)
				}
			}
			if !slices.Equal(ids, tc.wantIDs) {
				t.Errorf("IDs %v, want %v", ids, tc.wantIDs)
			}
		})
	}

	out, _, code = runCLI(t, data, "", "reports", "--kind", "concern")
	if code != 0 {
		t.Fatalf("reports: exit %d", code)
	}
	if strings.ContainsAny(out, "\x1b\t\u202e") || strings.Count(out, "\n") != 2 {
		t.Errorf("table lets a pupil's text through raw: %q", out)
	}
	for _, w := range []string{"concern", "7b.pupil", "bad.example", "self-harm", "?[2Jworried?about?a friend?"} {
		if !strings.Contains(out, w) {
			t.Errorf("reports table lacks %q:\n%s", w, out)
		}
	}

	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"reports", "--kind", "complaint"}, `report kind "complaint"`},
		{[]string{"reports", "--limit", "-1"}, "limit -1"},
	} {
		if _, errs, code := runCLI(t, data, "", tc.args...); code == 0 || !strings.Contains(errs, tc.wantErr) {
			t.Errorf("%v: exit %d, stderr %q; want an error mentioning %q", tc.args, code, errs, tc.wantErr)
		}
	}
}
