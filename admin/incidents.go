package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"hedgerow/store"
)

// incidentView is an incident as one caller may see it: for anyone without
// the dsl role the pupil's address, user name and what they typed are
// replaced by stable pseudonyms or left out, so IT staff and viewers can
// see trends and repeat behaviour without seeing who.
type incidentView struct {
	store.Incident
	Pseudonymised bool   `json:"pseudonymised"`
	NotesHidden   int    `json:"notes_hidden,omitempty"`
	Highlight     string `json:"-"` // "critical", "pattern" or ""
}

func (s *Server) viewOf(in store.Incident, key []byte, identities bool) incidentView {
	v := incidentView{Incident: in}
	switch {
	case in.Rule == store.RulePattern:
		v.Highlight = "pattern"
	case in.Severity == "critical":
		v.Highlight = "critical"
	}
	if identities {
		return v
	}
	v.Pseudonymised = true
	v.Client = pseudonym(key, "client", in.Client)
	v.User = pseudonym(key, "user", in.User)
	v.Device = pseudonym(key, "device", in.Device)
	v.MAC = pseudonym(key, "mac", in.MAC)
	if in.URL != "" {
		v.URL = "(visible to the DSL)"
	}
	if in.SearchTerm != "" {
		v.SearchTerm = "(visible to the DSL)"
	}
	v.NotesHidden = len(in.Notes)
	v.Notes = nil
	v.Context = nil // what the pupil browsed before is theirs, for the DSL only
	return v
}

// pseudonym stands in for one kind of identity; nothing known stays
// nothing, rather than becoming a pseudonym of the empty name.
func pseudonym(key []byte, kind, identity string) string {
	if identity == "" {
		return ""
	}
	return store.Pseudonym(key, kind+":"+identity)
}

// incidentFilter reads the list's filters from the query.
func (s *Server) incidentFilter(c *call) (store.IncidentFilter, error) {
	f := store.IncidentFilter{Group: c.value("group"), Category: c.value("category"), Severity: c.value("severity"),
		State: c.value("state"), ReviewOnly: c.value("review") == "1" || c.value("review") == "true"}
	var err error
	if f.Since, err = parseDate(c.value("since"), false); err != nil {
		return f, badRequest("since %v", err)
	}
	if f.Until, err = parseDate(c.value("until"), true); err != nil {
		return f, badRequest("until %v", err)
	}
	if c.identities() {
		// Only the DSL may search by who; a pseudonym cannot be searched.
		f.Client, f.User = c.value("client"), strings.ToLower(c.value("user"))
	}
	f.Limit = 500
	if n, err := strconv.Atoi(c.value("limit")); err == nil && n > 0 && n < f.Limit {
		f.Limit = n
	}
	return f, f.Validate()
}

func parseDate(v string, endOfDay bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	t, err := time.ParseInLocation("2006-01-02", v, time.Local)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a date like 2026-09-01", v)
	}
	if endOfDay {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

type incidentList struct {
	Incidents  []incidentView `json:"incidents"`
	Filter     map[string]string
	States     []string
	Severities []string
	Rule       string
}

// readIncidents reads incidents and, when the caller sees identities,
// audits the look in the same database session: who, which records, from
// where.
func (s *Server) readIncidents(c *call, action string, read func(*store.Store) ([]store.Incident, error)) ([]incidentView, error) {
	var incs []store.Incident
	var key []byte
	op := s.d.Read
	if c.identities() {
		op = s.d.Write
	}
	err := op(func(st *store.Store) error {
		var err error
		if incs, err = read(st); err != nil {
			return err
		}
		if c.identities() {
			if len(incs) == 0 {
				return nil
			}
			ids := make([]string, 0, len(incs))
			for _, in := range incs {
				ids = append(ids, strconv.FormatUint(in.ID, 10))
			}
			return st.RecordView(c.actor(), action, fmt.Sprintf("incidents %s from %s", strings.Join(ids, ","), c.from()))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !c.identities() {
		if key, err = s.pseudonymKey(); err != nil {
			return nil, fmt.Errorf("pseudonyms: %w", err)
		}
	}
	out := make([]incidentView, len(incs))
	for i, in := range incs {
		out[i] = s.viewOf(in, key, c.identities())
	}
	return out, nil
}

// pseudonymKey returns the key behind pseudonyms, read (or made) once.
func (s *Server) pseudonymKey() ([]byte, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	err := s.d.Write(func(st *store.Store) error {
		var err error
		s.key, err = st.PseudonymKey()
		return err
	})
	return s.key, err
}

func (s *Server) incidents(c *call) (reply, error) {
	f, err := s.incidentFilter(c)
	if err != nil {
		return reply{}, err
	}
	rule := c.value("rule")
	views, err := s.readIncidents(c, "incidents-view", func(st *store.Store) ([]store.Incident, error) {
		incs, err := st.Incidents(f)
		if rule != "" {
			incs = slices.DeleteFunc(incs, func(in store.Incident) bool { return in.Rule != rule })
		}
		return incs, err
	})
	if err != nil {
		return reply{}, err
	}
	if c.api {
		return reply{data: incidentList{Incidents: views}}, nil
	}
	filter := map[string]string{}
	for _, k := range []string{"since", "until", "group", "category", "severity", "state", "client", "user", "review", "rule"} {
		filter[k] = c.value(k)
	}
	return reply{page: "incidents.html", title: "Incidents",
		data: incidentList{Incidents: views, Filter: filter, States: []string{store.StateNew, store.StateReviewed, store.StateEscalated, store.StateDismissed},
			Severities: []string{"critical", "high", "low"}, Rule: rule}}, nil
}

type incidentDetail struct {
	Incident incidentView   `json:"incident"`
	Related  []incidentView `json:"related,omitempty"` // a pattern's incidents
	Nearby   []incidentView `json:"nearby,omitempty"`  // the same device's other incidents that day
	States   []string       `json:"-"`
}

func (s *Server) incident(c *call) (reply, error) {
	id, err := c.id("id")
	if err != nil {
		return reply{}, err
	}
	var d incidentDetail
	views, err := s.readIncidents(c, "incidents-show", func(st *store.Store) ([]store.Incident, error) {
		in, err := st.Incident(id)
		if err != nil {
			return nil, err
		}
		out := []store.Incident{in}
		for _, r := range in.Related {
			if ri, err := st.Incident(r); err == nil {
				out = append(out, ri)
			}
		}
		day := in.First.Add(-12 * time.Hour)
		near, err := st.Incidents(store.IncidentFilter{Client: in.Client, Since: day, Until: in.Last.Add(12 * time.Hour), Limit: 50})
		if err != nil {
			return nil, err
		}
		for _, n := range near {
			if n.ID != in.ID && !slices.Contains(in.Related, n.ID) {
				out = append(out, n)
			}
		}
		return out, nil
	})
	if err != nil {
		return reply{}, err
	}
	d.Incident = views[0]
	related := views[0].Related
	for _, v := range views[1:] {
		if slices.Contains(related, v.ID) {
			d.Related = append(d.Related, v)
		} else {
			d.Nearby = append(d.Nearby, v)
		}
	}
	slices.SortFunc(d.Nearby, func(a, b incidentView) int { return a.First.Compare(b.First) })
	d.States = []string{store.StateReviewed, store.StateEscalated, store.StateDismissed}
	if c.api {
		return reply{data: d}, nil
	}
	return reply{page: "incident.html", title: fmt.Sprintf("Incident %d", id), data: d}, nil
}

func (s *Server) reviewIncident(c *call) (reply, error) {
	id, err := c.id("id")
	if err != nil {
		return reply{}, err
	}
	state, note := c.value("state"), c.value("note")
	if note == "" {
		return reply{}, badRequest("a note is required: say what was seen and what was done")
	}
	err = s.d.Write(func(st *store.Store) error { return st.ReviewIncident(c.actor(), id, state, note) })
	if err != nil {
		return reply{}, err
	}
	return reply{redirect: fmt.Sprintf("/incidents/%d", id), message: fmt.Sprintf("Incident %d marked %s.", id, state)}, nil
}

// exportIncidents sends the filtered incidents as CSV or JSON for the
// school's safeguarding record system; an audited view like any other.
func (s *Server) exportIncidents(c *call) (reply, error) {
	f, err := s.incidentFilter(c)
	if err != nil {
		return reply{}, err
	}
	f.Limit = 0
	format := c.value("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "json" {
		return reply{}, badRequest("format %q: want csv or json", format)
	}
	views, err := s.readIncidents(c, "incidents-export", func(st *store.Store) ([]store.Incident, error) { return st.Incidents(f) })
	if err != nil {
		return reply{}, err
	}
	name := "hedgerow-incidents-" + s.d.Now().Format("2006-01-02") + "." + format
	return reply{download: func(w http.ResponseWriter) {
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		if format == "json" {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(views)
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		incs := make([]store.Incident, len(views))
		for i, v := range views {
			incs[i] = v.Incident
		}
		_ = store.WriteIncidentsCSV(w, incs)
	}}, nil
}
