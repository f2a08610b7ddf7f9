package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"hedgerow/store"
)

// backupPrefix starts the names of backups written into a directory.
const backupPrefix = "hedgerow-"

// backupName is the file a backup into a directory gets: a UTC timestamp,
// so names sort in the order the backups were taken.
func (a *app) backupName() string {
	return backupPrefix + a.now().UTC().Format("20060102-150405") + ".db"
}

// backupCommands are the database care commands: backup, restore, check-db
// and compact.
func (a *app) backupCommands() []*cobra.Command {
	var keep int
	backup := &cobra.Command{
		Use:   "backup FILE|DIR [--keep N]",
		Short: "Take a consistent backup of the database while hedgerow serves",
		Long: `backup writes a consistent copy of the database (a bbolt read transaction, so
hedgerow serve and other commands keep working) and verifies it before it is put in
place. The file is mode 0600: it holds personal data about pupils.

Given a directory, the backup is named hedgerow-YYYYMMDD-HHMMSS.db (UTC) and only the
newest --keep backups of that name are kept. Run it from cron or a systemd timer for
scheduled backups.`,
		Example: "  hedgerow backup /var/backups/hedgerow/ --keep 14\n  hedgerow backup /tmp/before-upgrade.db",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keep < 1 {
				return fmt.Errorf("--keep %d: want at least 1", keep)
			}
			target, inDir := args[0], false
			if st, err := os.Stat(target); err == nil && st.IsDir() {
				inDir = true
			} else if strings.HasSuffix(target, string(os.PathSeparator)) {
				if err := os.MkdirAll(target, 0o700); err != nil {
					return err
				}
				inDir = true
			}
			dir := target
			if inDir {
				target = filepath.Join(dir, a.backupName())
				if _, err := os.Stat(target); err == nil {
					return fmt.Errorf("backup %s already exists (one backup a second at most)", target)
				}
			}
			n, info, removed, err := a.backupTo(target, dir, inDir, keep)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "backup %s: %s\n", target, sizeString(n))
			fmt.Fprintf(a.stdout, "holds %s\n", info)
			for _, p := range removed {
				fmt.Fprintf(a.stdout, "removed old backup %s\n", p)
			}
			return nil
		},
	}
	backup.Flags().IntVar(&keep, "keep", 14, "when backing up into a directory, keep this many newest backups")

	var yes bool
	restore := &cobra.Command{
		Use:   "restore FILE [--yes]",
		Short: "Replace the database with a verified backup",
		Long: `restore verifies FILE (a hedgerow database, no newer than this hedgerow, passing
bbolt's consistency check) and refuses a damaged or foreign file, leaving the database
untouched. It then replaces the database, keeping the current one as
hedgerow.db.before-restore.

Everything changed since the backup is lost, including the audit trail and incidents
recorded since: the restored audit trail is the backup's. Stop hedgerow serve first
(it picks up the restored database at its next reload if it is left running), then
start it again. Without --yes, restore asks for confirmation on a terminal and
refuses otherwise.`,
		Example: "  systemctl stop hedgerow && hedgerow restore /var/backups/hedgerow/hedgerow-20260304-020000.db --yes",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := store.VerifyFile(args[0], a.tax)
			if err != nil {
				return fmt.Errorf("%w; nothing was changed", err)
			}
			fmt.Fprintf(a.stdout, "backup %s holds %s\n", args[0], info)
			if !yes {
				if !a.confirm(fmt.Sprintf("replace %s with it? everything changed since the backup is lost [yes/no] ", a.dbPath())) {
					return errors.New("restore not confirmed: stop hedgerow serve first and pass --yes; nothing was changed")
				}
			}
			info, err = store.Restore(a.dbPath(), args[0], a.tax)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "restored %s from %s (%s)\n", a.dbPath(), args[0], info)
			if _, err := os.Stat(a.dbPath() + store.BeforeRestoreSuffix); err == nil {
				fmt.Fprintf(a.stdout, "the replaced database is kept as %s\n", a.dbPath()+store.BeforeRestoreSuffix)
			}
			return nil
		},
	}
	restore.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")

	checkDB := &cobra.Command{
		Use:   "check-db",
		Short: "Check the database's consistency (bbolt's page check)",
		Long: `check-db opens the database read-only (it runs beside hedgerow serve) and runs
bbolt's consistency check. It prints "ok" and what the database holds, or the problems
found and exits 1.`,
		Example: "  hedgerow check-db",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(a.dbPath()); err != nil {
				return fmt.Errorf("check-db: %w", err)
			}
			var info store.BackupInfo
			err := a.readStore(func(s *store.Store) error {
				if err := s.Check(); err != nil {
					return &exitError{code: 1, err: err}
				}
				var err error
				info, err = s.Info()
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "ok: %s: %s\n", a.dbPath(), info)
			return nil
		},
	}

	compact := &cobra.Command{
		Use:   "compact",
		Short: "Rewrite the database without its free space",
		Long: `compact rewrites the database file so that deleted records are gone from it and the
file shrinks: bbolt keeps deleted bytes in free pages. It briefly needs free disk space
for a second copy of the data, and holds the database's lock while it copies (hedgerow
serve's reloads and batches wait).`,
		Example: "  hedgerow compact",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var before, after int64
			err := a.withStore(func(s *store.Store) error {
				before = fileSize(s.Path())
				if err := s.Compact(); err != nil {
					return err
				}
				after = fileSize(s.Path())
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "compacted %s: %s -> %s\n", a.dbPath(), sizeString(before), sizeString(after))
			return nil
		},
	}
	return []*cobra.Command{backup, restore, checkDB, compact}
}

// confirm asks a question on a terminal and reports whether the answer was
// yes. Without a terminal on stdin it is false.
func (a *app) confirm(question string) bool {
	f, ok := a.stdin.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	fmt.Fprint(a.stdout, question)
	line, _ := bufio.NewReader(f).ReadString('\n')
	return strings.EqualFold(strings.TrimSpace(line), "yes")
}

// backupTo takes a verified hot backup into target and, for a backup into
// a directory, keeps the newest keep of them: the CLI's backup and serve's
// scheduled backups.
func (a *app) backupTo(target, dir string, inDir bool, keep int) (n int64, info store.BackupInfo, removed []string, err error) {
	err = a.readStore(func(s *store.Store) error {
		var err error
		n, err = s.BackupFile(target)
		return err
	})
	if err != nil {
		return 0, info, nil, err
	}
	if info, err = store.VerifyFile(target, a.tax); err != nil {
		return n, info, nil, err
	}
	if inDir {
		removed, err = store.RotateBackups(dir, backupPrefix, keep)
	}
	return n, info, removed, err
}

// backupLoop takes a backup into cfg.Dir every cfg.Every while serve runs,
// keeping the newest cfg.Keep; a failure is logged and counted and the next
// run tries again.
func (a *app) backupLoop(ctx context.Context, cfg BackupConfig, failures prometheus.Counter) {
	if cfg.Dir == "" || cfg.Every <= 0 {
		return
	}
	tick := time.NewTicker(cfg.Every.D())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			a.log.Error("scheduled backup failed", "dir", cfg.Dir, "err", err)
			failures.Inc()
			continue
		}
		target := filepath.Join(cfg.Dir, a.backupName())
		n, _, removed, err := a.backupTo(target, cfg.Dir, true, cfg.Keep)
		if err != nil {
			a.log.Error("scheduled backup failed", "file", target, "err", err)
			failures.Inc()
			continue
		}
		a.log.Info("scheduled backup taken", "file", target, "bytes", n, "removed_old", len(removed))
	}
}
