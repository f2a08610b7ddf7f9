package main

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"hedgerow/categories"
	"hedgerow/store"
)

func (a *app) groupsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "groups",
		Short: "Show and edit the age groups' policies",
		Long: `Each group is an age group's policy: the categories it blocks, its allow and deny
overrides, its mode (filter, or allowlist: approved sites only) and timetable windows.
"school" names the school-wide overrides in allow and deny.

Precedence, first match wins: critical categories (illegal content) block for every
group and cannot be overridden; then categories from locked feeds; then the group's
deny and allow overrides (the most specific match wins; deny wins a tie); then the
school-wide overrides; then the categories the group blocks at that time (or, in
allowlist mode, everything not approved).`,
		Example: `  hedgerow groups list
  hedgerow groups show ks2
  hedgerow groups unblock sixth-form social-networks --reason "agreed by governors"
  hedgerow groups allow ks2 www.example.org --reason "Year 5 science lesson"`,
	}
	var asJSON bool
	list := &cobra.Command{
		Use: "list", Short: "List the groups", Args: cobra.NoArgs,
		Example: "  hedgerow groups list --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.readStore(func(s *store.Store) error {
				p, err := s.Policy()
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(p.Groups)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "GROUP\tMODE\tBLOCKED\tALLOW\tDENY\tDESCRIPTION")
				for _, g := range p.Groups {
					fmt.Fprintf(tw, "%s\t%s\t%d categories\t%d\t%d\t%s\n", g.Name, g.Mode, len(g.Blocked), len(g.Allow), len(g.Deny), g.Description)
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	show := &cobra.Command{
		Use: "show GROUP", Short: "Show one group's policy (or \"school\" for school-wide overrides)", Args: cobra.ExactArgs(1),
		Example: "  hedgerow groups show ks2\n  hedgerow groups show school --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.readStore(func(s *store.Store) error {
				p, err := s.Policy()
				if err != nil {
					return err
				}
				g, err := p.GroupNamed(args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(g)
				}
				w := a.stdout
				fmt.Fprintf(w, "group:       %s\n", g.Name)
				if g.Name != categories.SchoolGroup {
					fmt.Fprintf(w, "description: %s\nmode:        %s\nblocked:     %s\n", g.Description, g.Mode, strings.Join(g.Blocked, ", "))
					if g.Mode == categories.ModeAllowlist {
						fmt.Fprintf(w, "approved:    %s\n", strings.Join(g.Approved, ", "))
					}
				}
				if g.Name != categories.SchoolGroup {
					yt := g.YouTube
					if yt == "" {
						yt = "off"
					}
					fmt.Fprintf(w, "safe search: %v (YouTube restricted mode: %s)\n", g.SafeSearch, yt)
					fmt.Fprintf(w, "proxy:       intercept HTTPS %v, login %v, monitor searches %v, incident context %v\n", g.Intercept, g.ProxyLogin, g.MonitorSearches, g.Context)
				}
				fmt.Fprintf(w, "allow:       %s\ndeny:        %s\n", strings.Join(g.Allow, ", "), strings.Join(g.Deny, ", "))
				for i, sc := range g.Schedules {
					fmt.Fprintf(w, "schedule %d:  %s %s-%s allow [%s] block [%s]\n", i+1, strings.Join(sc.Days, ","), sc.From, sc.To,
						strings.Join(sc.Allow, ","), strings.Join(sc.Block, ","))
				}
				fmt.Fprintf(w, "time zone:   %s\n", p.TimeZone)
				return nil
			})
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var reason, mode, like, description string
	add := &cobra.Command{
		Use: "add GROUP --reason TEXT [--like GROUP] [--mode filter|allowlist]", Short: "Create a group", Args: cobra.ExactArgs(1),
		Example: `  hedgerow groups add year6-trip --like ks2 --reason "residential trip laptops"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			return a.policyChange("groups add "+name, reason, func(p *categories.Policy) (string, error) {
				if _, err := p.GroupNamed(name); err == nil {
					return "", fmt.Errorf("group %q already exists", name)
				}
				g := categories.Group{Name: name, Mode: categories.ModeFilter, Description: description}
				if like != "" {
					src, err := p.GroupNamed(like)
					if err != nil || like == categories.SchoolGroup {
						return "", fmt.Errorf("--like %q: no such group", like)
					}
					g = *src
					g.Name = name
					g.Blocked, g.Approved = slices.Clone(src.Blocked), slices.Clone(src.Approved)
					g.Allow, g.Deny, g.Schedules = slices.Clone(src.Allow), slices.Clone(src.Deny), slices.Clone(src.Schedules)
					if description != "" {
						g.Description = description
					}
				} else {
					// Every group blocks critical and high categories unless told otherwise.
					for _, c := range a.tax.All() {
						if c.Kind == categories.KindBlock && c.Severity >= categories.SeverityHigh {
							g.Blocked = append(g.Blocked, c.Slug)
						}
					}
				}
				if mode != "" {
					g.Mode = categories.Mode(mode)
				}
				p.Groups = append(p.Groups, g)
				return name, nil
			})
		},
	}
	add.Flags().StringVar(&like, "like", "", "copy the policy of this group")
	add.Flags().StringVar(&mode, "mode", "", "filter or allowlist")
	add.Flags().StringVar(&description, "description", "", "what the group is for")
	add.Flags().StringVar(&reason, "reason", "", "why (required, audited)")

	remove := &cobra.Command{
		Use: "remove GROUP --reason TEXT", Short: "Delete a group (no client range may still use it)", Args: cobra.ExactArgs(1),
		Example: `  hedgerow groups remove year6-trip --reason "trip over"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			return a.policyChange("groups remove "+name, reason, func(p *categories.Policy) (string, error) {
				i := slices.IndexFunc(p.Groups, func(g categories.Group) bool { return g.Name == name })
				if i < 0 {
					return "", fmt.Errorf("no group %q", name)
				}
				for _, c := range p.Clients {
					if c.Group == name {
						return "", fmt.Errorf("client range %s still uses group %q; move it first (hedgerow clients add %s OTHER-GROUP)", c.Prefix, name, c.Prefix)
					}
				}
				p.Groups = slices.Delete(p.Groups, i, i+1)
				return name, nil
			})
		},
	}
	remove.Flags().StringVar(&reason, "reason", "", "why (required, audited)")

	blockCmd := func(block bool) *cobra.Command {
		verb := "unblock"
		if block {
			verb = "block"
		}
		c := &cobra.Command{
			Use:     verb + " GROUP CATEGORY... --reason TEXT",
			Short:   strings.ToUpper(verb[:1]) + verb[1:] + " categories for a group",
			Example: fmt.Sprintf(`  hedgerow groups %s ks3-ks4 games --reason "agreed by e-safety committee"`, verb),
			Args:    cobra.MinimumNArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				name, slugs := args[0], args[1:]
				return a.policyChange("groups "+verb+" "+strings.Join(args, " "), reason, func(p *categories.Policy) (string, error) {
					g, err := p.GroupNamed(name)
					if err != nil || name == categories.SchoolGroup {
						return "", fmt.Errorf("no group %q", name)
					}
					for _, slug := range slugs {
						c, ok := a.tax.Lookup(slug)
						if !ok {
							_, err := a.tax.MaskOf(slug)
							return "", err
						}
						if !block && c.Severity == categories.SeverityCritical {
							return "", fmt.Errorf("%s is illegal content and is blocked for every group; it cannot be unblocked", slug)
						}
						if block && c.Kind == categories.KindAllow {
							return "", fmt.Errorf("%s is an allow-kind category (it marks sites as approved) and never blocks", slug)
						}
						has := slices.Contains(g.Blocked, slug)
						switch {
						case block && !has:
							g.Blocked = append(g.Blocked, slug)
						case !block && has:
							g.Blocked = slices.DeleteFunc(g.Blocked, func(s string) bool { return s == slug })
						}
					}
					return name, nil
				})
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why (required, audited)")
		return c
	}

	var removeOverride bool
	overrideCmd := func(allow bool) *cobra.Command {
		verb := "deny"
		if allow {
			verb = "allow"
		}
		c := &cobra.Command{
			Use:   verb + " GROUP TARGET --reason TEXT [--remove]",
			Short: fmt.Sprintf("Add (or --remove) a %s override for a group, or for \"school\" (every group)", verb),
			Example: fmt.Sprintf(`  hedgerow groups %s ks2 example.org --reason "lesson on 12 May"
  hedgerow groups %s school example.org/page --reason "applies to every group"
  hedgerow groups %s ks2 example.org --remove --reason "lesson over"`, verb, verb, verb),
			Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				name := args[0]
				t, err := categories.ParseOverride(args[1])
				if err != nil {
					return err
				}
				target := t.Host + t.Path
				action := "groups " + verb + " " + name + " " + target
				if removeOverride {
					action += " --remove"
				}
				if err := requireReason(reason, action); err != nil {
					return err
				}
				return a.withStore(func(s *store.Store) error {
					if allow && !removeOverride {
						if err := guardAllow(s, t); err != nil {
							return err
						}
					}
					return a.policyChangeIn(s, action, reason, func(p *categories.Policy) (string, error) {
						g, err := p.GroupNamed(name)
						if err != nil {
							return "", err
						}
						mine, other := &g.Deny, &g.Allow
						if allow {
							mine, other = &g.Allow, &g.Deny
						}
						if removeOverride {
							if !slices.Contains(*mine, target) {
								return "", fmt.Errorf("group %s has no %s override for %s", name, verb, target)
							}
							*mine = slices.DeleteFunc(*mine, func(s string) bool { return s == target })
							return name, nil
						}
						// One target has one action: allowing replaces a deny and vice versa.
						*other = slices.DeleteFunc(*other, func(s string) bool { return s == target })
						if !slices.Contains(*mine, target) {
							*mine = append(*mine, target)
						}
						return name, nil
					})
				})
			},
		}
		c.Flags().BoolVar(&removeOverride, "remove", false, "remove the override instead of adding it")
		c.Flags().StringVar(&reason, "reason", "", "why (required, audited)")
		return c
	}

	modeCmd := &cobra.Command{
		Use: "mode GROUP filter|allowlist --reason TEXT", Short: "Set a group's mode", Args: cobra.ExactArgs(2),
		Example: `  hedgerow groups mode early-years-ks1 allowlist --reason "EYFS approved sites only"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, m := args[0], categories.Mode(args[1])
			return a.policyChange("groups mode "+name+" "+args[1], reason, func(p *categories.Policy) (string, error) {
				g, err := p.GroupNamed(name)
				if err != nil || name == categories.SchoolGroup {
					return "", fmt.Errorf("no group %q", name)
				}
				g.Mode = m
				return name, nil
			})
		},
	}
	modeCmd.Flags().StringVar(&reason, "reason", "", "why (required, audited)")

	var approve []string
	approveCmd := &cobra.Command{
		Use: "approve GROUP CATEGORY... --reason TEXT", Short: "Set the categories whose sites an allowlist-mode group may visit", Args: cobra.MinimumNArgs(2),
		Example: `  hedgerow groups approve early-years-ks1 kids education --reason "approved lists"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			approve = args[1:]
			return a.policyChange("groups approve "+strings.Join(args, " "), reason, func(p *categories.Policy) (string, error) {
				g, err := p.GroupNamed(name)
				if err != nil || name == categories.SchoolGroup {
					return "", fmt.Errorf("no group %q", name)
				}
				g.Approved = slices.Clone(approve)
				return name, nil
			})
		},
	}
	approveCmd.Flags().StringVar(&reason, "reason", "", "why (required, audited)")

	var youtube string
	safeCmd := &cobra.Command{
		Use:   "safesearch GROUP on|off [--youtube strict|moderate|off] --reason TEXT",
		Short: "Enforce Google, Bing and DuckDuckGo safe search for a group, and set its YouTube restricted mode",
		Example: `  hedgerow groups safesearch ks3-ks4 on --youtube moderate --reason "YouTube in lessons"
  hedgerow groups safesearch staff off --youtube off --reason "staff need unrestricted YouTube"`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			var on bool
			switch args[1] {
			case "on":
				on = true
			case "off":
			default:
				return fmt.Errorf("groups safesearch %s: %q: want on or off", name, args[1])
			}
			return a.policyChange("groups safesearch "+strings.Join(args, " ")+" --youtube "+youtube, reason, func(p *categories.Policy) (string, error) {
				g, err := p.GroupNamed(name)
				if err != nil || name == categories.SchoolGroup {
					return "", fmt.Errorf("no group %q", name)
				}
				g.SafeSearch = on
				if cmd.Flags().Changed("youtube") {
					g.YouTube = strings.TrimSuffix(youtube, "off")
				}
				return name, nil
			})
		},
	}
	safeCmd.Flags().StringVar(&youtube, "youtube", "", "YouTube restricted mode: strict, moderate or off (unchanged if not given)")
	safeCmd.Flags().StringVar(&reason, "reason", "", "why (required, audited)")

	var days, from, to, allowCats, blockCats string
	var clearSchedules bool
	scheduleCmd := &cobra.Command{
		Use:   "schedule GROUP --days DAYS --from HH:MM --to HH:MM [--allow CATS] [--block CATS] --reason TEXT",
		Short: "Add a timetable window that changes a group's blocked categories (or --clear them all)",
		Example: `  hedgerow groups schedule sixth-form --days mon-fri --from 12:30 --to 13:30 --allow social-networks --reason "lunchtime access"
  hedgerow groups schedule sixth-form --clear --reason "lunchtime trial ended"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			return a.policyChange("groups schedule "+name, reason, func(p *categories.Policy) (string, error) {
				g, err := p.GroupNamed(name)
				if err != nil || name == categories.SchoolGroup {
					return "", fmt.Errorf("no group %q", name)
				}
				if clearSchedules {
					g.Schedules = nil
					return name, nil
				}
				d, err := categories.ParseDays(days)
				if err != nil {
					return "", err
				}
				g.Schedules = append(g.Schedules, categories.Schedule{Days: d, From: from, To: to,
					Allow: splitList(allowCats), Block: splitList(blockCats)})
				return name, nil
			})
		},
	}
	scheduleCmd.Flags().StringVar(&days, "days", "mon-fri", "days, e.g. mon-fri or sat,sun")
	scheduleCmd.Flags().StringVar(&from, "from", "", "start, HH:MM (inclusive)")
	scheduleCmd.Flags().StringVar(&to, "to", "", "end, HH:MM (exclusive)")
	scheduleCmd.Flags().StringVar(&allowCats, "allow", "", "categories unblocked in the window (comma-separated)")
	scheduleCmd.Flags().StringVar(&blockCats, "block", "", "categories blocked in the window (comma-separated)")
	scheduleCmd.Flags().BoolVar(&clearSchedules, "clear", false, "remove every window of the group")
	scheduleCmd.Flags().StringVar(&reason, "reason", "", "why (required, audited)")

	var intercept, login, monitor, context string
	proxyCmd := &cobra.Command{
		Use:   "proxy GROUP [--intercept on|off] [--login on|off] [--monitor-searches on|off] [--context on|off] --reason TEXT",
		Short: "Set a group's monitoring settings: HTTPS interception, proxy login, search monitoring, incident context",
		Long: `proxy changes how the web proxy treats a group. Settings not given stay as they are.

  --intercept         decrypt HTTPS with the school CA (hedgerow ca init; the certificate must be
                      installed on the group's devices) for the hosts that need it: blocked ones,
                      so pupils see the block page, hosts with URL rules, and search engines when
                      searches are monitored. Banking, health and government are never decrypted.
  --login             ask for a user name and password (hedgerow users); the user's group decides.
  --monitor-searches  record every search term seen, not only blocked searches.
  --context           keep, in memory only, the sites each device reached in the last half
                      hour (incidents.context_window) and attach them to its high and critical
                      incidents, so the DSL sees what led up to an attempt. Adverts and a page's
                      own requests are left out. A privacy choice: tell pupils and parents.`,
		Example: `  hedgerow groups proxy ks3-ks4 --intercept on --reason "block page for HTTPS sites"
  hedgerow groups proxy sixth-form --login on --reason "shared laptops: filter by student"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			set := map[string]*bool{}
			parse := func(flag, v string) (bool, error) {
				switch v {
				case "on":
					return true, nil
				case "off":
					return false, nil
				}
				return false, fmt.Errorf("groups proxy %s: --%s %q: want on or off", name, flag, v)
			}
			var vals = map[string]string{"intercept": intercept, "login": login, "monitor-searches": monitor, "context": context}
			var changes []string
			for flag, v := range vals {
				if !cmd.Flags().Changed(flag) {
					continue
				}
				on, err := parse(flag, v)
				if err != nil {
					return err
				}
				set[flag] = &on
				changes = append(changes, "--"+flag+" "+v)
			}
			if len(set) == 0 {
				return fmt.Errorf("groups proxy %s: nothing to change; give --intercept, --login, --monitor-searches or --context", name)
			}
			slices.Sort(changes)
			return a.policyChange("groups proxy "+name+" "+strings.Join(changes, " "), reason, func(p *categories.Policy) (string, error) {
				g, err := p.GroupNamed(name)
				if err != nil || name == categories.SchoolGroup {
					return "", fmt.Errorf("no group %q", name)
				}
				for flag, field := range map[string]*bool{"intercept": &g.Intercept, "login": &g.ProxyLogin, "monitor-searches": &g.MonitorSearches, "context": &g.Context} {
					if v, ok := set[flag]; ok {
						*field = *v
					}
				}
				return name, nil
			})
		},
	}
	proxyCmd.Flags().StringVar(&intercept, "intercept", "", "on or off")
	proxyCmd.Flags().StringVar(&login, "login", "", "on or off")
	proxyCmd.Flags().StringVar(&monitor, "monitor-searches", "", "on or off")
	proxyCmd.Flags().StringVar(&context, "context", "", "on or off")
	proxyCmd.Flags().StringVar(&reason, "reason", "", "why (required, audited)")

	cmd.AddCommand(proxyCmd)
	cmd.AddCommand(list, show, add, remove, blockCmd(true), blockCmd(false), overrideCmd(true), overrideCmd(false),
		modeCmd, approveCmd, safeCmd, scheduleCmd)
	return cmd
}

// guardAllow refuses an allow override that could never take effect or
// that would try to unblock what nobody may unblock: a critical category or
// an entry of a locked feed.
func guardAllow(s *store.Store, t categories.Target) error {
	snap, err := s.LoadSnapshot()
	if err != nil {
		return err
	}
	c := snap.Index().Classify(t.Host, t.Path)
	crit := c.Cats & snap.Taxonomy().SeverityMask(categories.SeverityCritical)
	if crit != 0 {
		return fmt.Errorf("%s is listed as %s (illegal content); it cannot be allowed for anyone",
			t.Host+t.Path, strings.Join(snap.Taxonomy().Slugs(crit), ", "))
	}
	if c.Locked != 0 {
		return fmt.Errorf("%s is on a locked list (%s); locked lists cannot be overridden, only replaced by their next import",
			t.Host+t.Path, strings.Join(snap.Taxonomy().Slugs(c.Locked), ", "))
	}
	return nil
}

// policyChange opens the store and applies one audited policy change.
func (a *app) policyChange(action, reason string, apply func(p *categories.Policy) (string, error)) error {
	if err := requireReason(reason, action); err != nil {
		return err
	}
	return a.withStore(func(s *store.Store) error { return a.policyChangeIn(s, action, reason, apply) })
}

func (a *app) policyChangeIn(s *store.Store, action, reason string, apply func(p *categories.Policy) (string, error)) error {
	if err := s.UpdatePolicy(actor(), store.PolicyChange{Action: action, Reason: reason, Apply: apply}); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "done: %s\n", action)
	return nil
}
