package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"hedgerow/categories"
	"hedgerow/store"
)

// polUser is a stored account; ok is false when there is none.
func polUser(t *testing.T, e *testEnv, name string) (store.User, bool) {
	t.Helper()
	var u store.User
	var err error
	e.read(func(s *store.Store) error {
		u, err = s.User(name)
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNoUser) {
		t.Fatal(err)
	}
	return u, err == nil
}

// polLoggedIn reports whether a browser's session still works.
func polLoggedIn(t *testing.T, b *browser) bool {
	t.Helper()
	resp, _ := b.get("/account")
	return resp.StatusCode == http.StatusOK
}

func TestUsers(t *testing.T) {
	s := newPolSession(t)
	e := s.e
	user := func(name string, check func(u store.User) bool) func(t *testing.T, _ categories.Policy) {
		return func(t *testing.T, _ categories.Policy) {
			u, ok := polUser(t, e, name)
			if !ok || !check(u) {
				t.Errorf("user %s is %+v (exists: %v)", name, u, ok)
			}
		}
	}
	noUser := func(name string) func(t *testing.T, _ categories.Policy) {
		return func(t *testing.T, _ categories.Policy) {
			if u, ok := polUser(t, e, name); ok {
				t.Errorf("user %s exists: %+v", name, u)
			}
		}
	}
	fields := func(kv ...string) func(string) url.Values {
		return func(string) url.Values {
			f := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				f.Add(kv[i], kv[i+1])
			}
			return f
		}
	}
	newPassword := "a new long passphrase"
	vic := e.browser().login("vic") // sessions that disabling, a reset and removal must end
	polRun(t, s, "/users", []polCheck{
		{name: "API: the only administrator drops the role", api: true, path: "/users/ada/update", form: fields("reason", "r", "roles", "viewer"),
			status: http.StatusBadRequest, wantText: "ada is the only enabled administrator", check: user("ada", func(u store.User) bool { return slices.Equal(u.Roles, []string{"admin"}) })},
		{name: "page: add a technician", path: "/users", form: fields("reason", "new IT technician", "name", "NewTech", "roles", "admin", "roles", "viewer", "password", testPassword),
			status: http.StatusOK, effect: polAccount, wantText: "Account newtech added",
			check: user("newtech", func(u store.User) bool { return slices.Equal(u.Roles, []string{"admin", "viewer"}) && u.Group == "" })},
		{name: "API: add a pupil login", api: true, path: "/users", form: fields("reason", "Year 7 login", "name", "y7.pupil", "group", "ks3-ks4", "password", testPassword),
			status: http.StatusOK, effect: polAccount, check: user("y7.pupil", func(u store.User) bool { return len(u.Roles) == 0 && u.Group == "ks3-ks4" })},
		{name: "API: a taken name", api: true, path: "/users", form: fields("reason", "r", "name", "Ada", "password", testPassword),
			status: http.StatusBadRequest, wantText: "add user ada: user already exists"},
		{name: "API: a bad name", api: true, path: "/users", form: fields("reason", "r", "name", "new tech", "password", testPassword),
			status: http.StatusBadRequest, wantText: `name: user name "new tech": use letters, digits`, check: noUser("newtech2")},
		{name: "API: a short password", api: true, path: "/users", form: fields("reason", "r", "name", "shorty", "password", "short"),
			status: http.StatusBadRequest, wantText: "password is 5 characters: want at least 10", check: noUser("shorty")},
		{name: "API: a password ending in a space", api: true, path: "/users", form: fields("reason", "r", "name", "spacey", "password", testPassword+" "),
			status: http.StatusBadRequest, wantText: "password: must not begin or end with a space", check: noUser("spacey")},
		{name: "API: an unknown role", api: true, path: "/users", form: fields("reason", "r", "name", "boss", "roles", "superuser", "password", testPassword),
			status: http.StatusBadRequest, wantText: `roles: "superuser": want admin, dsl, viewer`, check: noUser("boss")},
		{name: "API: an unknown group", api: true, path: "/users", form: fields("reason", "r", "name", "y9", "group", "year9", "password", testPassword),
			status: http.StatusBadRequest, wantText: `unknown group "year9"`, check: noUser("y9")},
		{name: "page: no reason", path: "/users", form: fields("name", "noreason", "password", testPassword),
			status: http.StatusBadRequest, wantText: "reason is required", check: noUser("noreason")},

		{name: "API: give vic the dsl role too", api: true, path: "/users/vic/update", form: fields("reason", "deputy DSL", "roles", "viewer,dsl"),
			status: http.StatusOK, effect: polAccount, wantText: "vic: roles dsl, viewer",
			check: user("vic", func(u store.User) bool { return slices.Equal(u.Roles, []string{"dsl", "viewer"}) && !u.Disabled })},
		{name: "page: move the pupil, no roles ticked", path: "/users/y7.pupil/update", form: fields("reason", "moved up", "group", "sixth-form"),
			status: http.StatusOK, effect: polAccount, check: user("y7.pupil", func(u store.User) bool { return len(u.Roles) == 0 && u.Group == "sixth-form" })},
		{name: "page: nothing to change", path: "/users/y7.pupil/update", form: fields("reason", "r", "group", "sixth-form"),
			status: http.StatusBadRequest, wantText: "nothing to change"},
		{name: "API: no such user", api: true, path: "/users/nobody/update", form: fields("reason", "r", "roles", "viewer"),
			status: http.StatusNotFound, wantText: `user "nobody": no such user`},

		{name: "page: disable yourself", path: "/users/ada/disable", form: fields("reason", "r"),
			status: http.StatusBadRequest, wantText: "you cannot disable your own account", check: user("ada", func(u store.User) bool { return !u.Disabled })},
		{name: "page: disable vic", path: "/users/vic/disable", form: fields("reason", "left the school"),
			status: http.StatusOK, effect: polAccount, wantText: "vic disabled.", check: user("vic", func(u store.User) bool { return u.Disabled })},
		{name: "API: disable vic again", api: true, path: "/users/vic/disable", form: fields("reason", "r"),
			status: http.StatusBadRequest, wantText: "vic is already disabled"},
		{name: "API: enable vic", api: true, path: "/users/vic/enable", form: fields("reason", "came back"),
			status: http.StatusOK, effect: polAccount, check: func(t *testing.T, p categories.Policy) {
				user("vic", func(u store.User) bool { return !u.Disabled })(t, p)
				if polLoggedIn(t, vic) {
					t.Error("vic's session outlived the account being disabled")
				}
				vic = e.browser().login("vic")
			}},
		{name: "page: reset your own password", path: "/users/ada/password", form: fields("reason", "r", "password", newPassword),
			status: http.StatusBadRequest, wantText: "change your own password on My account"},
		{name: "page: reset without a password", path: "/users/vic/password", form: fields("reason", "r"),
			status: http.StatusBadRequest, wantText: "password is required"},
		{name: "page: reset vic's password", path: "/users/vic/password", form: fields("reason", "forgotten", "password", newPassword),
			status: http.StatusOK, effect: polAccount, wantText: "Password of vic reset; they were logged out everywhere.", check: func(t *testing.T, p categories.Policy) {
				user("vic", func(u store.User) bool { return store.CheckPassword(u, newPassword) })(t, p)
				if polLoggedIn(t, vic) {
					t.Error("vic's session outlived the password reset")
				}
			}},
		{name: "page: remove yourself", path: "/users/ada/remove", form: fields("reason", "r"),
			status: http.StatusBadRequest, wantText: "you cannot remove your own account"},
		{name: "API: remove nobody", api: true, path: "/users/nobody/remove", form: fields("reason", "r"),
			status: http.StatusNotFound, wantText: `remove user "nobody": no such user`},
		{name: "API: remove without a reason", api: true, path: "/users/y7.pupil/remove", form: fields(),
			status: http.StatusBadRequest, wantText: "reason is required", check: user("y7.pupil", func(store.User) bool { return true })},
		{name: "API: remove the pupil", api: true, path: "/users/y7.pupil/remove", form: fields("reason", "left"),
			status: http.StatusOK, effect: polAccount, check: noUser("y7.pupil")},
	})

	// The list and one account, on the page and in the API, never with a
	// password hash.
	_, body := s.b.get("/users?q=tech")
	if !strings.Contains(body, `<a href="/users/newtech">newtech</a>`) || strings.Contains(body, `href="/users/dora"`) {
		t.Errorf("the filtered list is wrong:\n%s", body)
	}
	vicToken := e.token("vic")
	_, body = s.b.get("/users/vic")
	for _, want := range []string{`action="/users/vic/password"`, `action="/users/vic/disable"`, `value="dsl" checked`, `<input type="hidden" name="user" value="vic">`} {
		if !strings.Contains(body, want) {
			t.Errorf("vic's page lacks %q", want)
		}
	}
	_, body = s.b.get("/users/ada")
	if strings.Contains(body, `action="/users/ada/remove"`) || !strings.Contains(body, "You cannot disable or remove your own account") {
		t.Error("your own page offers to remove you")
	}
	for _, path := range []string{"/users", "/users/vic"} {
		resp, raw := e.api(s.tok, http.MethodGet, path, "")
		if resp.StatusCode != http.StatusOK || strings.Contains(raw, "hash") || strings.Contains(raw, "$2a$") {
			t.Errorf("API %s: status %d, or a hash in:\n%s", path, resp.StatusCode, raw)
		}
	}
	if resp, _ := e.api(vicToken, http.MethodGet, "/account", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("vic's token gets status %d", resp.StatusCode)
	}
	var one userPage
	if resp, raw := e.api(s.tok, http.MethodGet, "/users/vic", ""); json.Unmarshal([]byte(raw), &one) != nil || len(one.Tokens) != 1 || one.User.Name != "vic" {
		t.Errorf("API /users/vic: status %d: %s", resp.StatusCode, raw)
	}
	resp, raw := e.api(s.tok, http.MethodGet, "/users", "")
	var page usersPage
	if err := json.Unmarshal([]byte(raw), &page); err != nil || resp.StatusCode != http.StatusOK || len(page.Users) != 5 {
		t.Errorf("API /users: %v, %+v", err, page)
	}

	// Removing ends the sessions too; and with a second administrator, ada
	// may give up her own role.
	vic = e.browser().login("dora")
	polRun(t, s, "/users", []polCheck{
		{name: "page: remove dora", path: "/users/dora/remove", form: fields("reason", "left"), status: http.StatusOK, effect: polAccount,
			check: func(t *testing.T, p categories.Policy) {
				noUser("dora")(t, p)
				if polLoggedIn(t, vic) {
					t.Error("dora's session outlived her account")
				}
			}},
		{name: "API: ada steps down", api: true, path: "/users/ada/update", form: fields("reason", "newtech takes over", "roles", "viewer"),
			status: http.StatusOK, effect: polAccount, check: user("ada", func(u store.User) bool { return slices.Equal(u.Roles, []string{"viewer"}) })},
	})
	if resp, _ := s.b.get("/users"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("ada, now a viewer, gets status %d from /users, want 403", resp.StatusCode)
	}
}
