package store

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"hedgerow/categories"
)

const goodPassword = "correct horse battery"

// unchanged records what a refused change must leave as it was: the last
// write transaction, the audit trail and the accounts.
type unchanged struct {
	tx    int
	audit int
	users string
}

func snapshotUsers(t testing.TB, s *Store) unchanged {
	t.Helper()
	us, err := s.Users()
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	raw, _ := json.Marshal(us)
	return unchanged{tx: txID(t, s), audit: auditLen(t, s), users: string(raw)}
}

func mustAddUser(t testing.TB, s *Store, u User, password string) {
	t.Helper()
	if err := s.AddUser("it", "new starter", u, password); err != nil {
		t.Fatalf("AddUser(%s): %v", u.Name, err)
	}
}

// lastAudit returns the newest audit record.
func lastAudit(t testing.TB, s *Store) AuditRecord {
	t.Helper()
	recs, err := s.Audit(1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("Audit(1) = %v, %v", recs, err)
	}
	return recs[0]
}

func TestAddUserGetAndList(t *testing.T) {
	s, c := openNew(t)
	for _, tc := range []struct {
		name      string
		in        User
		password  string
		wantName  string
		wantRoles []string
	}{
		{"staff with roles, repeated and unsorted", User{Name: "jsmith", Roles: []string{RoleViewer, RoleAdmin, RoleViewer}}, goodPassword, "jsmith", []string{RoleAdmin, RoleViewer}},
		{"pupil for the proxy", User{Name: "pupil.7b@school.example", Group: "ks3-ks4"}, "0123456789", "pupil.7b@school.example", nil},
		{"mixed case is stored lower-cased", User{Name: "A.Dsl", Roles: []string{RoleDSL}}, strings.Repeat("x", MaxPasswordBytes), "a.dsl", []string{RoleDSL}},
		{"disabled from the start", User{Name: "leaver_1", Disabled: true}, "ééééééééééé", "leaver_1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			when := c.peek()
			tc.in.Hash = []byte("ignored")
			mustAddUser(t, s, tc.in, tc.password)
			u, err := s.User(strings.ToUpper(tc.in.Name)) // lookups ignore case too
			if err != nil {
				t.Fatalf("User: %v", err)
			}
			if u.Name != tc.wantName || !slices.Equal(u.Roles, tc.wantRoles) || u.Group != tc.in.Group || u.Disabled != tc.in.Disabled {
				t.Errorf("stored %+v, want name %q roles %v group %q disabled %v", u, tc.wantName, tc.wantRoles, tc.in.Group, tc.in.Disabled)
			}
			if !u.Created.Equal(when) || !u.Changed.Equal(when) {
				t.Errorf("created %v changed %v, want both %v", u.Created, u.Changed, when)
			}
			if string(u.Hash) == "ignored" || strings.Contains(string(u.Hash), tc.password) {
				t.Errorf("hash %q is not a bcrypt hash of the password", u.Hash)
			}
			if got := CheckPassword(u, tc.password); got == tc.in.Disabled {
				t.Errorf("CheckPassword = %v for disabled=%v", got, tc.in.Disabled)
			}
			r := lastAudit(t, s)
			if r.Action != "users-add" || r.Target != "user "+tc.wantName || r.Actor != "it" || r.Reason != "new starter" || !absent(r.Before) {
				t.Errorf("audit record %+v", r)
			}
			if !jsonEq(t, r.After, viewOf(u)) {
				t.Errorf("audit after = %s, want %+v", r.After, viewOf(u))
			}
		})
	}
	us, err := s.Users()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range us {
		names = append(names, u.Name)
	}
	if want := []string{"a.dsl", "jsmith", "leaver_1", "pupil.7b@school.example"}; !slices.Equal(names, want) {
		t.Errorf("Users() = %v, want %v", names, want)
	}
	if _, err := s.User("nobody"); !errors.Is(err, ErrNoUser) {
		t.Errorf("User(nobody) = %v, want ErrNoUser", err)
	}
	mustCheck(t, s)
}

func TestAddUserRefused(t *testing.T) {
	s, _ := openNew(t)
	mustAddUser(t, s, User{Name: "alice", Roles: []string{RoleAdmin}}, goodPassword)
	for _, tc := range []struct {
		name     string
		u        User
		password string
		reason   string
		wantErr  string
		wantIs   error
	}{
		{"duplicate", User{Name: "alice"}, goodPassword, "r", "alice", ErrUserExists},
		{"duplicate in another case", User{Name: "ALICE"}, goodPassword, "r", "alice", ErrUserExists},
		{"empty name", User{Name: ""}, goodPassword, "r", "want 1 to 64 characters", nil},
		{"name too long", User{Name: strings.Repeat("a", 65)}, goodPassword, "r", "want 1 to 64 characters", nil},
		{"space in name", User{Name: "a smith"}, goodPassword, "r", `"a smith"`, nil},
		{"slash in name", User{Name: "a/b"}, goodPassword, "r", `"a/b"`, nil},
		{"non-ASCII letter", User{Name: "åsa"}, goodPassword, "r", `"åsa"`, nil},
		{"Kelvin sign lower-cases to k", User{Name: "\u212Aelly"}, goodPassword, "r", "use letters, digits", nil},
		{"short password", User{Name: "bob"}, "123456789", "r", "password is 9 characters: want at least 10", nil},
		{"short password in multi-byte characters", User{Name: "bob"}, "ééééééééé", "r", "password is 9 characters", nil},
		{"empty password", User{Name: "bob"}, "", "r", "want at least 10", nil},
		{"password past bcrypt's 72 bytes", User{Name: "bob"}, strings.Repeat("x", 73), "r", "password is 73 bytes: want at most 72", nil},
		{"unknown role", User{Name: "bob", Roles: []string{RoleViewer, "root"}}, goodPassword, "r", `role "root"`, nil},
		{"unknown group", User{Name: "bob", Group: "year12"}, goodPassword, "r", `unknown group "year12"`, nil},
		{"school is not a group to be in", User{Name: "bob", Group: categories.SchoolGroup}, goodPassword, "r", "school-wide overrides", nil},
		{"no reason", User{Name: "bob"}, goodPassword, " ", "a reason is required", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshotUsers(t, s)
			err := s.AddUser("it", tc.reason, tc.u, tc.password)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("AddUser = %v, want an error containing %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("AddUser = %v, want errors.Is %v", err, tc.wantIs)
			}
			if after := snapshotUsers(t, s); after != before {
				t.Errorf("refused AddUser changed the store:\n%+v\n%+v", before, after)
			}
		})
	}
}

func TestCheckPassword(t *testing.T) {
	// Hashed here at bcrypt's lowest cost: CheckPassword reads the cost from
	// the hash, and DefaultCost under -race takes about a second a run.
	// TestAddUserGetAndList checks the hashes AddUser stores.
	hashed := func(password string) []byte {
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	long := strings.Repeat("p", MaxPasswordBytes)
	alice := User{Name: "alice", Hash: hashed(goodPassword)}
	longU := User{Name: "long", Hash: hashed(long)}
	disabled := alice
	disabled.Disabled = true
	for _, tc := range []struct {
		name     string
		u        User
		password string
		want     bool
	}{
		{"right", alice, goodPassword, true},
		{"wrong", alice, "correct horse battery!", false},
		{"wrong case", alice, strings.ToUpper(goodPassword), false},
		{"empty", alice, "", false},
		{"disabled", disabled, goodPassword, false},
		{"no such user", User{}, goodPassword, false},
		{"no such user, empty password", User{}, "", false},
		{"all 72 bytes", longU, long, true},
		{"72 right bytes and more", longU, long + "extra", false},
		{"damaged hash", User{Name: "x", Hash: []byte("not bcrypt")}, goodPassword, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CheckPassword(tc.u, tc.password); got != tc.want {
				t.Errorf("CheckPassword = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSetPassword(t *testing.T) {
	s, c := openNew(t)
	mustAddUser(t, s, User{Name: "alice"}, goodPassword)
	orig, _ := s.User("alice")

	for _, tc := range []struct {
		name, user, password, reason, wantErr string
	}{
		{"missing user", "bob", "new password 1", "r", "no such user"},
		{"bad name", "b b", "new password 1", "r", `"b b"`},
		{"short", "alice", "short", "r", "want at least 10"},
		{"long", "alice", strings.Repeat("é", 37), "r", "74 bytes"},
		{"no reason", "alice", "new password 1", "", "a reason is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshotUsers(t, s)
			err := s.SetPassword("it", tc.reason, tc.user, tc.password)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("SetPassword = %v, want an error containing %q", err, tc.wantErr)
			}
			if after := snapshotUsers(t, s); after != before {
				t.Error("refused SetPassword changed the store")
			}
		})
	}

	when := c.peek()
	if err := s.SetPassword("it", "forgotten", "Alice", "new password 1"); err != nil {
		t.Fatal(err)
	}
	u, _ := s.User("alice")
	if CheckPassword(u, goodPassword) || !CheckPassword(u, "new password 1") {
		t.Error("old password still works, or the new one does not")
	}
	if !u.Changed.Equal(when) || !u.Created.Equal(orig.Created) {
		t.Errorf("changed %v created %v, want %v and %v", u.Changed, u.Created, when, orig.Created)
	}
	r := lastAudit(t, s)
	if r.Action != "users-passwd" || r.Target != "user alice" || r.Reason != "forgotten" {
		t.Errorf("audit record %+v", r)
	}
	if !jsonEq(t, r.Before, viewOf(orig)) || !jsonEq(t, r.After, viewOf(u)) {
		t.Errorf("audit before %s after %s", r.Before, r.After)
	}
}

func TestUpdateUser(t *testing.T) {
	s, _ := openNew(t)
	mustAddUser(t, s, User{Name: "alice", Roles: []string{RoleViewer}}, goodPassword)
	for _, tc := range []struct {
		name       string
		apply      func(u *User) error
		wantAction string
		check      func(t *testing.T, u User)
	}{
		{"disable", func(u *User) error { u.Disabled = true; return nil }, "users-disable", func(t *testing.T, u User) {
			if !u.Disabled || CheckPassword(u, goodPassword) {
				t.Error("not disabled")
			}
		}},
		{"enable", func(u *User) error { u.Disabled = false; return nil }, "users-enable", func(t *testing.T, u User) {
			if u.Disabled || !CheckPassword(u, goodPassword) {
				t.Error("not enabled")
			}
		}},
		{"roles", func(u *User) error { u.Roles = []string{RoleDSL, RoleAdmin, RoleDSL}; return nil }, "users-update", func(t *testing.T, u User) {
			if !slices.Equal(u.Roles, []string{RoleAdmin, RoleDSL}) {
				t.Errorf("roles %v", u.Roles)
			}
		}},
		{"group", func(u *User) error { u.Group = "staff"; return nil }, "users-update", func(t *testing.T, u User) {
			if u.Group != "staff" {
				t.Errorf("group %q", u.Group)
			}
		}},
		{"no roles", func(u *User) error { u.Roles = nil; return nil }, "users-update", func(t *testing.T, u User) {
			if len(u.Roles) != 0 {
				t.Errorf("roles %v", u.Roles)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := s.User("alice")
			if err := s.UpdateUser("it", "because", "alice", tc.apply); err != nil {
				t.Fatal(err)
			}
			u, _ := s.User("alice")
			tc.check(t, u)
			if string(u.Hash) != string(before.Hash) || !u.Changed.Equal(before.Changed) {
				t.Error("UpdateUser changed the password")
			}
			r := lastAudit(t, s)
			if r.Action != tc.wantAction || r.Target != "user alice" || r.Reason != "because" {
				t.Errorf("audit record %+v, want action %s", r, tc.wantAction)
			}
			if !jsonEq(t, r.Before, viewOf(before)) || !jsonEq(t, r.After, viewOf(u)) {
				t.Errorf("audit before %s after %s", r.Before, r.After)
			}
		})
	}
}

func TestUpdateUserRefused(t *testing.T) {
	s, _ := openNew(t)
	mustAddUser(t, s, User{Name: "alice", Roles: []string{RoleViewer}, Group: "staff"}, goodPassword)
	for _, tc := range []struct {
		name, user, reason string
		apply              func(u *User) error
		wantErr            string
	}{
		{"missing user", "bob", "r", func(u *User) error { return nil }, "no such user"},
		{"bad name", "", "r", func(u *User) error { return nil }, "want 1 to 64"},
		{"no reason", "alice", "", func(u *User) error { u.Disabled = true; return nil }, "a reason is required"},
		{"apply fails after editing", "alice", "r", func(u *User) error {
			u.Roles[0] = RoleAdmin // through the slice: must not reach the stored record
			u.Disabled = true
			return errors.New("changed my mind")
		}, "changed my mind"},
		{"unknown role", "alice", "r", func(u *User) error { u.Roles = append(u.Roles, "god"); return nil }, `role "god"`},
		{"unknown group", "alice", "r", func(u *User) error { u.Group = "year12"; return nil }, `unknown group "year12"`},
		{"rename", "alice", "r", func(u *User) error { u.Name = "alicia"; return nil }, "cannot be changed"},
		{"hash", "alice", "r", func(u *User) error { u.Hash = nil; return nil }, "cannot be changed"},
		{"hash in place", "alice", "r", func(u *User) error { u.Hash[10] ^= 1; return nil }, "cannot be changed"},
		{"times", "alice", "r", func(u *User) error { u.Changed = u.Changed.Add(1); return nil }, "cannot be changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshotUsers(t, s)
			err := s.UpdateUser("it", tc.reason, tc.user, tc.apply)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("UpdateUser = %v, want an error containing %q", err, tc.wantErr)
			}
			if after := snapshotUsers(t, s); after != before {
				t.Errorf("refused UpdateUser changed the store:\n%+v\n%+v", before, after)
			}
		})
	}
}

func TestRemoveUser(t *testing.T) {
	s, _ := openNew(t)
	mustAddUser(t, s, User{Name: "alice", Roles: []string{RoleDSL}}, goodPassword)
	mustAddUser(t, s, User{Name: "bob"}, goodPassword)
	alice, _ := s.User("alice")

	for _, tc := range []struct{ name, user, reason, wantErr string }{
		{"no reason", "alice", "", "a reason is required"},
		{"missing", "carol", "r", "no such user"},
		{"bad name", "c d", "r", `"c d"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshotUsers(t, s)
			if err := s.RemoveUser("it", tc.reason, tc.user); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("RemoveUser = %v, want an error containing %q", err, tc.wantErr)
			}
			if after := snapshotUsers(t, s); after != before {
				t.Error("refused RemoveUser changed the store")
			}
		})
	}

	if err := s.RemoveUser("it", "left the school", "ALICE"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User("alice"); !errors.Is(err, ErrNoUser) {
		t.Errorf("User after remove = %v, want ErrNoUser", err)
	}
	if err := s.RemoveUser("it", "again", "alice"); !errors.Is(err, ErrNoUser) {
		t.Errorf("second RemoveUser = %v, want ErrNoUser", err)
	}
	if us, _ := s.Users(); len(us) != 1 || us[0].Name != "bob" {
		t.Errorf("Users after remove = %+v", us)
	}
	r := lastAudit(t, s)
	if r.Action != "users-remove" || r.Target != "user alice" || !absent(r.After) || !jsonEq(t, r.Before, viewOf(alice)) {
		t.Errorf("audit record %+v", r)
	}
	mustCheck(t, s)
}

// TestUserAuditHasNoSecrets runs every kind of account change and then
// searches the whole audit trail for hashes and passwords.
func TestUserAuditHasNoSecrets(t *testing.T) {
	s, _ := openNew(t)
	mustAddUser(t, s, User{Name: "alice", Roles: []string{RoleAdmin}}, goodPassword)
	a1, _ := s.User("alice")
	if err := s.SetPassword("it", "rotate", "alice", "second password"); err != nil {
		t.Fatal(err)
	}
	a2, _ := s.User("alice")
	if err := s.UpdateUser("it", "leave", "alice", func(u *User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveUser("it", "gone", "alice"); err != nil {
		t.Fatal(err)
	}
	recs, err := s.Audit(0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range recs {
		if !strings.HasPrefix(r.Action, "users-") {
			continue
		}
		actions = append(actions, r.Action)
		raw, _ := json.Marshal(r)
		for _, secret := range []string{`"hash"`, string(a1.Hash), string(a2.Hash), goodPassword, "second password"} {
			if strings.Contains(string(raw), secret) {
				t.Errorf("audit record %s contains %q", raw, secret)
			}
		}
		// The hash would be base64 in JSON; look for that form too.
		for _, h := range [][]byte{a1.Hash, a2.Hash} {
			b64, _ := json.Marshal(h)
			if strings.Contains(string(raw), strings.Trim(string(b64), `"`)) {
				t.Errorf("audit record %s contains a hash in base64", raw)
			}
		}
	}
	if want := []string{"users-remove", "users-disable", "users-passwd", "users-add"}; !slices.Equal(actions, want) {
		t.Errorf("audit actions %v, want %v", actions, want)
	}
}

func TestValidUserName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{strings.Repeat("z", 64), true},
		{"first.last@school.example", true},
		{"Mixed-Case_1", true},
		{"", false},
		{strings.Repeat("z", 65), false},
		{"tab\there", false},
		{"colon:", false},
		{"emoji😀", false},
		{"nul\x00", false},
	} {
		if err := ValidUserName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidUserName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
