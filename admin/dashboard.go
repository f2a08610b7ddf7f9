package admin

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"hedgerow/store"
)

// dashboardDays is how far back the dashboard's charts look.
const dashboardDays = 14

// palette colours chart series; the last is "other". Chosen to stay
// distinguishable for the common kinds of colour blindness.
var palette = []string{"#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#999999"}

// chart is a stacked bar chart drawn as SVG by the template: one bar per
// day, one coloured segment per series.
type chart struct {
	Title         string
	Width, Height int
	Bars          []bar
	Legend        []legendItem
	Max           int
	Desc          string // a sentence for screen readers
}

type bar struct {
	X, Label string
	Segments []segment
	Total    int
}

type segment struct {
	Y, H   int
	Colour string
	Title  string
}

type legendItem struct {
	Name, Colour string
	Total        int
}

type dashboard struct {
	Health      FilterHealth
	Waiting     int
	Critical    int
	Patterns    int
	Attempts    int
	ByCategory  chart
	ByGroup     chart
	Top         []legendItem
	TopMax      int
	Unblock     int
	Concerns    int
	Since       time.Time
	WaitingLink string
}

func (s *Server) dashboard(c *call) (reply, error) {
	now := s.d.Now()
	since := now.AddDate(0, 0, -dashboardDays+1)
	since = time.Date(since.Year(), since.Month(), since.Day(), 0, 0, 0, 0, now.Location())
	var incs []store.Incident
	var reports []store.Report
	err := s.d.Read(func(st *store.Store) error {
		var err error
		if incs, err = st.Incidents(store.IncidentFilter{Since: since}); err != nil {
			return err
		}
		reports, err = st.Reports("", 500)
		return err
	})
	if err != nil {
		return reply{}, err
	}
	d := dashboard{Since: since}
	if s.d.Health != nil {
		d.Health = s.d.Health(c.r.Context())
	}
	for _, in := range incs {
		if in.Rule == store.RulePattern {
			d.Patterns++
			continue
		}
		if in.Blocked {
			d.Attempts += in.Count
		}
		if in.Review && in.State == store.StateNew {
			d.Waiting++
			if in.Severity == "critical" {
				d.Critical++
			}
		}
	}
	for _, r := range reports {
		if r.State == store.ReportNew {
			if r.Kind == store.ReportUnblock {
				d.Unblock++
			} else {
				d.Concerns++
			}
		}
	}
	days := make([]time.Time, dashboardDays)
	for i := range days {
		days[i] = since.AddDate(0, 0, i)
	}
	d.ByCategory = stacked("Blocked attempts per day, by category", days, incs, func(in store.Incident) string { return in.Category })
	d.ByGroup = stacked("Blocked attempts per day, by group", days, incs, func(in store.Incident) string { return in.Group })
	d.Top = d.ByCategory.Legend
	for _, t := range d.Top {
		d.TopMax = max(d.TopMax, t.Total)
	}
	return reply{page: "dashboard.html", title: "Dashboard", data: d}, nil
}

// stacked counts blocked attempts per day and per series (the top six,
// the rest as "other") and lays the bars out.
func stacked(title string, days []time.Time, incs []store.Incident, key func(store.Incident) string) chart {
	totals := map[string]int{}
	perDay := make([]map[string]int, len(days))
	for i := range perDay {
		perDay[i] = map[string]int{}
	}
	for _, in := range incs {
		if !in.Blocked || in.Rule == store.RulePattern {
			continue
		}
		// Attempts are counted on the day of the incident's last one: a
		// folded incident spans minutes, not days.
		i := int(in.Last.In(days[0].Location()).Sub(days[0]).Hours() / 24)
		if i < 0 || i >= len(days) {
			continue
		}
		k := cmp.Or(key(in), "unknown")
		perDay[i][k] += in.Count
		totals[k] += in.Count
	}
	names := make([]string, 0, len(totals))
	for k := range totals {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(totals[b]-totals[a], cmp.Compare(a, b)) })
	const shown = 6
	series := names
	if len(names) > shown {
		series = names[:shown]
	}
	colour := map[string]string{}
	ch := chart{Title: title, Width: 640, Height: 220}
	for i, n := range series {
		colour[n] = palette[i]
		ch.Legend = append(ch.Legend, legendItem{n, palette[i], totals[n]})
	}
	if len(names) > shown {
		other := 0
		for _, n := range names[shown:] {
			other += totals[n]
		}
		ch.Legend = append(ch.Legend, legendItem{"other", palette[len(palette)-1], other})
	}
	for i := range days {
		t := 0
		for _, n := range perDay[i] {
			t += n
		}
		ch.Max = max(ch.Max, t)
	}
	plot := ch.Height - 30
	barW := (ch.Width - 40) / len(days)
	for i, day := range days {
		b := bar{X: fmt.Sprint(40 + i*barW), Label: day.Format("2 Jan")}
		y := plot
		add := func(name, col string, n int) {
			if n == 0 || ch.Max == 0 {
				return
			}
			h := max(1, n*plot/ch.Max)
			y -= h
			b.Segments = append(b.Segments, segment{Y: y, H: h, Colour: col, Title: fmt.Sprintf("%s, %s: %d", day.Format("2 Jan"), name, n)})
			b.Total += n
		}
		other := 0
		for name, n := range perDay[i] {
			if _, shown := colour[name]; !shown {
				other += n
			}
		}
		for _, name := range series {
			add(name, colour[name], perDay[i][name])
		}
		add("other", palette[len(palette)-1], other)
		ch.Bars = append(ch.Bars, b)
	}
	total := 0
	for _, l := range ch.Legend {
		total += l.Total
	}
	ch.Desc = fmt.Sprintf("%d blocked attempts over %d days; the most on one day: %d.", total, len(days), ch.Max)
	return ch
}
