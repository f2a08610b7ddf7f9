package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"hedgerow/store"
)

// retentionCommands are the data-protection subcommands of "hedgerow
// incidents": purge (retention) and subject (subject access and erasure).
// Both end with a compaction, because bbolt keeps deleted bytes in the
// file's free pages until the file is rewritten.
func (a *app) retentionCommands() []*cobra.Command {
	var low, keep string
	purge := &cobra.Command{
		Use:   "purge [--low 30d] [--keep 365d]",
		Short: "Delete incidents and reports past their retention, then compact the database",
		Long: `purge deletes what the school no longer needs to keep (UK GDPR: personal data is kept
no longer than necessary), then rewrites the database file so the deleted data is gone
from it:

  - low-severity attempts and monitored searches whose last attempt is older than --low
    (default 30 days);
  - all other incidents, and block-page reports, older than --keep (default 365 days);
  - escalated incidents are kept whatever their age, until their state is changed.

Deletions are counted in the audit trail. The compaction briefly needs free disk space
for a second copy of the database. hedgerow serve may keep running: its incident writer
waits for the database and retries.`,
		Example: "  hedgerow incidents purge\n  hedgerow incidents purge --low 14d --keep 730d",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r := store.DefaultRetention()
			var err error
			if r.Low, err = parseRetentionAge(low, r.Low); err != nil {
				return fmt.Errorf("--low: %w", err)
			}
			if r.Incidents, err = parseRetentionAge(keep, r.Incidents); err != nil {
				return fmt.Errorf("--keep: %w", err)
			}
			var res store.PurgeResult
			var before, after int64
			err = a.withStore(func(s *store.Store) error {
				var err error
				if res, err = s.Purge(actor(), r, a.now(), 0); err != nil {
					return err
				}
				before = fileSize(s.Path())
				if err := s.Compact(); err != nil {
					return fmt.Errorf("deleted %d incidents and %d reports, but the deleted data may still be in the file until it is compacted (run purge again): %w",
						res.Incidents, res.Reports, err)
				}
				after = fileSize(s.Path())
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "deleted %d incidents and %d reports (low severity and monitored searches older than %s, the rest older than %s; escalated kept)\n",
				res.Incidents, res.Reports, ageString(r.Low), ageString(r.Incidents))
			fmt.Fprintf(a.stdout, "compacted %s: %s -> %s\n", a.dbPath(), sizeString(before), sizeString(after))
			return nil
		},
	}
	purge.Flags().StringVar(&low, "low", "30d", "keep low-severity attempts and monitored searches this long (30d, 720h)")
	purge.Flags().StringVar(&keep, "keep", "365d", "keep other incidents and block-page reports this long")

	var sub store.Subject
	var erase bool
	var reason, out string
	subject := &cobra.Command{
		Use:   "subject --client IP | --user NAME [--out FILE] [--erase --reason TEXT]",
		Short: "Export everything held about one pupil, and erase it on request",
		Long: `subject answers a subject access request: it exports, as JSON, every incident and
block-page report that names the device address or the user (to stdout, or to --out FILE,
written 0600). With --erase it then deletes them and compacts the database so the
deleted data is gone from the file. Escalated incidents are erased too: export first
and decide whether a safeguarding record must be kept.

A device address is a device, not a person: a shared laptop's records belong to several
pupils, so check the export before handing it over or erasing. The export and the
erasure (with --reason) are recorded in the audit trail.`,
		Example: `  hedgerow incidents subject --user jsmith --out jsmith-sar.json
  hedgerow incidents subject --client 10.20.3.4 --erase --reason "erasure request 2026-14" --out 10.20.3.4.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sub.Validate(); err != nil {
				return fmt.Errorf("incidents subject: give exactly one of --client or --user (%w)", err)
			}
			if erase && strings.TrimSpace(reason) == "" {
				return errors.New("incidents subject --erase: --reason is required (the request the erasure answers; it is audited)")
			}
			if !erase && reason != "" {
				return errors.New("incidents subject: --reason goes with --erase")
			}
			// A summary must not mix with JSON on stdout.
			msgs := a.stdout
			if out == "" || out == "-" {
				msgs = a.stderr
			}
			return a.withStore(func(s *store.Store) error {
				data, err := s.SubjectExport(actor(), sub)
				if err != nil {
					return err
				}
				if err := a.writeSubject(out, data); err != nil {
					return err
				}
				fmt.Fprintf(msgs, "exported %d incidents and %d reports about %s\n", len(data.Incidents), len(data.Reports), sub)
				if !erase {
					return nil
				}
				res, err := s.SubjectErase(actor(), reason, sub)
				if err != nil {
					return err
				}
				if err := s.Compact(); err != nil {
					return fmt.Errorf("erased %d incidents and %d reports about %s, but the deleted data may still be in the file until it is compacted (run hedgerow incidents purge): %w",
						res.Incidents, res.Reports, sub, err)
				}
				fmt.Fprintf(msgs, "erased %d incidents and %d reports about %s, and compacted the database\n", res.Incidents, res.Reports, sub)
				return nil
			})
		},
	}
	subject.Flags().StringVar(&sub.Client, "client", "", "the device address")
	subject.Flags().StringVar(&sub.User, "user", "", "the user name (any case)")
	subject.Flags().StringVar(&out, "out", "", "write the JSON to this file (0600) instead of stdout")
	subject.Flags().BoolVar(&erase, "erase", false, "after exporting, delete everything held about the subject and compact")
	subject.Flags().StringVar(&reason, "reason", "", "why the data is erased (required with --erase, audited)")

	return []*cobra.Command{purge, subject}
}

// writeSubject writes a subject's data as JSON to stdout ("" or "-") or to
// a file created 0600 whole or not at all: it is personal data.
func (a *app) writeSubject(path string, data store.SubjectData) error {
	if path == "" || path == "-" {
		return a.printJSON(data)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*") // created 0600
	if err != nil {
		return fmt.Errorf("--out %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	err = enc.Encode(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("--out %s: %w (nothing was erased)", path, err)
	}
	return nil
}

// parseRetentionAge reads a retention period: days ("30d") or a Go
// duration ("720h"); "" is def.
func parseRetentionAge(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if d, err := strconv.Atoi(n); err == nil && d > 0 {
			return time.Duration(d) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, fmt.Errorf("%q: want a period such as 30d (days) or 720h", s)
}

// ageString shows a period in days when it is whole days.
func ageString(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// sizeString shows a byte count in KiB, MiB or GiB.
func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", (n+1023)/1024)
	}
}
