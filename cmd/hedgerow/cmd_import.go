package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"hedgerow/categories/listfile"
	"hedgerow/store"
)

func (a *app) importCommand() *cobra.Command {
	var (
		feed, format, category, reason string
		locked, asJSON                 bool
	)
	cmd := &cobra.Command{
		Use:   "import SOURCE --feed NAME --reason TEXT [--category SLUG]",
		Short: "Import a category list as a named feed, replacing that feed's previous entries",
		Long: `Import reads a list from a file, a directory or an http(s) URL (.gz and .tar.gz too):
a UT1 blacklist directory or archive (<category>/domains and <category>/urls, mapped
onto hedgerow's categories), a hosts file, a plain domain list, or AdBlock domain rules
("||example.com^", "@@" for exceptions). Non-UT1 formats need --category.

Each import is a named feed. Importing the same feed again replaces its entries in one
transaction: entries that disappeared are removed, the rest kept. So a nightly update is
one command. Malformed lines are counted and reported, never imported.

--locked marks a feed (the IWF and Home Office lists) whose entries nobody can remove or
override, administrators included; only the next import of that feed replaces them.`,
		Example: `  hedgerow import ../shared/lists/ut1 --feed ut1 --reason "UT1 blacklists, nightly"
  hedgerow import ../shared/lists/sinfonietta/pornography-hosts.gz --feed sinfonietta-porn --category adult --reason "adult sites"
  hedgerow import https://provider.example/iwf.txt --feed iwf --category child-abuse --locked --reason "IWF URL list via our provider"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if feed == "" {
				return fmt.Errorf("import %s: --feed NAME is required (re-importing the same feed replaces it)", args[0])
			}
			if err := store.ValidFeedName(feed); err != nil {
				return err
			}
			if err := requireReason(reason, "import "+args[0]); err != nil {
				return err
			}
			if category != "" {
				if _, err := a.tax.MaskOf(category); err != nil {
					return fmt.Errorf("import %s: --category: %w", args[0], err)
				}
			}
			return a.withStore(func(s *store.Store) error {
				return a.runImport(cmd, s, args[0], feed, listfile.Format(format), category, locked, reason, asJSON)
			})
		},
	}
	cmd.Flags().StringVar(&feed, "feed", "", "name of the feed (required)")
	cmd.Flags().StringVar(&format, "format", "auto", "list format: auto, ut1, hosts, domains or adblock")
	cmd.Flags().StringVar(&category, "category", "", "category slug for every entry (required except for UT1)")
	cmd.Flags().BoolVar(&locked, "locked", false, "lock the feed: its entries can never be removed or overridden")
	cmd.Flags().StringVar(&reason, "reason", "", "why this list is used (required, audited)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return cmd
}

// importSummary is what an import prints.
type importSummary struct {
	Feed   string `json:"feed"`
	Source string `json:"source"`
	store.ImportSummary
}

func (a *app) runImport(cmd *cobra.Command, s *store.Store, source, feedName string, format listfile.Format,
	category string, locked bool, reason string, asJSON bool) error {
	start := time.Now()
	f := store.NewFeed(store.FeedInfo{Name: feedName, Source: storedSource(source), Format: string(format), Category: category,
		Locked: locked, Reason: reason})
	progress := a.progress(source)
	rep, err := listfile.Read(cmd.Context(), source, listfile.Options{Format: format, Category: category, Progress: progress.update},
		f.Collect(a.tax))
	progress.done()
	if err != nil {
		return fmt.Errorf("import %s: %w (nothing was changed)", source, err)
	}
	f.Info.Malformed = rep.Malformed
	ch, err := s.ReplaceFeed(actor(), f)
	if err != nil {
		return fmt.Errorf("import %s: %w (nothing was changed)", source, err)
	}
	sum := importSummary{Feed: feedName, Source: source, ImportSummary: store.ImportSummary{Files: rep.Files, Lines: rep.Lines,
		Domains: f.Info.Domains, URLs: f.Info.URLs, Exceptions: f.Info.Exceptions, Malformed: rep.Malformed,
		Problems: rep.Problems, Ignored: rep.Ignored, Change: ch, Seconds: time.Since(start).Seconds()}}
	if asJSON {
		return a.printJSON(sum)
	}
	w := a.stdout
	fmt.Fprintf(w, "feed %s: %d domains, %d URL prefixes, %d exceptions from %d lines in %d files (%.1fs)\n",
		feedName, sum.Domains, sum.URLs, sum.Exceptions, sum.Lines, sum.Files, sum.Seconds)
	fmt.Fprintf(w, "change: %d added, %d removed, %d kept\n", ch.Added, ch.Removed, ch.Kept)
	if rep.Malformed > 0 {
		fmt.Fprintf(w, "%d malformed lines skipped; the first %d:\n", rep.Malformed, len(rep.Problems))
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "  %s line %d: %s: %q\n", p.File, p.Line, p.Reason, p.Text)
		}
	}
	for _, ig := range rep.Ignored {
		fmt.Fprintf(w, "skipped %s\n", ig)
	}
	return nil
}

// importProgress shows a progress bar on a terminal and plain lines
// otherwise, so logs of nightly imports stay readable.
type importProgress struct {
	bar      *progressbar.ProgressBar
	a        *app
	source   string
	lastLine time.Time
	total    int64
}

func (a *app) progress(source string) *importProgress {
	p := &importProgress{a: a, source: source, lastLine: time.Now()}
	if f, ok := a.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(a.stderr),
			progressbar.OptionSetDescription("importing "+source),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *importProgress) update(done, total int64) {
	if p.bar != nil {
		if total > 0 && total != p.total {
			p.total = total
			p.bar.ChangeMax64(total)
		}
		_ = p.bar.Set64(done)
		return
	}
	if time.Since(p.lastLine) < 5*time.Second {
		return
	}
	p.lastLine = time.Now()
	if total > 0 {
		fmt.Fprintf(p.a.stderr, "importing %s: %d of %d bytes (%.0f%%)\n", p.source, done, total, 100*float64(done)/float64(total))
	} else {
		fmt.Fprintf(p.a.stderr, "importing %s: %d bytes\n", p.source, done)
	}
}

func (p *importProgress) done() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// storedSource is the source as the feed records it for its updates: a
// local path made absolute, since serve runs in another directory.
func storedSource(source string) string {
	if l := strings.ToLower(source); strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") {
		return source
	}
	if abs, err := filepath.Abs(source); err == nil {
		return abs
	}
	return source
}
