package admin

import (
	"strings"
	"time"

	"hedgerow/categories"
	"hedgerow/store"
)

// publicGroup is what the published policy says of one group: nothing
// about any person, only what is filtered and why.
type publicGroup struct {
	Name        string           `json:"name"`
	Description string           `json:"description"`
	Mode        string           `json:"mode"`
	Filtered    []publicCategory `json:"filtered"`
	Approved    []publicCategory `json:"approved,omitempty"`
	SafeSearch  bool             `json:"safe_search"`
	YouTube     string           `json:"youtube_restricted,omitempty"`
	Schedules   int              `json:"schedules"`
	Intercept   bool             `json:"https_inspection"`
}

type publicCategory struct {
	Slug     string `json:"slug"`
	Name     string `json:"name"`
	Severity string `json:"severity"`
	Why      string `json:"why"`
}

type publicPolicy struct {
	Groups      []publicGroup `json:"groups"`
	LastChanged time.Time     `json:"last_changed"`
	Always      []string      `json:"always_blocked"` // illegal content, whatever the group
}

// policyPage is the filtering policy for staff, parents and governors:
// per group, which categories are filtered and why, safe search, and when
// the policy last changed. No login, no personal data.
func (s *Server) policyPage(c *call) (reply, error) {
	snap := s.d.Filter.Current()
	tax := snap.Taxonomy()
	describe := func(slugs []string) []publicCategory {
		var out []publicCategory
		for _, sl := range slugs {
			if cat, ok := tax.Lookup(sl); ok {
				out = append(out, publicCategory{cat.Slug, cat.Name, cat.Severity.String(), cat.Description})
			}
		}
		return out
	}
	var p publicPolicy
	for _, g := range snap.Policy().Groups {
		p.Groups = append(p.Groups, publicGroup{Name: g.Name, Description: g.Description, Mode: string(g.Mode),
			Filtered: describe(g.Blocked), Approved: describe(g.Approved), SafeSearch: g.SafeSearch, YouTube: g.YouTube,
			Schedules: len(g.Schedules), Intercept: g.Intercept})
	}
	for _, cat := range tax.All() {
		if cat.Severity == categories.SeverityCritical {
			p.Always = append(p.Always, cat.Name)
		}
	}
	err := s.d.Read(func(st *store.Store) error {
		recs, err := st.Audit(200)
		for _, r := range recs {
			if strings.HasPrefix(r.Action, "groups") || strings.HasPrefix(r.Action, "policy") || r.Action == "init" {
				p.LastChanged = r.Time
				break
			}
		}
		return err
	})
	if err != nil {
		return reply{}, err
	}
	if c.api {
		return reply{data: p}, nil
	}
	return reply{page: "policy.html", title: "Our web filtering policy", data: p}, nil
}
