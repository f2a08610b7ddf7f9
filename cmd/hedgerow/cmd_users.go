package main

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"hedgerow/store"
)

// generatedPasswordLen is the length of --generate passwords: 20 characters
// from a 56-character alphabet is over 110 bits, far beyond guessing.
const generatedPasswordLen = 20

// passwordAlphabet leaves out characters that are easily misread when a
// password is read aloud or copied by hand (0/o/O, 1/l/I).
const passwordAlphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

func (a *app) usersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Manage accounts: staff for the admin UI, pupils and staff for proxy logins",
		Long: `Accounts for the admin UI and for logging in to the proxy. Roles: admin (IT staff),
dsl (the designated safeguarding lead, who sees who did what) and viewer (dashboards and
pseudonymised incidents). An account with no role can only log in to the proxy; its
--group, if set, is the policy group it browses under, whatever device it uses.

Passwords are 10 characters or more and at most 72 bytes. They are read from standard
input (one line) when it is not a terminal, asked for twice otherwise, or made up with
--generate and shown once. Every change needs --reason and is audited; passwords and
their hashes never are.`,
		Example: `  hedgerow users add jsmith --role admin --reason "new IT technician"
  hedgerow users add 7b.pupil --group ks3-ks4 --generate --reason "Year 7 login"
  hedgerow users list`,
	}

	var roles []string
	var group, reason string
	var generate bool
	add := &cobra.Command{
		Use:   "add NAME [--role admin|dsl|viewer]... [--group GROUP] [--generate] --reason TEXT",
		Short: "Create an account",
		Example: `  hedgerow users add jsmith --role admin --reason "new IT technician"
  echo 'a long passphrase' | hedgerow users add mjones --role dsl --reason "new DSL"
  hedgerow users add 7b.pupil --group ks3-ks4 --generate --reason "Year 7 login"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			action := "users add " + name
			if err := a.checkUserArgs(action, name, reason); err != nil {
				return err
			}
			password, err := a.newPassword(name, generate)
			if err != nil {
				return fmt.Errorf("%s: %w", action, err)
			}
			err = a.withStore(func(s *store.Store) error {
				return s.AddUser(actor(), reason, store.User{Name: name, Roles: roles, Group: group}, password)
			})
			if err != nil {
				return err
			}
			a.done(action, name, password, generate)
			return nil
		},
	}
	add.Flags().StringSliceVar(&roles, "role", nil, "admin, dsl or viewer (repeat, or separate with commas; none for a proxy-only account)")
	add.Flags().StringVar(&group, "group", "", "policy group for proxy logins (default: the device's group)")
	add.Flags().BoolVar(&generate, "generate", false, "make up a random 20-character password and print it once")
	add.Flags().StringVar(&reason, "reason", "", "why (required, audited)")

	passwd := &cobra.Command{
		Use:   "passwd NAME [--generate] --reason TEXT",
		Short: "Set a new password",
		Example: `  hedgerow users passwd jsmith --reason "forgotten"
  hedgerow users passwd 7b.pupil --generate --reason "shared with a friend"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			action := "users passwd " + name
			if err := a.checkUserArgs(action, name, reason); err != nil {
				return err
			}
			password, err := a.newPassword(name, generate)
			if err != nil {
				return fmt.Errorf("%s: %w", action, err)
			}
			if err := a.withStore(func(s *store.Store) error { return s.SetPassword(actor(), reason, name, password) }); err != nil {
				return err
			}
			a.done(action, name, password, generate)
			return nil
		},
	}
	passwd.Flags().BoolVar(&generate, "generate", false, "make up a random 20-character password and print it once")
	passwd.Flags().StringVar(&reason, "reason", "", "why (required, audited)")

	remove := &cobra.Command{
		Use:     "remove NAME --reason TEXT",
		Short:   "Delete an account",
		Example: `  hedgerow users remove jsmith --reason "left the school"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			action := "users remove " + name
			if err := a.checkUserArgs(action, name, reason); err != nil {
				return err
			}
			if err := a.withStore(func(s *store.Store) error { return s.RemoveUser(actor(), reason, name) }); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "done: %s\n", action)
			return nil
		},
	}
	remove.Flags().StringVar(&reason, "reason", "", "why (required, audited)")

	enableCmd := func(enable bool) *cobra.Command {
		verb, short := "disable", "Stop an account logging in, keeping it for the record"
		if enable {
			verb, short = "enable", "Let a disabled account log in again"
		}
		c := &cobra.Command{
			Use:     verb + " NAME --reason TEXT",
			Short:   short,
			Example: fmt.Sprintf(`  hedgerow users %s 7b.pupil --reason "reported by form tutor"`, verb),
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				name := args[0]
				action := "users " + verb + " " + name
				if err := a.checkUserArgs(action, name, reason); err != nil {
					return err
				}
				err := a.withStore(func(s *store.Store) error {
					return s.UpdateUser(actor(), reason, name, func(u *store.User) error {
						// A change that changes nothing would still leave an
						// audit record claiming it did.
						if u.Disabled == !enable {
							return fmt.Errorf("the account is already %sd", verb)
						}
						u.Disabled = !enable
						return nil
					})
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "done: %s\n", action)
				return nil
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why (required, audited)")
		return c
	}

	var asJSON bool
	list := &cobra.Command{
		Use:     "list [--json]",
		Short:   "List the accounts (never their passwords)",
		Example: "  hedgerow users list\n  hedgerow users list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.readStore(func(s *store.Store) error {
				us, err := s.Users()
				if err != nil {
					return err
				}
				return a.printUsers(us, asJSON)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	cmd.AddCommand(add, passwd, remove, enableCmd(false), enableCmd(true), list)
	return cmd
}

// checkUserArgs refuses a change before any password is asked for, so
// nobody types a password twice only to be told the reason is missing.
func (a *app) checkUserArgs(action, name, reason string) error {
	if err := requireReason(reason, action); err != nil {
		return err
	}
	if err := store.ValidUserName(name); err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	return nil
}

// done reports a password change, showing a generated password the one
// time it can be seen.
func (a *app) done(action, name, password string, generated bool) {
	fmt.Fprintf(a.stdout, "done: %s\n", action)
	if generated {
		fmt.Fprintf(a.stdout, "password for %s (shown only now): %s\n", strings.ToLower(name), password)
	}
}

func (a *app) printUsers(us []store.User, asJSON bool) error {
	if asJSON {
		out := make([]store.Account, 0, len(us))
		for _, u := range us {
			out = append(out, u.Account())
		}
		return a.printJSON(out)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLES\tGROUP\tCREATED\tDISABLED")
	for _, u := range us {
		roles, group, disabled := strings.Join(u.Roles, ","), u.Group, ""
		if roles == "" {
			roles = "-"
		}
		if group == "" {
			group = "-"
		}
		if u.Disabled {
			disabled = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, roles, group, u.Created.Local().Format("2006-01-02 15:04"), disabled)
	}
	return tw.Flush()
}

// newPassword makes up a password, or reads one: a line from standard input
// when that is a pipe or file (for scripts), else twice from the terminal
// without echo.
func (a *app) newPassword(name string, generate bool) (string, error) {
	if generate {
		return generatePassword(), nil
	}
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return a.promptPassword(int(f.Fd()), name)
	}
	// A password is far shorter than this; the limit only stops a
	// mistaken redirect of a large file from being read whole.
	line, err := bufio.NewReader(io.LimitReader(a.stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password on standard input (give one line, or use --generate); nothing was changed")
	}
	return line, nil
}

func (a *app) promptPassword(fd int, name string) (string, error) {
	read := func(prompt string) (string, error) {
		fmt.Fprint(a.stderr, prompt)
		p, err := term.ReadPassword(fd)
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		return string(p), nil
	}
	p1, err := read(fmt.Sprintf("New password for %s: ", strings.ToLower(name)))
	if err != nil {
		return "", err
	}
	if err := store.ValidPassword(p1); err != nil {
		return "", err
	}
	p2, err := read("Same password again: ")
	if err != nil {
		return "", err
	}
	if p1 != p2 {
		return "", errors.New("the two passwords differ; nothing was changed")
	}
	return p1, nil
}

// generatePassword draws each character uniformly from passwordAlphabet,
// throwing away random bytes past the largest multiple of its length so
// that no character is likelier than another.
func generatePassword() string {
	const n = len(passwordAlphabet)
	limit := byte(256 - 256%n)
	out := make([]byte, 0, generatedPasswordLen)
	buf := make([]byte, 2*generatedPasswordLen)
	for len(out) < generatedPasswordLen {
		rand.Read(buf) // never fails: crypto/rand crashes the program rather than return weak bytes
		for _, b := range buf {
			if b < limit && len(out) < generatedPasswordLen {
				out = append(out, passwordAlphabet[int(b)%n])
			}
		}
	}
	return string(out)
}

func (a *app) reportsCommand() *cobra.Command {
	var kind string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "reports [--kind unblock|concern] [--limit N] [--json]",
		Short: "List reports filed from the block page, newest first",
		Long: `Reports filed from the block page: "unblock" when someone thinks a page should not be
blocked (for IT to look at) and "concern" when someone reports a safeguarding concern
(for the DSL). The text is what was typed on a pupil device, shown with control
characters replaced.`,
		Example: `  hedgerow reports
  hedgerow reports --kind concern --limit 0 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.readStore(func(s *store.Store) error {
				rs, err := s.Reports(kind, limit)
				if err != nil {
					return err
				}
				if asJSON {
					if rs == nil {
						rs = []store.Report{}
					}
					return a.printJSON(rs)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTIME\tKIND\tSTATE\tCLIENT\tUSER\tGROUP\tCATEGORY\tURL\tMESSAGE")
				for _, r := range rs {
					url := r.URL
					if url == "" {
						url = r.Host
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Time.Local().Format("2006-01-02 15:04:05"),
						r.Kind, printable(r.State), printable(r.Client), printable(r.User), printable(r.Group),
						printable(r.Category), printable(url), printable(r.Message))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "unblock or concern (default: both)")
	cmd.Flags().IntVar(&limit, "limit", 50, "how many reports (0 for all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printable makes text typed on a pupil device safe for a terminal and a
// table: no escape sequences, no tabs or newlines to break the columns, no
// invisible direction overrides; "-" for nothing.
func printable(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
}
