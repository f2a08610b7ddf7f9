package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"hedgerow/store"
)

// incidentsCommand is the safeguarding lead's view of blocked attempts on
// the command line. Every look at incidents names pupils' devices, so each
// listing, view and export is audited.
func (a *app) incidentsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "incidents",
		Short:   "Blocked attempts for the safeguarding lead: list, show, review, export",
		Example: "  hedgerow incidents list --review --since 7d\n  hedgerow incidents review 42 --state reviewed --note \"spoke to the pupil\"",
		Long: `incidents shows the blocked attempts the DNS filter and the proxy recorded. Repeats of
one device at one site within ten minutes are one incident with a count. Critical and
high severity attempts that the pupil asked for (not adverts or a page's own requests)
are marked for review. Every listing, view and export is recorded in the audit trail.`,
	}
	var f store.IncidentFilter
	var since, until, format string
	var asJSON bool
	filterFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&since, "since", "", "only incidents whose last attempt is at or after this (2006-01-02, RFC 3339, or a duration like 24h)")
		c.Flags().StringVar(&until, "until", "", "only incidents whose last attempt is before this")
		c.Flags().StringVar(&f.Group, "group", "", "only this group")
		c.Flags().StringVar(&f.Category, "category", "", "only this category (slug)")
		c.Flags().StringVar(&f.Severity, "severity", "", "only this severity: critical, high or low")
		c.Flags().StringVar(&f.State, "state", "", "only this state: new, reviewed, escalated or dismissed")
		c.Flags().StringVar(&f.Client, "client", "", "only this device address")
		c.Flags().StringVar(&f.User, "user", "", "only this user")
		c.Flags().BoolVar(&f.ReviewOnly, "review", false, "only incidents marked for review")
	}
	parseFilter := func() error {
		var err error
		if f.Since, err = parseWhen(since, a.now()); err != nil {
			return fmt.Errorf("--since: %w", err)
		}
		if f.Until, err = parseWhen(until, a.now()); err != nil {
			return fmt.Errorf("--until: %w", err)
		}
		return f.Validate()
	}

	list := &cobra.Command{
		Use:     "list [filters]",
		Short:   "List incidents, newest first",
		Example: "  hedgerow incidents list --review --since 7d\n  hedgerow incidents list --client 10.20.3.4 --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := parseFilter(); err != nil {
				return err
			}
			incs, err := a.viewIncidents("incidents-list", func(s *store.Store) ([]store.Incident, error) { return s.Incidents(f) })
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(incs)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tLAST\tCOUNT\tCHANNEL\tDEVICE\tUSER\tGROUP\tHOST\tCATEGORY\tSEVERITY\tREVIEW\tSTATE")
			for _, in := range incs {
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\n", in.ID, in.Last.Local().Format("2006-01-02 15:04"),
					in.Count, in.Channel, in.Client, dash(in.User), in.Group, in.Host, dash(in.Category), dash(in.Severity), in.Review, in.State)
			}
			return tw.Flush()
		},
	}
	filterFlags(list)
	f.Limit = 0
	list.Flags().IntVar(&f.Limit, "limit", 100, "at most this many (0 for all)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	show := &cobra.Command{
		Use:     "show ID",
		Short:   "Show one incident with its review notes",
		Example: "  hedgerow incidents show 42",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("incident %q: want a number", args[0])
			}
			incs, err := a.viewIncidents("incidents-show", func(s *store.Store) ([]store.Incident, error) {
				in, err := s.Incident(id)
				return []store.Incident{in}, err
			})
			if err != nil {
				return err
			}
			return a.printJSON(incs[0])
		},
	}

	var state, note string
	review := &cobra.Command{
		Use:     "review ID --state reviewed|escalated|dismissed --note TEXT",
		Short:   "Record a review: the new state and what was seen and done",
		Example: `  hedgerow incidents review 42 --state escalated --note "spoke to the pupil and their form tutor"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("incident %q: want a number", args[0])
			}
			if err := a.withStore(func(s *store.Store) error { return s.ReviewIncident(actor(), id, state, note) }); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "incident %d: %s\n", id, state)
			return nil
		},
	}
	review.Flags().StringVar(&state, "state", "", "reviewed, escalated or dismissed")
	review.Flags().StringVar(&note, "note", "", "what was seen and done (required, audited)")

	export := &cobra.Command{
		Use:     "export --format csv|json [filters]",
		Short:   "Export incidents for the school's safeguarding record system",
		Example: "  hedgerow incidents export --format csv --since 2026-09-01 > incidents.csv",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "csv" && format != "json" {
				return fmt.Errorf("--format %q: want csv or json", format)
			}
			if err := parseFilter(); err != nil {
				return err
			}
			incs, err := a.viewIncidents("incidents-export", func(s *store.Store) ([]store.Incident, error) { return s.Incidents(f) })
			if err != nil {
				return err
			}
			if format == "json" {
				return a.printJSON(incs)
			}
			return store.WriteIncidentsCSV(a.stdout, incs)
		},
	}
	filterFlags(export)
	export.Flags().StringVar(&format, "format", "csv", "csv or json")

	var weeks int
	var digestJSON bool
	digest := &cobra.Command{
		Use:     "digest [--weeks N] [--json]",
		Short:   "The week's summary for the safeguarding lead: by severity and category, reviews waiting, patterns, trend",
		Example: "  hedgerow incidents digest\n  hedgerow incidents digest --weeks 8 --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var d store.Digest
			if err := a.readStore(func(s *store.Store) error {
				var err error
				d, err = s.Digest(a.now(), weeks)
				return err
			}); err != nil {
				return err
			}
			if digestJSON {
				return a.printJSON(d)
			}
			a.writeDigest(a.stdout, d)
			return nil
		},
	}
	digest.Flags().IntVar(&weeks, "weeks", 4, "earlier weeks to compare with")
	digest.Flags().BoolVar(&digestJSON, "json", false, "print JSON")

	cmd.AddCommand(list, show, review, export, digest)
	cmd.AddCommand(a.retentionCommands()...) // purge, subject
	return cmd
}

// writeDigest writes the digest for a person: counts only, no pupil.
func (a *app) writeDigest(w io.Writer, d store.Digest) {
	fmt.Fprintf(w, "Week %s to %s\n\n", d.Start.Local().Format("Mon 2 Jan"), d.End.Local().Format("Mon 2 Jan 2006"))
	fmt.Fprintf(w, "Incidents: %d (%d blocked attempts), patterns: %d\n", d.Incidents, d.Attempts, d.Patterns)
	fmt.Fprintf(w, "Waiting for review: %d; escalated and open: %d\n\n", d.OpenReviews, d.Escalated)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEVERITY\tINCIDENTS")
	for _, sev := range []string{"critical", "high", "low", "none"} {
		if n := d.BySeverity[sev]; n > 0 {
			fmt.Fprintf(tw, "%s\t%d\n", sev, n)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	cats := make([]string, 0, len(d.ByCategory))
	for c := range d.ByCategory {
		cats = append(cats, c)
	}
	slices.SortFunc(cats, func(x, y string) int { return cmp.Or(d.ByCategory[y]-d.ByCategory[x], strings.Compare(x, y)) })
	fmt.Fprintln(tw, "CATEGORY\tINCIDENTS")
	for _, c := range cats {
		name := c
		if cat, ok := a.tax.Lookup(c); ok {
			name = cat.Name
		}
		fmt.Fprintf(tw, "%s\t%d\n", name, d.ByCategory[c])
	}
	_ = tw.Flush()
	if len(d.PreviousWeek) > 0 {
		var prev []string
		for _, n := range d.PreviousWeek {
			prev = append(prev, strconv.Itoa(n))
		}
		fmt.Fprintf(w, "\nIncidents in the weeks before (most recent first): %s\n", strings.Join(prev, ", "))
	}
}

// viewIncidents reads incidents and audits the look, in one transaction
// window: who looked, at how many records, through which command.
func (a *app) viewIncidents(action string, read func(*store.Store) ([]store.Incident, error)) ([]store.Incident, error) {
	var incs []store.Incident
	err := a.withStore(func(s *store.Store) error {
		var err error
		if incs, err = read(s); err != nil {
			return err
		}
		ids := make([]string, 0, min(len(incs), 50))
		for _, in := range incs[:min(len(incs), 50)] {
			ids = append(ids, strconv.FormatUint(in.ID, 10))
		}
		target := fmt.Sprintf("%d incidents", len(incs))
		if len(ids) > 0 {
			target += " (" + strings.Join(ids, ",") + ")"
		}
		return s.RecordView(actor(), action, target)
	})
	return incs, err
}

// parseWhen reads a time: a date, RFC 3339, or a duration back from now
// ("7d" is seven days); "" is no bound.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if strings.HasSuffix(s, "d") {
		if n, err := strconv.Atoi(strings.TrimSuffix(s, "d")); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: want a date (2006-01-02), a time (RFC 3339) or how long ago (24h, 7d)", s)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
