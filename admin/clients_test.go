package admin

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"

	"hedgerow/categories"
	"hedgerow/store"
)

// polClientGroup is the group the running filter puts an address in.
func polClientGroup(e *testEnv, addr string) string {
	g, ok := e.filter.Current().GroupFor(netip.MustParseAddr(addr))
	if !ok {
		return "(refused)"
	}
	return g
}

// polUserGroup is a stored user's group.
func polUserGroup(t *testing.T, e *testEnv, name string) string {
	t.Helper()
	var u store.User
	e.read(func(s *store.Store) error {
		var err error
		u, err = s.User(name)
		return err
	})
	return u.Group
}

func TestClients(t *testing.T) {
	s := newPolSession(t)
	e := s.e
	rangeOf := func(rng, group string) func(t *testing.T, p categories.Policy) {
		return func(t *testing.T, p categories.Policy) {
			i := slices.IndexFunc(p.Clients, func(c categories.ClientRule) bool { return c.Prefix.String() == rng })
			switch {
			case group == "" && i >= 0:
				t.Errorf("%s is still mapped to %s", rng, p.Clients[i].Group)
			case group != "" && (i < 0 || p.Clients[i].Group != group):
				t.Errorf("%s is not mapped to %s: %v", rng, group, p.Clients)
			}
		}
	}
	form := func(rng, group string) func(v string) url.Values {
		return func(v string) url.Values {
			return url.Values{"version": {v}, "reason": {"secondary Wi-Fi"}, "range": {rng}, "group": {group}}
		}
	}
	polRun(t, s, "/clients", []polCheck{
		{name: "page: map a range", path: "/clients", form: form("10.20.0.0/16", "ks3-ks4"), status: http.StatusOK, effect: polPolicy,
			wantText: "10.20.0.0/16 now belongs to ks3-ks4.", check: func(t *testing.T, p categories.Policy) {
				rangeOf("10.20.0.0/16", "ks3-ks4")(t, p)
				if g := polClientGroup(e, "10.20.1.2"); g != "ks3-ks4" {
					t.Errorf("the running filter puts 10.20.1.2 in %s", g)
				}
			}},
		{name: "API: one address, remapped", api: true, path: "/clients", form: form("10.20.1.2", "staff"), status: http.StatusOK, effect: polPolicy,
			check: func(t *testing.T, p categories.Policy) {
				rangeOf("10.20.1.2/32", "staff")(t, p)
				if g := polClientGroup(e, "10.20.1.2"); g != "staff" {
					t.Errorf("the running filter puts 10.20.1.2 in %s", g)
				}
			}},
		{name: "API: host bits set", api: true, path: "/clients", form: form("10.1.2.3/16", "ks2"), status: http.StatusBadRequest,
			wantText: `range: client range "10.1.2.3/16" has host bits set; did you mean 10.1.0.0/16?`},
		{name: "API: not an address", api: true, path: "/clients", form: form("the library", "ks2"), status: http.StatusBadRequest,
			wantText: `range: client "the library": want an address or CIDR`},
		{name: "API: no range", api: true, path: "/clients", form: form("", "ks2"), status: http.StatusBadRequest,
			wantText: "range is required"},
		{name: "page: unknown group", path: "/clients", form: form("10.30.0.0/16", "year9"), status: http.StatusBadRequest,
			wantText: `group: group "year9": no such group`},
		{name: "page: the school-wide overrides are no group", path: "/clients", form: form("10.30.0.0/16", "school"), status: http.StatusBadRequest,
			wantText: "pick an age group"},
		{name: "page: no reason", path: "/clients", form: func(v string) url.Values {
			f := form("10.30.0.0/16", "ks2")(v)
			f.Del("reason")
			return f
		}, status: http.StatusBadRequest, wantText: "reason is required"},
		{name: "page: stale version", path: "/clients", form: func(v string) url.Values {
			return form("10.30.0.0/16", "ks2")(polStale(v))
		}, status: http.StatusConflict, wantText: "clients add 10.30.0.0/16 ks2: the policy was changed by someone else", check: rangeOf("10.30.0.0/16", "")},
		{name: "API: remove the address", api: true, path: "/clients/remove", form: form("10.20.1.2", ""), status: http.StatusOK, effect: polPolicy,
			check: func(t *testing.T, p categories.Policy) {
				rangeOf("10.20.1.2/32", "")(t, p)
				if g := polClientGroup(e, "10.20.1.2"); g != "ks3-ks4" {
					t.Errorf("the running filter puts 10.20.1.2 in %s", g)
				}
			}},
		{name: "page: remove what is not mapped", path: "/clients/remove", form: form("10.99.0.0/16", ""), status: http.StatusNotFound,
			wantText: "range 10.99.0.0/16: no mapping for it"},
		{name: "page: remove a range", path: "/clients/remove", form: form("10.20.0.0/16", ""), status: http.StatusOK, effect: polPolicy,
			wantText: "10.20.0.0/16 removed", check: rangeOf("10.20.0.0/16", "")},
	})

	userForm := func(user, group string) func(string) url.Values {
		return func(string) url.Values {
			return url.Values{"reason": {"shared laptops"}, "user": {user}, "group": {group}}
		}
	}
	userGroup := func(group string) func(t *testing.T, _ categories.Policy) {
		return func(t *testing.T, _ categories.Policy) {
			if g := polUserGroup(t, e, "pupil"); g != group {
				t.Errorf("pupil is in %q, want %q", g, group)
			}
		}
	}
	polRun(t, s, "/clients", []polCheck{
		{name: "page: put a user in a group", path: "/clients/users", form: userForm("Pupil", "ks2"), status: http.StatusOK, effect: polAccount,
			wantText: "pupil now browses in group ks2", check: userGroup("ks2")},
		{name: "API: the same again", api: true, path: "/clients/users", form: userForm("pupil", "ks2"), status: http.StatusBadRequest,
			wantText: "user pupil is already in group ks2", check: userGroup("ks2")},
		{name: "API: unknown group", api: true, path: "/clients/users", form: userForm("pupil", "year9"), status: http.StatusBadRequest,
			wantText: `unknown group "year9"`, check: userGroup("ks2")},
		{name: "API: unknown user", api: true, path: "/clients/users", form: userForm("nobody", "ks2"), status: http.StatusNotFound,
			wantText: `user "nobody": no such user`},
		{name: "API: bad user name", api: true, path: "/clients/users", form: userForm("no body", "ks2"), status: http.StatusBadRequest,
			wantText: `user: user name "no body": use letters, digits`},
		{name: "page: no reason", path: "/clients/users", form: func(string) url.Values {
			return url.Values{"user": {"pupil"}, "group": {""}}
		}, status: http.StatusBadRequest, wantText: "reason is required", check: userGroup("ks2")},
		{name: "API: back to the device's group", api: true, path: "/clients/users", form: userForm("pupil", ""), status: http.StatusOK, effect: polAccount,
			wantText: "the group of the device they use", check: userGroup("")},
	})

	// The page and the API list the ranges and the users with a group.
	polRun(t, s, "/clients", []polCheck{{name: "page: a user with a group", path: "/clients/users", form: userForm("vic", "staff"),
		status: http.StatusOK, effect: polAccount}})
	_, body := s.b.get("/clients")
	for _, want := range []string{"<td>10.0.0.0/8</td><td>ks2</td>", "<td>vic</td><td>staff</td>", `<input type="hidden" name="range" value="192.168.0.0/16">`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	resp, raw := e.api(s.tok, http.MethodGet, "/clients", "")
	var page clientsPage
	if err := json.Unmarshal([]byte(raw), &page); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("API: status %d, %v: %s", resp.StatusCode, err, raw)
	}
	if len(page.Clients) != 6 || len(page.Users) != 1 || page.Users[0].Name != "vic" || page.Version == 0 {
		t.Errorf("API: %+v", page)
	}
}
