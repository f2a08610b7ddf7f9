package admin

import (
	"cmp"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"hedgerow/categories"
	"hedgerow/store"
)

// clientRoutes are the Clients page: which addresses and which proxy-login
// users belong to which group.
func (s *Server) clientRoutes() []route {
	const get, post = http.MethodGet, http.MethodPost
	return []route{
		{get, "/clients", roleAdmin, true, true, s.clients},
		{post, "/clients", roleAdmin, true, true, s.addClient},
		{post, "/clients/remove", roleAdmin, true, true, s.removeClient},
		{post, "/clients/users", roleAdmin, true, true, s.setUserGroup},
	}
}

// clientRow is one address range and its group.
type clientRow struct {
	Range string `json:"range"`
	Group string `json:"group"`
}

// userGroupRow is a user whose proxy logins browse under a group.
type userGroupRow struct {
	Name     string   `json:"name"`
	Group    string   `json:"group"`
	Roles    []string `json:"roles"`
	Disabled bool     `json:"disabled"`
}

type clientsPage struct {
	Version uint64         `json:"version"`
	Clients []clientRow    `json:"clients"`
	Users   []userGroupRow `json:"users"` // users with a group
	Groups  []string       `json:"groups"`
}

func (s *Server) clients(c *call) (reply, error) {
	var page clientsPage
	err := s.d.Read(func(st *store.Store) error {
		p, v, _, err := readPolicyState(st)
		if err != nil {
			return err
		}
		page.Version = v
		rules := slices.Clone(p.Clients)
		slices.SortFunc(rules, func(a, b categories.ClientRule) int {
			return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), a.Prefix.Bits()-b.Prefix.Bits())
		})
		for _, r := range rules {
			page.Clients = append(page.Clients, clientRow{r.Prefix.String(), r.Group})
		}
		for _, g := range p.Groups {
			page.Groups = append(page.Groups, g.Name)
		}
		users, err := st.Users()
		for _, u := range users {
			if u.Group != "" {
				page.Users = append(page.Users, userGroupRow{u.Name, u.Group, u.Roles, u.Disabled})
			}
		}
		return err
	})
	if err != nil {
		return reply{}, err
	}
	if c.api {
		return reply{data: page}, nil
	}
	return reply{page: "clients.html", title: "Clients", data: page}, nil
}

// clientRange reads the "range" field: an address or CIDR.
func clientRange(c *call) (netip.Prefix, error) {
	raw := c.value("range")
	if raw == "" {
		return netip.Prefix{}, badRequest("range is required: an address (10.1.2.3) or a range (10.1.0.0/16)")
	}
	pfx, err := categories.ParseClient(raw)
	if err != nil {
		return netip.Prefix{}, badRequest("range: %v", err)
	}
	return pfx, nil
}

// addClient maps an address or range to a group, replacing the range's
// mapping if it had one.
func (s *Server) addClient(c *call) (reply, error) {
	reason, version, err := policyEditParams(c)
	if err != nil {
		return reply{}, err
	}
	pfx, err := clientRange(c)
	if err != nil {
		return reply{}, err
	}
	rng, group := pfx.String(), c.value("group")
	err = s.edit(func(st *store.Store) error {
		return s.changePolicy(st, c, store.PolicyChange{Action: "clients add " + rng + " " + group, Reason: reason, Version: version,
			Apply: func(p *categories.Policy) (string, error) {
				if _, err := ageGroup(p, group); err != nil {
					return "", badRequest("group: %v", err)
				}
				p.Clients = slices.DeleteFunc(p.Clients, func(cr categories.ClientRule) bool { return cr.Prefix == pfx })
				p.Clients = append(p.Clients, categories.ClientRule{Prefix: pfx, Group: group})
				return "clients", nil
			}})
	})
	if err != nil {
		return reply{}, err
	}
	return reply{redirect: "/clients", message: fmt.Sprintf("%s now belongs to %s.", rng, group)}, nil
}

func (s *Server) removeClient(c *call) (reply, error) {
	reason, version, err := policyEditParams(c)
	if err != nil {
		return reply{}, err
	}
	pfx, err := clientRange(c)
	if err != nil {
		return reply{}, err
	}
	rng := pfx.String()
	err = s.edit(func(st *store.Store) error {
		return s.changePolicy(st, c, store.PolicyChange{Action: "clients remove " + rng, Reason: reason, Version: version,
			Apply: func(p *categories.Policy) (string, error) {
				n := len(p.Clients)
				p.Clients = slices.DeleteFunc(p.Clients, func(cr categories.ClientRule) bool { return cr.Prefix == pfx })
				if len(p.Clients) == n {
					return "", notFound("range %s: no mapping for it", rng)
				}
				return "clients", nil
			}})
	})
	if err != nil {
		return reply{}, err
	}
	return reply{redirect: "/clients", message: fmt.Sprintf("%s removed: devices there are now refused unless a wider range covers them.", rng)}, nil
}

// setUserGroup sets the group a user's proxy logins browse under ("" for
// the group of the device they use).
func (s *Server) setUserGroup(c *call) (reply, error) {
	reason, err := editReason(c)
	if err != nil {
		return reply{}, err
	}
	name, group := strings.ToLower(c.value("user")), c.value("group")
	if err := store.ValidUserName(name); err != nil {
		return reply{}, badRequest("user: %v", err)
	}
	err = s.edit(func(st *store.Store) error {
		return s.updateUser(st, c, reason, name, func(u *store.User) error {
			if u.Group == group {
				return badRequest("user %s is already in %s", name, groupLabel(group))
			}
			u.Group = group
			return nil
		})
	})
	if err != nil {
		return reply{}, err
	}
	return reply{redirect: "/clients#users", message: fmt.Sprintf("%s now browses in %s when logged in to the proxy.", name, groupLabel(group))}, nil
}

func groupLabel(group string) string {
	if group == "" {
		return "the group of the device they use"
	}
	return "group " + group
}
