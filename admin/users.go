package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"

	"hedgerow/store"
)

// userRoutes are the Users page: staff accounts for this UI and accounts
// for proxy logins.
func (s *Server) userRoutes() []route {
	const get, post = http.MethodGet, http.MethodPost
	return []route{
		{get, "/users", roleAdmin, true, true, s.users},
		{get, "/users/{name}", roleAdmin, true, true, s.user},
		{post, "/users", roleAdmin, true, true, s.addUser},
		{post, "/users/{name}/update", roleAdmin, true, true, s.updateUserRoles},
		{post, "/users/{name}/disable", roleAdmin, true, true, s.enableUser(false)},
		{post, "/users/{name}/enable", roleAdmin, true, true, s.enableUser(true)},
		{post, "/users/{name}/password", roleAdmin, true, true, s.resetPassword},
		{post, "/users/{name}/remove", roleAdmin, true, true, s.removeUser},
	}
}

type usersPage struct {
	Users  []store.Account `json:"users"`
	Groups []string        `json:"groups"`
	Roles  []string        `json:"-"`
	Query  string          `json:"-"`
}

// groupNames lists the age groups, for the group choices.
func groupNames(st *store.Store) ([]string, error) {
	p, err := st.Policy()
	var names []string
	for _, g := range p.Groups {
		names = append(names, g.Name)
	}
	return names, err
}

var allRoles = []string{store.RoleAdmin, store.RoleDSL, store.RoleViewer}

// users lists the accounts; "q" keeps those whose name, group or roles
// contain it, for schools with many pupil logins.
func (s *Server) users(c *call) (reply, error) {
	page := usersPage{Users: []store.Account{}, Roles: allRoles, Query: c.value("q")}
	q := strings.ToLower(page.Query)
	err := s.d.Read(func(st *store.Store) error {
		us, err := st.Users()
		if err != nil {
			return err
		}
		for _, u := range us {
			if q == "" || strings.Contains(u.Name, q) || strings.Contains(u.Group, q) || slices.Contains(u.Roles, q) {
				page.Users = append(page.Users, u.Account())
			}
		}
		page.Groups, err = groupNames(st)
		return err
	})
	if err != nil {
		return reply{}, err
	}
	if c.api {
		return reply{data: page}, nil
	}
	return reply{page: "users.html", title: "Users", data: page}, nil
}

type userPage struct {
	User   store.Account `json:"user"`
	Tokens []store.Token `json:"tokens"` // their API tokens (never the tokens themselves)
	Groups []string      `json:"groups"`
	Roles  []string      `json:"-"`
}

// user is one account with the forms that change it.
func (s *Server) user(c *call) (reply, error) {
	name, err := pathUser(c)
	if err != nil {
		return reply{}, err
	}
	page := userPage{Roles: allRoles}
	err = s.d.Read(func(st *store.Store) error {
		u, err := st.User(name)
		if err != nil {
			return err
		}
		page.User = u.Account()
		if page.Tokens, err = st.Tokens(u.Name); err != nil {
			return err
		}
		page.Groups, err = groupNames(st)
		return err
	})
	if err != nil {
		return reply{}, err
	}
	if c.api {
		return reply{data: page}, nil
	}
	return reply{page: "user.html", title: "User " + name, data: page}, nil
}

// updateUser changes an account as the caller. Callers run it through
// s.edit: the running filter's proxy logins read accounts at each reload.
func (s *Server) updateUser(st *store.Store, c *call, reason, name string, apply func(u *store.User) error) error {
	return st.UpdateUser(c.actor(), reason, name, apply)
}

// rolesField reads the roles ticked (or listed in the API, as an array or
// separated by commas).
func rolesField(c *call) ([]string, error) {
	var roles []string
	for _, v := range c.values("roles") {
		for _, r := range strings.Split(v, ",") {
			r = strings.TrimSpace(r)
			if r == "" {
				continue
			}
			if !slices.Contains(allRoles, r) {
				return nil, badRequest("roles: %q: want %s", r, strings.Join(allRoles, ", "))
			}
			if !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
	}
	slices.Sort(roles) // as the store keeps them
	return roles, nil
}

// passwordField reads a new password as typed: spaces are not trimmed, so
// the proxy, which does not trim, accepts exactly what was set. Spaces at
// either end are refused because the login form would trim them.
func passwordField(c *call) (string, error) {
	var pw string
	if v := c.in["password"]; len(v) > 0 {
		pw = v[0]
	}
	if pw == "" {
		return "", badRequest("password is required: at least %d characters", store.MinPasswordChars)
	}
	if strings.TrimFunc(pw, unicode.IsSpace) != pw {
		return "", badRequest("password: must not begin or end with a space")
	}
	if err := store.ValidPassword(pw); err != nil {
		return "", badRequest("%v", err)
	}
	return pw, nil
}

// enabledAdmins counts the enabled administrators there would be if the
// account name became after (nil: removed).
func enabledAdmins(users []store.User, name string, after *store.User) int {
	n := 0
	for _, u := range users {
		if u.Name == name {
			if after == nil {
				continue
			}
			u = *after
		}
		if !u.Disabled && slices.Contains(u.Roles, store.RoleAdmin) {
			n++
		}
	}
	return n
}

// errLastAdmin refuses a change that would leave nobody able to manage
// accounts, lists and policies from the UI.
func errLastAdmin(name string) error {
	return badRequest("%s is the only enabled administrator: give another account the admin role first, or nobody could manage hedgerow from this UI", name)
}

// pathUser is the account a route's {name} names.
// userEdit reads what every change to an account needs: the account named
// in the path and the reason. notSelf, when not empty, is why the account
// cannot be the caller's own.
func userEdit(c *call, notSelf string) (name, reason string, err error) {
	if name, err = pathUser(c); err != nil {
		return "", "", err
	}
	if reason, err = editReason(c); err != nil {
		return "", "", err
	}
	if notSelf != "" && name == c.user.Name {
		return "", "", badRequest("%s", notSelf)
	}
	return name, reason, nil
}

func pathUser(c *call) (string, error) {
	name := c.r.PathValue("name")
	if err := store.ValidUserName(name); err != nil {
		return "", notFound("%v", err)
	}
	return strings.ToLower(name), nil
}

func (s *Server) addUser(c *call) (reply, error) {
	reason, err := editReason(c)
	if err != nil {
		return reply{}, err
	}
	name := c.value("name")
	if err := store.ValidUserName(name); err != nil {
		return reply{}, badRequest("name: %v", err)
	}
	roles, err := rolesField(c)
	if err != nil {
		return reply{}, err
	}
	pw, err := passwordField(c)
	if err != nil {
		return reply{}, err
	}
	u := store.User{Name: name, Roles: roles, Group: c.value("group")}
	if err := s.edit(func(st *store.Store) error { return st.AddUser(c.actor(), reason, u, pw) }); err != nil {
		return reply{}, err
	}
	name = strings.ToLower(name)
	return reply{redirect: "/users/" + name, message: fmt.Sprintf("Account %s added; give them the password in person.", name),
		data: map[string]any{"name": name}}, nil
}

// updateUserRoles sets an account's roles and group.
func (s *Server) updateUserRoles(c *call) (reply, error) {
	name, reason, err := userEdit(c, "")
	if err != nil {
		return reply{}, err
	}
	setRoles, setGroup := editSent(c, "roles"), editSent(c, "group")
	roles, err := rolesField(c)
	if err != nil {
		return reply{}, err
	}
	group := c.value("group")
	var changed []string
	err = s.edit(func(st *store.Store) error {
		users, err := st.Users()
		if err != nil {
			return err
		}
		return s.updateUser(st, c, reason, name, func(u *store.User) error {
			if setRoles && !sameRoles(u.Roles, roles) {
				u.Roles = roles
				rs := strings.Join(roles, ", ")
				if rs == "" {
					rs = "none (proxy login only)"
				}
				changed = append(changed, "roles "+rs)
			}
			if setGroup && u.Group != group {
				u.Group = group
				changed = append(changed, groupLabel(group))
			}
			if len(changed) == 0 {
				return badRequest("nothing to change: %s already has these roles and this group", name)
			}
			if enabledAdmins(users, name, u) == 0 {
				return errLastAdmin(name)
			}
			return nil
		})
	})
	if err != nil {
		return reply{}, err
	}
	return reply{redirect: "/users/" + name, message: fmt.Sprintf("%s: %s.", name, strings.Join(changed, "; "))}, nil
}

func sameRoles(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// enableUser disables or re-enables an account. A disabled account's
// sessions end at once; it is kept for the record.
func (s *Server) enableUser(enable bool) func(c *call) (reply, error) {
	verb := map[bool]string{true: "enabled", false: "disabled"}[enable]
	return func(c *call) (reply, error) {
		notSelf := ""
		if !enable {
			notSelf = "you cannot disable your own account; ask another administrator"
		}
		name, reason, err := userEdit(c, notSelf)
		if err != nil {
			return reply{}, err
		}
		err = s.edit(func(st *store.Store) error {
			users, err := st.Users()
			if err != nil {
				return err
			}
			return s.updateUser(st, c, reason, name, func(u *store.User) error {
				// A change that changes nothing would still leave an audit
				// record claiming it did.
				if u.Disabled == !enable {
					return badRequest("%s is already %s", name, verb)
				}
				u.Disabled = !enable
				if enabledAdmins(users, name, u) == 0 {
					return errLastAdmin(name)
				}
				return nil
			})
		})
		if err != nil {
			return reply{}, err
		}
		if !enable {
			s.sessions.endUser(name)
		}
		return reply{redirect: "/users/" + name, message: fmt.Sprintf("%s %s.", name, verb)}, nil
	}
}

// resetPassword sets a new password for someone else (people change their
// own on My account, which asks for the current one) and ends their
// sessions.
func (s *Server) resetPassword(c *call) (reply, error) {
	name, reason, err := userEdit(c, "change your own password on My account, which asks for your current one")
	if err != nil {
		return reply{}, err
	}
	pw, err := passwordField(c)
	if err != nil {
		return reply{}, err
	}
	if err := s.edit(func(st *store.Store) error { return st.SetPassword(c.actor(), reason, name, pw) }); err != nil {
		return reply{}, err
	}
	s.sessions.endUser(name)
	return reply{redirect: "/users/" + name, message: fmt.Sprintf("Password of %s reset; they were logged out everywhere.", name)}, nil
}

func (s *Server) removeUser(c *call) (reply, error) {
	name, reason, err := userEdit(c, "you cannot remove your own account; ask another administrator")
	if err != nil {
		return reply{}, err
	}
	err = s.edit(func(st *store.Store) error {
		users, err := st.Users()
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(users, func(u store.User) bool { return u.Name == name }) {
			return fmt.Errorf("remove user %q: %w", name, store.ErrNoUser)
		}
		if enabledAdmins(users, name, nil) == 0 {
			return errLastAdmin(name)
		}
		return st.RemoveUser(c.actor(), reason, name)
	})
	if err != nil {
		return reply{}, err
	}
	s.sessions.endUser(name)
	return reply{redirect: "/users", message: fmt.Sprintf("Account %s removed.", name)}, nil
}
