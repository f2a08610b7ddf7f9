package admin

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"hedgerow/store"
)

// digestPage is the weekly summary for the DSL: incidents by severity and
// category, open reviews, patterns, and the weeks before for the trend,
// the same figures the weekly email carries. Counts only, no identities.
func (s *Server) digestPage(c *call) (reply, error) {
	var d store.Digest
	if err := s.d.Read(func(st *store.Store) error {
		var err error
		d, err = st.Digest(s.d.Now(), 4)
		return err
	}); err != nil {
		return reply{}, err
	}
	if c.api {
		return reply{data: d}, nil
	}
	type count struct {
		Name string
		N    int
	}
	sorted := func(m map[string]int) []count {
		var out []count
		for k, v := range m {
			out = append(out, count{k, v})
		}
		slices.SortFunc(out, func(a, b count) int { return cmp.Or(b.N-a.N, cmp.Compare(a.Name, b.Name)) })
		return out
	}
	return reply{page: "digest.html", title: "This week's digest", data: struct {
		store.Digest
		Severities, Categories []count
	}{d, sorted(d.BySeverity), sorted(d.ByCategory)}}, nil
}

// selftestReport is one report `hedgerow selftest` wrote.
type selftestReport struct {
	Name string    `json:"name"`
	Time time.Time `json:"time"`
}

var reSelftestName = regexp.MustCompile(`^selftest-[0-9]{8}-[0-9]{6}\.(html|json)$`)

// selftests lists the self-test reports, the evidence of the yearly check
// of the filtering that schools must keep.
func (s *Server) selftests(c *call) (reply, error) {
	var out []selftestReport
	if s.cfg.SelftestDir != "" {
		entries, err := os.ReadDir(s.cfg.SelftestDir)
		if err != nil && !os.IsNotExist(err) {
			return reply{}, err
		}
		for _, e := range entries {
			if reSelftestName.MatchString(e.Name()) && strings.HasSuffix(e.Name(), ".html") {
				t, _ := time.ParseInLocation("20060102-150405", strings.TrimSuffix(strings.TrimPrefix(e.Name(), "selftest-"), ".html"), time.Local)
				out = append(out, selftestReport{e.Name(), t})
			}
		}
	}
	slices.SortFunc(out, func(a, b selftestReport) int { return b.Time.Compare(a.Time) })
	if c.api {
		return reply{data: out}, nil
	}
	return reply{page: "selftests.html", title: "Filtering self-tests", data: struct {
		Reports []selftestReport
		CanRun  bool
	}{out, s.d.RunSelftest != nil && hasRole(c.user, roleAdmin)}}, nil
}

// selftestFile serves one report as it was written. Only names the self-test
// writes are served, so the route cannot reach any other file.
func (s *Server) selftestFile(c *call) (reply, error) {
	name := c.r.PathValue("name")
	if !reSelftestName.MatchString(name) || s.cfg.SelftestDir == "" {
		return reply{}, notFound("no self-test report %q", name)
	}
	raw, err := os.ReadFile(filepath.Join(s.cfg.SelftestDir, name))
	if os.IsNotExist(err) {
		return reply{}, notFound("no self-test report %q", name)
	}
	if err != nil {
		return reply{}, err
	}
	return reply{download: func(w http.ResponseWriter) {
		if strings.HasSuffix(name, ".json") {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			// The report is a document of its own: no scripts at all.
			w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
		}
		_, _ = w.Write(raw)
	}}, nil
}

// runSelftest runs the self-test now, through the filter's own listeners,
// and goes to its report.
func (s *Server) runSelftest(c *call) (reply, error) {
	if s.d.RunSelftest == nil {
		return reply{}, notFound("self-tests cannot be run from this server")
	}
	if !s.selftestRunning.CompareAndSwap(false, true) {
		return reply{}, &httpError{http.StatusConflict, "a self-test is running; wait for it to finish"}
	}
	defer s.selftestRunning.Store(false)
	ctx, cancel := context.WithTimeout(c.r.Context(), 5*time.Minute)
	defer cancel()
	report, summary, err := s.d.RunSelftest(ctx, c.actor())
	if err != nil {
		return reply{}, fmt.Errorf("self-test: %w", err)
	}
	return reply{redirect: "/selftests", message: summary, data: map[string]string{"report": report}}, nil
}

func (s *Server) reviewRoutes() []route {
	const get, post = http.MethodGet, http.MethodPost
	return []route{
		{get, "/digest", roleAny, true, true, s.digestPage},
		{get, "/selftests", roleAny, true, true, s.selftests},
		{get, "/selftests/{name}", roleAny, true, true, s.selftestFile},
		{post, "/selftests/run", roleAdmin, true, true, s.runSelftest},
	}
}
