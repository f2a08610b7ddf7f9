package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"hedgerow/categories"
	"hedgerow/categories/starter"
	"hedgerow/store"
	"hedgerow/store/feedupdate"
)

func (a *app) categoriesCommand() *cobra.Command {
	var asJSON, ut1 bool
	cmd := &cobra.Command{
		Use:     "categories",
		Short:   "List the category taxonomy: slug, name, severity",
		Example: "  hedgerow categories\n  hedgerow categories --ut1   # how UT1's categories map onto these\n  hedgerow categories --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ut1 {
				if asJSON {
					return a.printJSON(categories.UT1)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "UT1\tHEDGEROW\tNOTE")
				for _, m := range categories.UT1 {
					slug := m.Slug
					if slug == "" {
						slug = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", m.UT1, slug, m.Note)
				}
				return tw.Flush()
			}
			type row struct {
				Slug        string `json:"slug"`
				Name        string `json:"name"`
				Severity    string `json:"severity"`
				Kind        string `json:"kind"`
				Description string `json:"description"`
			}
			var rows []row
			for _, c := range a.tax.All() {
				rows = append(rows, row{c.Slug, c.Name, c.Severity.String(), c.Kind.String(), c.Description})
			}
			if asJSON {
				return a.printJSON(struct {
					Categories  []row  `json:"categories"`
					Attribution string `json:"attribution"`
				}{rows, starter.Attribution})
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SLUG\tSEVERITY\tKIND\tNAME")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Slug, r.Severity, r.Kind, r.Name)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout)
			fmt.Fprintln(a.stdout, starter.Attribution)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&ut1, "ut1", false, "show the UT1 category mapping table instead")
	return cmd
}

func (a *app) listsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lists",
		Short: "Add, remove and find list entries; list, update and remove feeds",
		Example: `  hedgerow lists find www.example.com
  hedgerow lists add badsite.example --category adult --reason "reported by a teacher"
  hedgerow lists feeds
  hedgerow lists update`,
	}
	var reason, cats string
	var asJSON bool
	add := &cobra.Command{
		Use:     "add TARGET --category SLUG[,SLUG] --reason TEXT",
		Short:   "Add a domain (and its subdomains) or a URL prefix to categories, by hand",
		Example: `  hedgerow lists add badsite.example --category adult --reason "reported by Y6 teacher"` + "\n" + `  hedgerow lists add example.org/forum --category forums --reason "unmoderated forum"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireReason(reason, "lists add"); err != nil {
				return err
			}
			t, err := categories.ParseOverride(args[0])
			if err != nil {
				return err
			}
			slugs := splitList(cats)
			if len(slugs) == 0 {
				return fmt.Errorf("lists add %s: --category is required", args[0])
			}
			return a.withStore(func(s *store.Store) error {
				if err := s.AddEntry(actor(), t.Host+t.Path, slugs, reason); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "added %s to %s\n", t.Host+t.Path, strings.Join(slugs, ", "))
				return nil
			})
		},
	}
	add.Flags().StringVar(&cats, "category", "", "category slugs, comma-separated")
	add.Flags().StringVar(&reason, "reason", "", "why (required, audited)")

	remove := &cobra.Command{
		Use:     "remove TARGET --reason TEXT [--category SLUG]",
		Short:   "Remove a hand-added entry (or some of its categories)",
		Example: `  hedgerow lists remove badsite.example --reason "site cleaned up"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireReason(reason, "lists remove"); err != nil {
				return err
			}
			t, err := categories.ParseOverride(args[0])
			if err != nil {
				return err
			}
			return a.withStore(func(s *store.Store) error {
				if err := s.RemoveEntry(actor(), t.Host+t.Path, splitList(cats), reason); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "removed %s\n", t.Host+t.Path)
				return nil
			})
		},
	}
	remove.Flags().StringVar(&cats, "category", "", "remove only these categories (comma-separated)")
	remove.Flags().StringVar(&reason, "reason", "", "why (required, audited)")

	find := &cobra.Command{
		Use:     "find TARGET",
		Short:   "Show every list entry that matches a host or URL, and which feed it comes from",
		Example: "  hedgerow lists find www.example.com\n  hedgerow lists find http://example.com/some/page --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := categories.Normalize(args[0])
			if err != nil {
				return err
			}
			return a.readStore(func(s *store.Store) error {
				found, err := s.Find(t.Host, t.Path)
				if err != nil {
					return err
				}
				if asJSON {
					if found == nil {
						found = []store.Found{}
					}
					return a.printJSON(found)
				}
				if len(found) == 0 {
					fmt.Fprintf(a.stdout, "%s is on no list\n", t.String())
					return nil
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ENTRY\tCATEGORIES\tFEED\tNOTE")
				for _, f := range found {
					note := ""
					if f.Locked {
						note = "locked"
					}
					if f.Exception {
						note = "exception (not in these categories)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Entry, strings.Join(f.Categories, ","), f.Feed, note)
				}
				return tw.Flush()
			})
		},
	}
	find.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	feeds := &cobra.Command{
		Use:     "feeds",
		Short:   "List the imported feeds",
		Example: "  hedgerow lists feeds --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.readStore(func(s *store.Store) error {
				infos, err := s.Feeds()
				if err != nil {
					return err
				}
				if asJSON {
					if infos == nil {
						infos = []store.FeedInfo{}
					}
					return a.printJSON(infos)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "FEED\tDOMAINS\tURLS\tLOCKED\tIMPORTED\tBY\tCHECKED\tRESULT\tSOURCE")
				for _, f := range infos {
					checked, result := "-", "-"
					if !f.CheckedAt.IsZero() {
						checked, result = f.CheckedAt.Format("2006-01-02 15:04"), f.LastResult
					}
					fmt.Fprintf(tw, "%s\t%d\t%d\t%v\t%s\t%s\t%s\t%s\t%s\n", f.Name, f.Domains, f.URLs, f.Locked,
						f.ImportedAt.Format("2006-01-02 15:04"), f.ImportedBy, checked, result, f.Source)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				for _, f := range infos {
					if f.LastError != "" {
						fmt.Fprintf(a.stdout, "%s: %s %d time(s) since the last success: %s\n", f.Name, f.LastResult, f.Failures, f.LastError)
					}
				}
				return nil
			})
		},
	}
	feeds.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	removeFeed := &cobra.Command{
		Use:     "remove-feed NAME --reason TEXT",
		Short:   "Remove an imported feed and all its entries (not for locked feeds)",
		Example: `  hedgerow lists remove-feed old-list --reason "replaced by provider feed"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireReason(reason, "lists remove-feed"); err != nil {
				return err
			}
			return a.withStore(func(s *store.Store) error {
				if err := s.RemoveFeed(actor(), args[0], reason); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "removed feed %s\n", args[0])
				return nil
			})
		},
	}
	removeFeed.Flags().StringVar(&reason, "reason", "", "why (required, audited)")

	var force bool
	var maxRemoval float64
	var timeout time.Duration
	update := &cobra.Command{
		Use:   "update [FEED...] [--force] [--json]",
		Short: "Update imported feeds from their sources now (serve does it on a schedule)",
		Long: `update reads each feed's source again, as serve does every night (feeds: in the
config): a URL with a conditional request, so nothing is downloaded when the provider says
the list has not changed; a file or directory when its modification time changed. A changed
list replaces the feed's entries in one transaction. A download or parse that fails keeps
the old entries, and so does a list that would remove more than --max-removal of the feed
(a broken download far more often than a cleaned-up list): check it, then --force.
Without FEED names every feed is updated except the embedded starter lists. The exit
status is 1 if any feed failed or was refused.`,
		Example: `  hedgerow lists update
  hedgerow lists update ut1 sinfonietta-porn
  hedgerow lists update iwf --force --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runListsUpdate(cmd.Context(), args, force, asJSON, maxRemoval, timeout)
		},
	}
	update.Flags().BoolVar(&force, "force", false, "read every source even if unchanged, and accept any removal")
	update.Flags().Float64Var(&maxRemoval, "max-removal", store.DefaultMaxRemoval, "largest fraction of a feed one update may remove without --force")
	update.Flags().DurationVar(&timeout, "timeout", feedupdate.DefaultTimeout, "longest one feed's update may take")
	update.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")

	cmd.AddCommand(add, remove, find, feeds, removeFeed, update)
	return cmd
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
