// Command hedgerow is a web filter for schools: a DNS resolver and HTTP(S)
// proxy that check every request against category lists for the pupil's age
// group. This command wires the packages together and offers the CLI that IT
// staff use to import lists, edit policies and check verdicts.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"syscall"
	"time"
	_ "time/tzdata" // schedules must work on machines without a zoneinfo database

	"github.com/spf13/cobra"

	"hedgerow/categories"
	"hedgerow/categories/starter"
	"hedgerow/store"
)

// app is what every command shares: the flags of the root command and the
// outputs, passed explicitly rather than kept in package variables.
type app struct {
	dataDir string
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	log     *slog.Logger
	tax     *categories.Taxonomy
	now     func() time.Time
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		log:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
		tax:    categories.Builtin(),
		now:    time.Now,
	}
	os.Exit(a.run(ctx, os.Args[1:]))
}

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func (a *app) run(ctx context.Context, args []string) int {
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(a.stderr, "hedgerow:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 2
}

// defaultDataDir is where the database lives unless --data says otherwise.
func defaultDataDir() string {
	if d := os.Getenv("HEDGEROW_DATA"); d != "" {
		return d
	}
	return "hedgerow-data"
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "hedgerow",
		Short: "A web filter for schools: DNS and proxy filtering by age group",
		Long: `hedgerow filters a school network's DNS and web traffic by content category,
per age group, and records blocked attempts for the Designated Safeguarding Lead.

The database lives in --data DIR (default $HEDGEROW_DATA, else ./hedgerow-data);
it is created with a starter policy and starter lists on first use.`,
		Example: `  hedgerow serve
  hedgerow import ../shared/lists/ut1 --feed ut1 --reason "UT1 blacklists"
  hedgerow check --group ks2 www.example.com`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.dataDir, "data", defaultDataDir(), "data directory holding hedgerow.db")
	root.AddCommand(
		a.serveCommand(),
		a.importCommand(),
		a.categoriesCommand(),
		a.listsCommand(),
		a.groupsCommand(),
		a.clientsCommand(),
		a.checkCommand(),
		a.auditCommand(),
		a.usersCommand(),
		a.reportsCommand(),
		a.incidentsCommand(),
		a.statusCommand(),
		a.caCommand(),
		&cobra.Command{Use: "version", Short: "Print hedgerow's version and the schema of database it writes", Args: cobra.NoArgs,
			Example: "  hedgerow version",
			RunE: func(*cobra.Command, []string) error {
				fmt.Fprintf(a.stdout, "hedgerow %s (database schema %d)\n", version(), store.SchemaVersion)
				return nil
			}},
		a.selftestCommand(),
	)
	root.AddCommand(a.backupCommands()...)
	return root
}

// dbPath is the database file inside the data directory.
func (a *app) dbPath() string { return filepath.Join(a.dataDir, "hedgerow.db") }

// openStore opens (creating on first use) the database, seeding a new one
// with the default policy and the embedded starter lists.
func (a *app) openStore() (*store.Store, error) {
	feed, err := starterFeed(a.tax)
	if err != nil {
		return nil, err
	}
	return store.Open(a.dbPath(), a.tax, store.Options{
		Defaults: store.Defaults{Policy: categories.DefaultPolicy(a.tax), Starter: feed},
		Now:      a.now,
	})
}

// starterFeed reads the embedded starter lists into a feed.
func starterFeed(tax *categories.Taxonomy) (*store.Feed, error) {
	f := store.NewFeed(store.FeedInfo{Name: starter.FeedName, Source: "embedded starter lists", Format: "starter",
		Reason: "starter lists shipped with hedgerow so a fresh install blocks the obvious at once"})
	err := starter.Entries(func(target, slug string) error {
		m, err := tax.MaskOf(slug)
		if err != nil {
			return err
		}
		f.Add(target, m)
		return nil
	})
	return f, err
}

// withStore runs fn with an open store and closes it afterwards.
func (a *app) withStore(fn func(s *store.Store) error) error {
	s, err := a.openStore()
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s)
}

// writeExisting runs fn with the existing database open for writing, without
// preparing the starter lists that only a new database needs: the incident
// writer opens the database for every batch.
func (a *app) writeExisting(fn func(s *store.Store) error) error {
	s, err := store.Open(a.dbPath(), a.tax, store.Options{Now: a.now})
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s)
}

// readStore runs fn on the database opened for reading only: a shared lock,
// so listings and checks run beside serve's reloads and each other. A missing
// database is created first, as every command does, and one an older
// hedgerow wrote is migrated first.
func (a *app) readStore(fn func(s *store.Store) error) error {
	if _, err := os.Stat(a.dbPath()); errors.Is(err, os.ErrNotExist) {
		if err := a.withStore(func(*store.Store) error { return nil }); err != nil {
			return err
		}
	}
	s, err := store.Open(a.dbPath(), a.tax, store.Options{ReadOnly: true, Now: a.now})
	if errors.Is(err, store.ErrNeedsMigration) {
		if err := a.withStore(func(*store.Store) error { return nil }); err != nil {
			return err
		}
		s, err = store.Open(a.dbPath(), a.tax, store.Options{ReadOnly: true, Now: a.now})
	}
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s)
}

// actor names the person behind a CLI change for the audit trail.
func actor() string {
	name := os.Getenv("SUDO_USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	if name == "" {
		name = "unknown"
	}
	return "cli:" + name
}

// printJSON writes v as indented JSON.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// requireReason returns the --reason flag or a clear error.
func requireReason(reason, what string) error {
	if reason == "" {
		return fmt.Errorf("%s: --reason is required (the audit trail records why every list and policy change was made)", what)
	}
	return nil
}
