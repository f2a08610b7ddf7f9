package admin

import (
	"net/netip"

	"hedgerow/store"
)

// testResult is the verdict for one URL as a group gets it, with the rule
// that matched and where the entries come from: the same decision code the
// servers run, on the snapshot they are running.
type testResult struct {
	Input      string        `json:"input"`
	Target     string        `json:"target"`
	Group      string        `json:"group"`
	Action     string        `json:"action"`
	Category   string        `json:"category,omitempty"`
	Severity   string        `json:"severity,omitempty"`
	Rule       string        `json:"rule"`
	Reason     string        `json:"reason"`
	Categories []string      `json:"categories"`
	Sources    []store.Found `json:"sources"`
}

type testPage struct {
	URL, Group, Client string
	Groups             []string
	Result             *testResult
}

func (s *Server) testURL(c *call) (reply, error) {
	snap := s.d.Filter.Current()
	p := testPage{URL: c.value("url"), Group: c.value("group"), Client: c.value("client")}
	for _, g := range snap.Policy().Groups {
		p.Groups = append(p.Groups, g.Name)
	}
	if p.URL == "" {
		if c.api {
			return reply{}, badRequest("url is required")
		}
		return reply{page: "test.html", title: "Test a URL", data: p}, nil
	}
	group := p.Group
	if p.Client != "" {
		addr, err := netip.ParseAddr(p.Client)
		if err != nil {
			return reply{}, badRequest("client %q: want an IP address", p.Client)
		}
		g, ok := snap.GroupFor(addr.Unmap())
		if !ok {
			return reply{}, badRequest("client %s is in no mapped range, so hedgerow refuses it (see Clients)", p.Client)
		}
		group = g
	}
	if !snap.HasGroup(group) {
		return reply{}, badRequest("group %q: no such group; choose one or give a client address", group)
	}
	t, v, err := snap.Check(group, p.URL, s.d.Now())
	if err != nil {
		return reply{}, badRequest("%v", err)
	}
	r := &testResult{Input: p.URL, Target: t.Host + t.Path, Group: group, Action: v.Action.String(), Rule: v.Rule.String(),
		Reason: v.Reason(), Categories: snap.Taxonomy().Slugs(v.Cats)}
	if v.Category != nil {
		r.Category, r.Severity = v.Category.Slug, v.Severity().String()
	}
	if err := s.d.Read(func(st *store.Store) error {
		var err error
		r.Sources, err = st.Find(t.Host, t.Path)
		return err
	}); err != nil {
		return reply{}, err
	}
	if c.api {
		return reply{data: r}, nil
	}
	p.Result = r
	return reply{page: "test.html", title: "Test a URL", data: p}, nil
}
