package admin

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"hedgerow/categories"
	"hedgerow/store"
)

// requestRoutes are the two queues the block page fills: unblock requests
// for IT, and concerns for the DSL.
func (s *Server) requestRoutes() []route {
	const get, post = http.MethodGet, http.MethodPost
	return []route{
		{get, "/requests", roleAdmin, true, true, s.unblockRequests},
		{post, "/requests/{id}/approve", roleAdmin, true, true, s.approveRequest},
		{post, "/requests/{id}/decline", roleAdmin, true, true, s.declineRequest},
		{get, "/concerns", roleDSL, true, true, s.concerns},
		{post, "/concerns/{id}/done", roleDSL, true, true, s.concernDone},
	}
}

// maxReports bounds what one page lists.
const maxReports = 500

// unblockView is an unblock request as IT staff see it: the device and
// user only as pseudonyms, since identities are for the DSL.
type unblockView struct {
	store.Report
	Pseudonymised bool `json:"pseudonymised"`
}

type requestsPage struct {
	Requests []unblockView `json:"requests"`
}

func (s *Server) unblockRequests(c *call) (reply, error) {
	var reps []store.Report
	err := s.d.Read(func(st *store.Store) error {
		var err error
		reps, err = st.Reports(store.ReportUnblock, maxReports)
		return err
	})
	if err != nil {
		return reply{}, err
	}
	key, err := s.pseudonymKey()
	if err != nil {
		return reply{}, fmt.Errorf("pseudonyms: %w", err)
	}
	page := requestsPage{Requests: make([]unblockView, 0, len(reps))}
	for _, r := range reps {
		// The same stand-ins as on the incidents pages, so IT staff can
		// tell one device's requests and incidents belong together.
		r.Client = pseudonym(key, "client", r.Client)
		r.User = pseudonym(key, "user", r.User)
		page.Requests = append(page.Requests, unblockView{Report: r, Pseudonymised: true})
	}
	if c.api {
		return reply{data: page}, nil
	}
	return reply{page: "requests.html", title: "Unblock requests", data: page}, nil
}

// undecidedReport reads a report of the given kind that nobody has decided
// yet. A report of the other kind is "not found": an unblock request
// cannot be closed from the DSL's queue, nor a concern approved by IT.
func undecidedReport(st *store.Store, id uint64, kind string) (store.Report, error) {
	noun := map[string]string{store.ReportUnblock: "unblock request", store.ReportConcern: "concern"}[kind]
	r, err := st.Report(id)
	if err != nil {
		return r, err
	}
	if r.Kind != kind {
		return r, notFound("%s %d: there is none with that number", noun, id)
	}
	if r.State != store.ReportNew {
		return r, &httpError{http.StatusConflict, fmt.Sprintf("%s %d is already %s; reload the page", noun, id, r.State)}
	}
	return r, nil
}

// requiredNote reads the note a decision must carry ("reason" is taken
// too, the name every other change uses).
func requiredNote(c *call, what string) (string, error) {
	n := cmp.Or(c.value("note"), c.value("reason"))
	if n == "" {
		return "", badRequest("note is required: say %s (it is kept in the audit log)", what)
	}
	if len(n) > 2000 {
		return "", badRequest("note is %d characters: want at most 2000", len(n))
	}
	return n, nil
}

// requestHost is the site an unblock request asks for: its host, or the
// host of its URL.
func requestHost(r store.Report) (categories.Target, error) {
	h := r.Host
	if h == "" {
		if u, err := url.Parse(r.URL); err == nil {
			h = u.Hostname()
		}
	}
	t, err := categories.ParseOverride(h)
	if err != nil {
		return t, badRequest("unblock request %d: its site %q is not a name hedgerow can allow: %v", r.ID, h, err)
	}
	return categories.Target{Host: t.Host}, nil
}

// approveRequest grants an unblock request: an allow override for the
// request's host in its group ("scope" group, the default) or for every
// group ("scope" school), with the request as the reason, then the request
// marked approved. Both happen in one database session: if the override is
// refused, the request stays new; if the request cannot be marked, the
// override is taken back.
func (s *Server) approveRequest(c *call) (reply, error) {
	id, err := c.id("id")
	if err != nil {
		return reply{}, err
	}
	note, err := requiredNote(c, "why the site may be allowed")
	if err != nil {
		return reply{}, err
	}
	scope := cmp.Or(c.value("scope"), "group")
	if scope != "group" && scope != "school" {
		return reply{}, badRequest("scope %q: want group (the request's group) or school (every group)", scope)
	}
	var group, target string
	err = s.edit(func(st *store.Store) error {
		r, err := undecidedReport(st, id, store.ReportUnblock)
		if err != nil {
			return err
		}
		t, err := requestHost(r)
		if err != nil {
			return err
		}
		if err := guardAllowTarget(s.d.Filter.Current(), t); err != nil {
			return err
		}
		target, group = t.Host, r.Group
		if scope == "school" {
			group = categories.SchoolGroup
		} else if group == "" {
			return badRequest("unblock request %d does not say which group the device was in; approve it for every group (school-wide) instead", id)
		}
		p, err := st.Policy()
		if err != nil {
			return err
		}
		g, err := findPolicyGroup(&p, group)
		if err != nil {
			return badRequest("unblock request %d: %v; approve it for every group (school-wide) instead", id, err)
		}
		allow, deny := slices.Clone(g.Allow), slices.Clone(g.Deny)
		msg := cmp.Or(r.Message, "(no message)")
		reason := fmt.Sprintf("unblock request %d from the block page: %s; approved by %s: %s", id, msg, c.actor(), note)
		action := "groups allow " + group + " " + target
		err = s.changePolicy(st, c, store.PolicyChange{Action: action, Reason: reason,
			Apply: func(p *categories.Policy) (string, error) { return setOverride(p, group, target, true, false) }})
		if err != nil {
			return err
		}
		if derr := st.DecideReport(c.actor(), id, store.ReportApproved, note); derr != nil {
			undo := store.PolicyChange{Action: action + " --remove", Reason: fmt.Sprintf("taken back: unblock request %d could not be marked approved: %v", id, derr),
				Apply: func(p *categories.Policy) (string, error) {
					g, err := findPolicyGroup(p, group)
					if err != nil {
						return "", err
					}
					g.Allow, g.Deny = allow, deny
					return group, nil
				}}
			if uerr := s.changePolicy(st, c, undo); uerr != nil {
				return fmt.Errorf("unblock request %d: marking it approved failed (%w) and taking back the allow override for %s in %s failed too: %v", id, derr, target, group, uerr)
			}
			return fmt.Errorf("unblock request %d: marking it approved: %w (the allow override was taken back)", id, derr)
		}
		return nil
	})
	if err != nil {
		return reply{}, err
	}
	who := "group " + group
	if group == categories.SchoolGroup {
		who = "every group"
	}
	return reply{redirect: "/requests", message: fmt.Sprintf("Unblock request %d approved: %s now allows %s.", id, who, target),
		data: map[string]any{"id": id, "group": group, "target": target}}, nil
}

func (s *Server) declineRequest(c *call) (reply, error) {
	id, err := c.id("id")
	if err != nil {
		return reply{}, err
	}
	note, err := requiredNote(c, "why the site stays blocked")
	if err != nil {
		return reply{}, err
	}
	err = s.d.Write(func(st *store.Store) error {
		if _, err := undecidedReport(st, id, store.ReportUnblock); err != nil {
			return err
		}
		return st.DecideReport(c.actor(), id, store.ReportDeclined, note)
	})
	if err != nil {
		return reply{}, err
	}
	return reply{redirect: "/requests", message: fmt.Sprintf("Unblock request %d declined.", id), data: map[string]any{"id": id}}, nil
}

type concernsPage struct {
	Concerns []store.Report `json:"concerns"`
}

// concerns is the DSL's queue of concerns reported from the block page,
// with who reported them; waiting ones first. Every look is audited: who,
// which reports, from where.
func (s *Server) concerns(c *call) (reply, error) {
	var reps []store.Report
	err := s.d.Write(func(st *store.Store) error {
		var err error
		if reps, err = st.Reports(store.ReportConcern, maxReports); err != nil || len(reps) == 0 {
			return err
		}
		ids := make([]string, len(reps))
		for i, r := range reps {
			ids[i] = strconv.FormatUint(r.ID, 10)
		}
		return st.RecordView(c.actor(), "concerns-view", fmt.Sprintf("reports %s from %s", strings.Join(ids, ","), c.from()))
	})
	if err != nil {
		return reply{}, err
	}
	waiting := func(r store.Report) int {
		if r.State == store.ReportNew {
			return 0
		}
		return 1
	}
	// Newest first already; the stable sort only moves waiting ones up.
	slices.SortStableFunc(reps, func(a, b store.Report) int { return waiting(a) - waiting(b) })
	page := concernsPage{Concerns: reps}
	if page.Concerns == nil {
		page.Concerns = []store.Report{}
	}
	if c.api {
		return reply{data: page}, nil
	}
	return reply{page: "concerns.html", title: "Concerns", data: page}, nil
}

func (s *Server) concernDone(c *call) (reply, error) {
	id, err := c.id("id")
	if err != nil {
		return reply{}, err
	}
	note, err := requiredNote(c, "what was seen and what was done")
	if err != nil {
		return reply{}, err
	}
	err = s.d.Write(func(st *store.Store) error {
		if _, err := undecidedReport(st, id, store.ReportConcern); err != nil {
			return err
		}
		return st.DecideReport(c.actor(), id, store.ReportDone, note)
	})
	if err != nil {
		return reply{}, err
	}
	return reply{redirect: "/concerns", message: fmt.Sprintf("Concern %d marked done.", id), data: map[string]any{"id": id}}, nil
}
