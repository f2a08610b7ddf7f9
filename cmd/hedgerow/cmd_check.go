package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"hedgerow/categories"
	"hedgerow/store"
)

func (a *app) clientsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clients",
		Short: "Map client addresses and ranges to groups",
		Long: `Client mapping: IPv4/IPv6 addresses and CIDR ranges to groups; the longest prefix
wins. An address in no range belongs to no group, and hedgerow refuses it: it is never an
open resolver or proxy. A fresh install maps loopback and the private ranges to ks2;
replace them with the school's own subnets.`,
		Example: `  hedgerow clients list
  hedgerow clients add 10.20.0.0/16 ks3-ks4 --reason "secondary Wi-Fi"`,
	}
	var reason string
	var asJSON bool
	add := &cobra.Command{
		Use: "add ADDRESS|CIDR GROUP --reason TEXT", Short: "Map an address or range to a group (replacing its mapping)", Args: cobra.ExactArgs(2),
		Example: `  hedgerow clients add 10.20.0.0/16 ks3-ks4 --reason "secondary block Wi-Fi"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			pfx, err := categories.ParseClient(args[0])
			if err != nil {
				return err
			}
			group := args[1]
			return a.policyChange("clients add "+pfx.String()+" "+group, reason, func(p *categories.Policy) (string, error) {
				p.Clients = slices.DeleteFunc(p.Clients, func(c categories.ClientRule) bool { return c.Prefix == pfx })
				p.Clients = append(p.Clients, categories.ClientRule{Prefix: pfx, Group: group})
				return "clients", nil
			})
		},
	}
	add.Flags().StringVar(&reason, "reason", "", "why (required, audited)")
	remove := &cobra.Command{
		Use: "remove ADDRESS|CIDR --reason TEXT", Short: "Remove a mapping", Args: cobra.ExactArgs(1),
		Example: `  hedgerow clients remove 192.168.0.0/16 --reason "not our network"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			pfx, err := categories.ParseClient(args[0])
			if err != nil {
				return err
			}
			return a.policyChange("clients remove "+pfx.String(), reason, func(p *categories.Policy) (string, error) {
				n := len(p.Clients)
				p.Clients = slices.DeleteFunc(p.Clients, func(c categories.ClientRule) bool { return c.Prefix == pfx })
				if len(p.Clients) == n {
					return "", fmt.Errorf("no mapping for %s", pfx)
				}
				return "clients", nil
			})
		},
	}
	remove.Flags().StringVar(&reason, "reason", "", "why (required, audited)")
	list := &cobra.Command{
		Use: "list", Short: "List the mappings", Args: cobra.NoArgs,
		Example: "  hedgerow clients list --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.readStore(func(s *store.Store) error {
				p, err := s.Policy()
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(p.Clients)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "RANGE\tGROUP")
				for _, c := range p.Clients {
					fmt.Fprintf(tw, "%s\t%s\n", c.Prefix, c.Group)
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(add, remove, list)
	return cmd
}

// checkResult is one line of `hedgerow check` output.
type checkResult struct {
	Input      string   `json:"input"`
	Target     string   `json:"target,omitempty"`
	Action     string   `json:"action"` // allow, block, or error for bad input
	Category   string   `json:"category"`
	Severity   string   `json:"severity"`
	Group      string   `json:"group"`
	Rule       string   `json:"rule"`
	Match      string   `json:"match,omitempty"`
	Categories []string `json:"categories"`
	Reason     string   `json:"reason"`
	Error      string   `json:"error,omitempty"`
}

func (a *app) checkCommand() *cobra.Command {
	var group, client string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check (--group G | --client IP) [--json] TARGET|-",
		Short: "Print the verdict for a host or URL, as a group or client would get it",
		Long: `check prints the verdict for a URL or host: allow or block, the deciding category and
its severity, the group and the rule that matched, in words. With TARGET "-" it reads one
target per line from standard input and prints one verdict per line, in order (JSON lines
with --json). Bad input lines get action "error" and the exit status is 1.`,
		Example: `  hedgerow check --group ks2 www.example.com
  hedgerow check --client 10.1.2.3 https://example.org/page --json
  printf 'bbc.co.uk\npornhub.com\n' | hedgerow check --group ks2 --json -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (group == "") == (client == "") {
				return fmt.Errorf("check: give exactly one of --group GROUP or --client IP")
			}
			var snap *categories.Snapshot
			if err := a.readStore(func(s *store.Store) error {
				var err error
				snap, err = s.LoadSnapshot()
				return err
			}); err != nil {
				return err
			}
			if client != "" {
				addr, err := netip.ParseAddr(client)
				if err != nil {
					return fmt.Errorf("check --client %q: want an IP address: %v", client, err)
				}
				g, ok := snap.GroupFor(addr)
				if !ok {
					return fmt.Errorf("check --client %s: the address is in no mapped range, so hedgerow refuses it (see hedgerow clients list)", client)
				}
				group = g
			} else if !snap.HasGroup(group) {
				return fmt.Errorf("check --group %q: no such group (see hedgerow groups list)", group)
			}
			if args[0] != "-" {
				r := a.checkOne(snap, group, args[0])
				if r.Error != "" {
					return fmt.Errorf("check %q: %s", args[0], r.Error)
				}
				return a.printCheck(r, asJSON)
			}
			sc := bufio.NewScanner(cmd.InOrStdin())
			sc.Buffer(make([]byte, 64*1024), 1024*1024)
			bad := 0
			out := bufio.NewWriter(a.stdout)
			defer out.Flush()
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" {
					continue
				}
				r := a.checkOne(snap, group, line)
				if r.Error != "" {
					bad++
				}
				if err := a.writeCheck(out, r, asJSON); err != nil {
					return err
				}
			}
			if err := sc.Err(); err != nil {
				return fmt.Errorf("check: reading standard input: %w", err)
			}
			if bad > 0 {
				out.Flush()
				return &exitError{code: 1, err: fmt.Errorf("check: %d input lines were not valid hosts or URLs", bad)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "decide as this group")
	cmd.Flags().StringVar(&client, "client", "", "decide as the group this client address maps to")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (one object per line)")
	return cmd
}

func (a *app) checkOne(snap *categories.Snapshot, group, input string) checkResult {
	t, v, err := snap.Check(group, input, a.now())
	if err != nil {
		return checkResult{Input: input, Action: "error", Group: group, Error: err.Error(), Categories: []string{}}
	}
	r := checkResult{Input: input, Target: t.Host + t.Path, Action: v.Action.String(), Group: group,
		Rule: v.Rule.String(), Match: v.Match + v.MatchPath, Severity: v.Severity().String(),
		Categories: snap.Taxonomy().Slugs(v.Cats), Reason: v.Reason()}
	if r.Categories == nil {
		r.Categories = []string{}
	}
	if v.Category != nil {
		r.Category = v.Category.Slug
	}
	return r
}

func (a *app) printCheck(r checkResult, asJSON bool) error {
	w := bufio.NewWriter(a.stdout)
	defer w.Flush()
	return a.writeCheck(w, r, asJSON)
}

func (a *app) writeCheck(w *bufio.Writer, r checkResult, asJSON bool) error {
	if asJSON {
		raw, err := json.Marshal(r)
		if err != nil {
			return err
		}
		w.Write(raw)
		return w.WriteByte('\n')
	}
	if r.Error != "" {
		_, err := fmt.Fprintf(w, "%s\terror\t%s\n", r.Input, r.Error)
		return err
	}
	cat := r.Category
	if cat == "" {
		cat = "-"
	}
	_, err := fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Input, r.Action, cat, r.Severity, r.Group, r.Reason)
	return err
}

func (a *app) auditCommand() *cobra.Command {
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use: "audit", Short: "Show the audit trail of list and policy changes, newest first", Args: cobra.NoArgs,
		Example: "  hedgerow audit --limit 20\n  hedgerow audit --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.readStore(func(s *store.Store) error {
				recs, err := s.Audit(limit)
				if err != nil {
					return err
				}
				if asJSON {
					if recs == nil {
						recs = []store.AuditRecord{}
					}
					return a.printJSON(recs)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TIME\tWHO\tACTION\tTARGET\tREASON")
				for _, r := range recs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Time.Local().Format("2006-01-02 15:04:05"), r.Actor, r.Action, r.Target, r.Reason)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "how many records (0 for all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
