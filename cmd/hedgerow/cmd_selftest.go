package main

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/spf13/cobra"

	"hedgerow/categories"
	"hedgerow/proxy"
	"hedgerow/store"
)

// selftestFiles holds the report's template, embedded so the report never
// depends on a file beside the binary.
//
//go:embed selftest.html
var selftestFiles embed.FS

// Probe kinds.
const (
	kindCategory      = "category"      // a sampled entry of a category
	kindCanary        = "doh-canary"    // Firefox's DNS-over-HTTPS canary
	kindSafeSearch    = "safe-search"   // a search engine or YouTube name
	kindCircumvention = "circumvention" // a well-known DNS-over-HTTPS endpoint
	kindUnmapped      = "unmapped"      // from an address in no mapped range
	kindProxyBlocked  = "proxy-blocked" // a blocked name through the proxy
	kindProxyAllowed  = "proxy-allowed" // an allowed name through the proxy
)

// Expected and observed actions. "allowed" is expected of names the filter
// lets through; any observed answer that is not the filter's own (answered,
// nxdomain, servfail, passed) agrees with it.
const (
	actBlocked   = "blocked"
	actAllowed   = "allowed"
	actRewritten = "rewritten"      // safe-search CNAME
	actNXDomain  = "nxdomain"       // the canary's answer
	actRefused   = "refused"        // source in no mapped range
	actLogin     = "login-required" // the group must log in to the proxy
	actAnswered  = "answered"       // DNS NOERROR, not the filter's
	actServFail  = "servfail"
	actPassed    = "passed" // the proxy forwarded it: any status but its own pages
	actError     = "error"  // no answer at all
)

// canaryHost is Firefox's DNS-over-HTTPS canary (dnsfilter answers it).
const canaryHost = "use-application-dns.net"

// Names probed in every group.
var (
	safeSearchHosts    = []string{"www.google.com", "www.bing.com", "duckduckgo.com", "www.youtube.com"}
	circumventionHosts = []string{"dns.google", "cloudflare-dns.com", "dns.quad9.net", "doh.opendns.com"}
	loopback4          = netip.MustParsePrefix("127.0.0.0/8")
)

// SelftestReport is the dated record of one self-test: what was probed,
// what the policy says, what the filter did.
type SelftestReport struct {
	Started         time.Time          `json:"started"`
	Finished        time.Time          `json:"finished"`
	TimeZone        string             `json:"time_zone"`
	RanBy           string             `json:"ran_by"`
	Host            string             `json:"host"`
	HedgerowVersion string             `json:"hedgerow_version"`
	Database        string             `json:"database"`
	DNS             string             `json:"dns"`
	Proxy           string             `json:"proxy"` // "" when not probed
	PerCategory     int                `json:"per_category"`
	Lists           []store.FeedInfo   `json:"lists"`
	Groups          []SelftestGroup    `json:"groups"`
	Unmapped        SelftestUnmapped   `json:"unmapped"`
	Probes          []SelftestProbe    `json:"probes"`
	Summary         SelftestSummary    `json:"summary"`
	Notes           []string           `json:"notes"`
	SchoolOverrides categories.Group   `json:"school_overrides"`
	Clients         []SelftestClientRg `json:"clients"`
}

// SelftestClientRg is one client range and its group.
type SelftestClientRg struct {
	Range string `json:"range"`
	Group string `json:"group"`
}

// SelftestGroup is a group's policy and whether it could be probed.
type SelftestGroup struct {
	categories.Group
	Ranges    []string `json:"ranges"`
	Source    string   `json:"source,omitempty"`     // the address probed from
	NotProbed string   `json:"not_probed,omitempty"` // why not, and how to
	Notes     []string `json:"notes,omitempty"`
	Probes    int      `json:"probes"`
	Failed    int      `json:"failed"`
}

// SelftestUnmapped says whether an unmapped source was probed.
type SelftestUnmapped struct {
	Source    string `json:"source,omitempty"`
	NotProbed string `json:"not_probed,omitempty"`
}

// SelftestProbe is one request and its verdicts.
type SelftestProbe struct {
	Group    string           `json:"group"` // "" for the unmapped source
	Source   string           `json:"source"`
	Kind     string           `json:"kind"`
	Channel  string           `json:"channel"` // dns or http
	Category string           `json:"category,omitempty"`
	Target   string           `json:"target"`
	Expected SelftestExpected `json:"expected"`
	Observed SelftestObserved `json:"observed"`
	Pass     bool             `json:"pass"`
}

// SelftestExpected is what the policy says, from the filter's own decision code.
type SelftestExpected struct {
	Action   string `json:"action"`
	Category string `json:"category,omitempty"`
	Severity string `json:"severity,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Basis    string `json:"basis,omitempty"` // group policy, override, timetable ...
	Reason   string `json:"reason"`
	Answer   string `json:"answer,omitempty"` // the safe-search name
}

// SelftestObserved is what the listener answered.
type SelftestObserved struct {
	Action   string `json:"action"`
	Category string `json:"category,omitempty"`
	Group    string `json:"group,omitempty"` // the group the block page named
	Rcode    string `json:"rcode,omitempty"`
	Status   int    `json:"status,omitempty"`
	Answer   string `json:"answer,omitempty"`
	Detail   string `json:"detail"`
}

// SelftestSummary counts the probes.
type SelftestSummary struct {
	Probes    int      `json:"probes"`
	Passed    int      `json:"passed"`
	Failed    int      `json:"failed"`
	Probed    []string `json:"probed_groups"`
	NotProbed []string `json:"not_probed_groups"`
	Pass      bool     `json:"pass"`
}

type selftestFlags struct {
	configFile, dns, proxy, out string
	perCategory                 int
	asJSON                      bool
}

func (a *app) selftestCommand() *cobra.Command {
	var f selftestFlags
	cmd := &cobra.Command{
		Use:   "selftest [--config FILE] [--dns ADDR] [--proxy ADDR] [--out DIR] [--per-category N] [--json]",
		Short: "Check the running filter through its own listeners and write a dated report (the yearly filtering check)",
		Long: `selftest checks a running hedgerow serve the way a pupil's device meets it: for every group
it sends DNS queries and proxy requests from an address the client mapping puts in that group,
and compares each answer with the verdict the policy gives (the same decision code the filter
uses, on the lists and policy in the database). It probes a sample of every category's entries,
the DNS-over-HTTPS canary, safe search, well-known DNS-over-HTTPS endpoints, an address in no
mapped range, and through the proxy one blocked and one allowed site.

It writes a dated report, HTML for people and JSON for machines, into --out (default
DATA/selftest), records the run in the audit trail, prints a summary, and exits 0 when every
probe agrees with the policy and 1 when any does not (or nothing could be probed).

Addresses come from the same places as serve's: the defaults, --config, then --dns and
--proxy. Any address in 127.0.0.0/8 can be a source on Linux, so groups mapped to loopback
addresses are probed from this host; a group whose ranges hold no address of this host is
reported as not probed, with how to run the check from a device in it.

The probes are real attempts: blocked ones are recorded as incidents from the probing
address, and critical ones alert the safeguarding lead as any attempt would. Tell them first.`,
		Example: `  hedgerow selftest
  hedgerow selftest --config /etc/hedgerow/hedgerow.yaml --out /var/lib/hedgerow/selftest
  hedgerow selftest --data ./copy-of-db --dns 10.0.0.53:53 --proxy 10.0.0.53:3128 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.selftestConfig(cmd, f)
			if err != nil {
				return err
			}
			return a.selftest(cmd.Context(), cfg, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configFile, "config", "", "the YAML configuration serve uses (see deploy/hedgerow.yaml)")
	fl.StringVar(&f.dns, "dns", "127.0.0.1:5353", "the DNS listener to probe, IP:port")
	fl.StringVar(&f.proxy, "proxy", "127.0.0.1:3128", `the proxy listener to probe, IP:port, or "off"`)
	fl.StringVar(&f.out, "out", "", "directory for the reports (default DATA/selftest)")
	fl.IntVar(&f.perCategory, "per-category", 3, "entries probed per category")
	fl.BoolVar(&f.asJSON, "json", false, "print the whole report as JSON instead of the summary")
	return cmd
}

// selftestConfig resolves the addresses the way serve does: defaults, the
// config file, then the flags.
func (a *app) selftestConfig(cmd *cobra.Command, f selftestFlags) (Config, error) {
	cfg, err := a.listenerConfig(cmd, f.configFile, f.dns, f.proxy)
	if err != nil {
		return cfg, err
	}
	if f.perCategory < 1 || f.perCategory > store.MaxSamplePerCategory {
		return cfg, fmt.Errorf("selftest --per-category %d: want 1 to %d, e.g. 3", f.perCategory, store.MaxSamplePerCategory)
	}
	return cfg, nil
}

// listenerAddr reads the first listen address of a listener.
func listenerAddr(key string, listen []string) (netip.AddrPort, error) {
	if len(listen) == 0 {
		return netip.AddrPort{}, nil
	}
	ap, err := netip.ParseAddrPort(listen[0])
	if err != nil || ap.Port() == 0 {
		return ap, fmt.Errorf("selftest: %s %q: want the listener's IP:port, e.g. 127.0.0.1:5353", key, listen[0])
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// selftester holds one run's state; each group's probes run in their own
// goroutine and write only their own results.
type selftester struct {
	a           *app
	snap        *categories.Snapshot
	samples     map[string][]string
	dns, proxy  netip.AddrPort // proxy invalid when off
	local       []netip.Addr   // this host's interface addresses
	dnsInterval time.Duration  // pause between one source's queries, under serve's rate limit
	timeout     time.Duration
	safeNames   map[string]bool // every safe-search CNAME target
}

// selftest runs the probes, writes the reports, records the run in the
// audit trail and turns the outcome into the exit status.
func (a *app) selftest(ctx context.Context, cfg Config, f selftestFlags) error {
	rep, htmlPath, err := a.runSelftest(ctx, cfg, f, actor())
	if err != nil {
		return err
	}
	if f.asJSON {
		if err := a.printJSON(rep); err != nil {
			return err
		}
	} else {
		a.printSelftestSummary(rep, htmlPath)
	}
	switch {
	case rep.Summary.Probes == 0:
		return &exitError{code: 1, err: errors.New("selftest: no group could be probed from this host (see the report)")}
	case rep.Summary.Failed > 0:
		return &exitError{code: 1, err: fmt.Errorf("selftest: %d of %d probes disagree with the policy", rep.Summary.Failed, rep.Summary.Probes)}
	}
	return nil
}

// runSelftest sends the probes, writes the report and records the run in
// the audit trail as who's: the CLI's selftest and the admin UI's.
func (a *app) runSelftest(ctx context.Context, cfg Config, f selftestFlags, who string) (*SelftestReport, string, error) {
	st, rep, err := a.newSelftest(cfg, f.perCategory)
	if err != nil {
		return nil, "", err
	}
	loc, err := time.LoadLocation(rep.TimeZone)
	if err != nil {
		loc = time.Local
	}
	results := st.runAll(ctx, rep)
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("selftest: interrupted before every probe was sent; no report written: %w", err)
	}
	for _, r := range results {
		rep.Probes = append(rep.Probes, r...)
	}
	rep.Finished = a.now()
	rep.summarise()
	out := f.out
	if out == "" {
		out = filepath.Join(cfg.Data, "selftest")
	}
	htmlPath, err := writeSelftestReport(out, rep, loc)
	if err != nil {
		return nil, "", err
	}
	rec := store.SelftestRecord{Report: htmlPath, Probes: rep.Summary.Probes, Passed: rep.Summary.Passed,
		Failed: rep.Summary.Failed, Probed: rep.Summary.Probed, NotProbed: rep.Summary.NotProbed}
	if err := a.writeExisting(func(s *store.Store) error { return s.RecordSelftest(who, rec) }); err != nil {
		return rep, htmlPath, fmt.Errorf("selftest: the report is in %s, but the run could not be recorded in the audit trail: %w", htmlPath, err)
	}
	return rep, htmlPath, nil
}

// newSelftest reads the listeners' addresses, the lists, the policy and the
// sample, and starts the report with who, where and what.
func (a *app) newSelftest(cfg Config, perCategory int) (*selftester, *SelftestReport, error) {
	dnsAP, err := listenerAddr("--dns", cfg.DNS.Listen)
	if err != nil {
		return nil, nil, err
	}
	if !dnsAP.IsValid() {
		return nil, nil, errors.New("selftest: no DNS listener in the configuration; give --dns IP:port")
	}
	proxyAP, err := listenerAddr("--proxy", cfg.Proxy.Listen)
	if err != nil {
		return nil, nil, err
	}
	rep := &SelftestReport{Started: a.now(), RanBy: actor(), HedgerowVersion: version(), Database: a.dbPath(),
		DNS: dnsAP.String(), PerCategory: perCategory, Notes: selftestNotes}
	if proxyAP.IsValid() {
		rep.Proxy = proxyAP.String()
	}
	if abs, err := filepath.Abs(rep.Database); err == nil {
		rep.Database = abs
	}
	if rep.Host, err = os.Hostname(); err != nil {
		rep.Host = "unknown (" + err.Error() + ")"
	}
	st := &selftester{a: a, dns: dnsAP, proxy: proxyAP, timeout: 3 * time.Second, safeNames: safeSearchTargets(), local: localAddrs()}
	if cfg.DNS.RateLimit > 0 {
		st.dnsInterval = time.Second / time.Duration(max(cfg.DNS.RateLimit/2, 1))
	}
	if err := a.readStore(func(s *store.Store) error {
		var err error
		if st.snap, err = s.LoadSnapshot(); err != nil {
			return err
		}
		if rep.Lists, err = s.Feeds(); err != nil {
			return err
		}
		st.samples, err = s.SampleEntries(perCategory)
		return err
	}); err != nil {
		return nil, nil, fmt.Errorf("selftest: reading the lists and policy: %w", err)
	}
	pol := st.snap.Policy()
	rep.TimeZone = pol.TimeZone
	rep.SchoolOverrides = pol.School
	for _, c := range pol.Clients {
		rep.Clients = append(rep.Clients, SelftestClientRg{Range: c.Prefix.String(), Group: c.Group})
	}
	slices.SortFunc(rep.Clients, func(x, y SelftestClientRg) int { return strings.Compare(x.Range, y.Range) })
	return st, rep, nil
}

// runAll plans and runs every group's probes and the unmapped source's, a
// goroutine per source; results come back in policy order.
func (st *selftester) runAll(ctx context.Context, rep *SelftestReport) [][]SelftestProbe {
	pol := st.snap.Policy()
	results := make([][]SelftestProbe, len(pol.Groups)+1)
	var wg sync.WaitGroup
	for i, g := range pol.Groups {
		sg := SelftestGroup{Group: g, Ranges: []string{}}
		for _, c := range pol.Clients {
			if c.Group == g.Name {
				sg.Ranges = append(sg.Ranges, c.Prefix.String())
			}
		}
		slices.Sort(sg.Ranges)
		src, ok := st.findSource(g.Name)
		if !ok {
			sg.NotProbed = st.notProbed(g.Name, sg.Ranges)
			rep.Groups = append(rep.Groups, sg)
			continue
		}
		sg.Source = src.String()
		specs, notes := st.groupProbes(g.Name, src)
		sg.Notes = notes
		rep.Groups = append(rep.Groups, sg)
		wg.Go(func() { results[i] = st.runProbes(ctx, g.Name, src, specs) })
	}
	if src, ok := st.unmappedSource(); ok {
		rep.Unmapped.Source = src.String()
		specs := []probeSpec{{kind: kindUnmapped, channel: "dns", host: "www.example.org"}}
		if st.proxy.IsValid() && st.reachable(st.proxy, src) {
			specs = append(specs, probeSpec{kind: kindUnmapped, channel: "http", host: "www.example.org", path: "/"})
		}
		wg.Go(func() { results[len(pol.Groups)] = st.runProbes(ctx, "", src, specs) })
	} else {
		rep.Unmapped.NotProbed = st.unmappedNotProbed()
	}
	wg.Wait()
	return results
}

// probeSpec is one probe to send.
type probeSpec struct {
	kind, channel, category string
	host, path              string // path only for http
}

// groupProbes lists a group's probes: a sample of every category (domains
// by DNS; URL entries and addresses through the proxy, which is where they
// are decided), the canary, safe search, circumvention endpoints, and one
// blocked and one allowed site through the proxy.
func (st *selftester) groupProbes(group string, src netip.Addr) ([]probeSpec, []string) {
	var specs []probeSpec
	var notes []string
	viaProxy := st.proxy.IsValid() && st.reachable(st.proxy, src)
	switch {
	case !st.proxy.IsValid():
		notes = append(notes, "the proxy was not probed (--proxy off): URL entries, addresses and the proxy checks were left out")
	case !viaProxy:
		notes = append(notes, fmt.Sprintf("the proxy %s cannot be reached from %s (another address family): URL entries, addresses and the proxy checks were left out", st.proxy, src))
	}
	for _, c := range st.snap.Taxonomy().All() {
		for _, e := range st.samples[c.Slug] {
			host, path, isURL := strings.Cut(e, "/")
			if isURL {
				path = "/" + path
			}
			if !isURL && !isAddrLiteral(host) {
				specs = append(specs, probeSpec{kind: kindCategory, channel: "dns", category: c.Slug, host: host})
			} else if viaProxy {
				specs = append(specs, probeSpec{kind: kindCategory, channel: "http", category: c.Slug, host: host, path: orDefault(path, "/")})
			}
		}
	}
	specs = append(specs, probeSpec{kind: kindCanary, channel: "dns", host: canaryHost})
	for _, h := range safeSearchHosts {
		specs = append(specs, probeSpec{kind: kindSafeSearch, channel: "dns", host: h})
	}
	for _, h := range circumventionHosts {
		specs = append(specs, probeSpec{kind: kindCircumvention, channel: "dns", host: h})
	}
	if !viaProxy {
		return specs, notes
	}
	if h, ok := st.pick(group, categories.Block); ok {
		specs = append(specs, probeSpec{kind: kindProxyBlocked, channel: "http", host: h, path: "/"})
	} else {
		notes = append(notes, "no sampled name is blocked for this group, so the proxy's block page was not probed")
	}
	if h, ok := st.pick(group, categories.Allow); ok {
		specs = append(specs, probeSpec{kind: kindProxyAllowed, channel: "http", host: h, path: "/"})
	} else {
		notes = append(notes, "no allowed name was found for this group, so an allowed request through the proxy was not probed")
	}
	return specs, notes
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// pick finds a domain the policy gives action for the group: for blocks, a
// sampled entry (a non-critical one if there is one, so the check does not
// alert the safeguarding lead twice); for allows, the school's and the
// group's allow overrides first, then the samples.
func (st *selftester) pick(group string, action categories.Action) (string, bool) {
	now := st.a.now()
	var cands []string
	if action == categories.Allow {
		pol := st.snap.Policy()
		for _, g := range pol.Groups {
			if g.Name == group {
				cands = append(cands, g.Allow...)
			}
		}
		cands = append(cands, pol.School.Allow...)
	}
	for _, c := range st.snap.Taxonomy().All() {
		cands = append(cands, st.samples[c.Slug]...)
	}
	fallback := ""
	for _, h := range cands {
		if strings.Contains(h, "/") || isAddrLiteral(h) {
			continue
		}
		v := st.snap.Decide(group, h, "/", now)
		if v.Action != action {
			continue
		}
		if action == categories.Block && v.Severity() == categories.SeverityCritical {
			if fallback == "" {
				fallback = h
			}
			continue
		}
		return h, true
	}
	return fallback, fallback != ""
}

// isAddrLiteral reports whether a canonical host is an IP address: the
// proxy, not DNS, is where those are decided.
func isAddrLiteral(h string) bool {
	_, err := netip.ParseAddr(h)
	return err == nil
}

// runProbes sends one source's probes in order, pacing DNS queries under
// serve's per-client rate limit.
func (st *selftester) runProbes(ctx context.Context, group string, src netip.Addr, specs []probeSpec) []SelftestProbe {
	var client *http.Client
	if st.proxy.IsValid() && st.reachable(st.proxy, src) {
		client = st.httpClient(src)
		defer client.CloseIdleConnections()
	}
	out := make([]SelftestProbe, 0, len(specs))
	var next time.Time
	for _, p := range specs {
		if ctx.Err() != nil {
			break
		}
		exp := st.expect(group, p)
		var obs SelftestObserved
		if p.channel == "dns" {
			if wait := time.Until(next); wait > 0 {
				time.Sleep(wait)
			}
			next = time.Now().Add(st.dnsInterval)
			obs = st.queryDNS(ctx, src, p.host)
		} else if client != nil {
			obs = st.get(ctx, client, "http://"+hostForURL(p.host)+p.path)
		} else {
			obs = SelftestObserved{Action: actError, Detail: fmt.Sprintf("the proxy %s cannot be reached from %s", st.proxy, src)}
		}
		out = append(out, SelftestProbe{Group: group, Source: src.String(), Kind: p.kind, Channel: p.channel,
			Category: p.category, Target: displayTarget(st.snap.Taxonomy(), p), Expected: exp, Observed: obs,
			Pass: agrees(exp, obs, group)})
	}
	return out
}

func hostForURL(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// displayTarget is the target as the report shows it. The paths of
// critical (illegal) entries are withheld, as on the block page: they can
// identify a victim, and the report is read by people with no need of them.
func displayTarget(tax *categories.Taxonomy, p probeSpec) string {
	if p.channel == "dns" {
		return p.host
	}
	if c, ok := tax.Lookup(p.category); ok && c.Severity == categories.SeverityCritical && p.path != "/" {
		return "http://" + hostForURL(p.host) + "/… (path withheld: critical category)"
	}
	return "http://" + hostForURL(p.host) + p.path
}

// expect gives the policy's verdict for a probe, with the same code and
// data the filter uses.
func (st *selftester) expect(group string, p probeSpec) SelftestExpected {
	switch {
	case p.kind == kindUnmapped && p.channel == "dns":
		return SelftestExpected{Action: actRefused, Basis: "client mapping",
			Reason: "this address is in no mapped range: hedgerow is never an open resolver, so it answers REFUSED"}
	case p.kind == kindUnmapped:
		return SelftestExpected{Action: actRefused, Basis: "client mapping",
			Reason: "this address is in no mapped range: hedgerow is never an open proxy, so it answers 403"}
	case p.kind == kindCanary:
		return SelftestExpected{Action: actNXDomain, Basis: "every group",
			Reason: canaryHost + " is answered NXDOMAIN for every group, so Firefox keeps its own DNS-over-HTTPS off"}
	case p.channel == "http" && st.snap.ProxySettings(group).Login:
		return SelftestExpected{Action: actLogin, Basis: "group proxy settings",
			Reason: "group " + group + " must log in to the proxy (407); the self-test has no login"}
	}
	v := st.snap.Decide(group, p.host, p.path, st.a.now())
	e := SelftestExpected{Action: actAllowed, Rule: v.Rule.String(), Basis: basisOf(v), Reason: v.Reason()}
	if v.Category != nil {
		e.Category, e.Severity = v.Category.Slug, v.Category.Severity.String()
	}
	if v.Action == categories.Block {
		e.Action = actBlocked
		return e
	}
	if p.channel == "dns" {
		safe, youtube := st.snap.SearchSettings(group)
		if name, ok := categories.SafeSearchName(p.host, safe, youtube); ok {
			e.Action, e.Answer = actRewritten, strings.TrimSuffix(name, ".")
			e.Basis = "group safe-search setting"
			e.Reason += "; group " + group + " enforces safe search, so the name is answered as " + e.Answer
		}
	}
	return e
}

// basisOf says which part of the policy decided a verdict.
func basisOf(v categories.Verdict) string {
	switch v.Rule {
	case categories.RuleCritical:
		return "critical category (every group)"
	case categories.RuleLocked:
		return "locked list"
	case categories.RuleGroupDeny, categories.RuleGroupAllow:
		return "group override"
	case categories.RuleSchoolDeny, categories.RuleSchoolAllow:
		return "school-wide override"
	case categories.RuleUnknownGroup:
		return "unknown group"
	case categories.RuleDefault:
		if v.Cats == 0 {
			return "not listed"
		}
	}
	if v.Scheduled {
		return "group policy, as its timetable changes it now"
	}
	return "group policy"
}

// agrees decides whether what the filter did is what the policy says.
func agrees(e SelftestExpected, o SelftestObserved, group string) bool {
	if o.Group != "" && o.Group != group {
		return false // the proxy put this source in another group
	}
	switch e.Action {
	case actNXDomain:
		return o.Rcode == "NXDOMAIN"
	case actBlocked:
		return o.Action == actBlocked && (o.Category == "" || e.Category == "" || o.Category == e.Category)
	case actRewritten:
		return o.Action == actRewritten && o.Answer == e.Answer
	case actAllowed:
		return o.Action == actAnswered || o.Action == actNXDomain || o.Action == actServFail || o.Action == actPassed
	}
	return o.Action == e.Action
}

// queryDNS asks the DNS listener for host's A record from src, over UDP
// (TCP when the answer is truncated), retrying once on a lost packet.
func (st *selftester) queryDNS(ctx context.Context, src netip.Addr, host string) SelftestObserved {
	target, ok := dialTarget(st.dns, src)
	if !ok {
		return SelftestObserved{Action: actError, Detail: fmt.Sprintf("%s cannot reach %s", src, st.dns)}
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(host), dns.TypeA)
	m.SetEdns0(1232, false) // an OPT record, so that blocks carry their Extended DNS Error
	exchange := func(network string, local net.Addr) (*dns.Msg, error) {
		c := &dns.Client{Net: network, Timeout: st.timeout, Dialer: &net.Dialer{LocalAddr: local, Timeout: st.timeout}}
		resp, _, err := c.ExchangeContext(ctx, m, target.String())
		return resp, err
	}
	udp := &net.UDPAddr{IP: src.AsSlice()}
	resp, err := exchange("udp", udp)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		resp, err = exchange("udp", udp)
	}
	if err == nil && resp.Truncated {
		resp, err = exchange("tcp", &net.TCPAddr{IP: src.AsSlice()})
	}
	if err != nil {
		return SelftestObserved{Action: actError, Detail: fmt.Sprintf("no answer from %s: %v", target, err)}
	}
	return classifyDNS(resp, st.snap.Taxonomy(), st.safeNames)
}

// classifyDNS reads an answer: the filter's refusal, its block (marked by
// an Extended DNS Error "Blocked" naming the category), its safe-search
// rewrite, or an answer it let through.
func classifyDNS(m *dns.Msg, tax *categories.Taxonomy, safeNames map[string]bool) SelftestObserved {
	o := SelftestObserved{Rcode: dns.RcodeToString[m.Rcode]}
	var ede *dns.EDNS0_EDE
	if opt := m.IsEdns0(); opt != nil {
		for _, op := range opt.Option {
			if e, ok := op.(*dns.EDNS0_EDE); ok {
				ede = e
			}
		}
	}
	var answers []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			answers = append(answers, rr.A.String())
		case *dns.AAAA:
			answers = append(answers, rr.AAAA.String())
		case *dns.CNAME:
			target := strings.TrimSuffix(strings.ToLower(rr.Target), ".")
			answers = append(answers, "CNAME "+target)
			if o.Answer == "" && safeNames[target] {
				o.Answer = target
			}
		}
	}
	detail := []string{o.Rcode}
	if len(answers) > 0 {
		detail = append(detail, strings.Join(answers, ", "))
	}
	if ede != nil {
		detail = append(detail, fmt.Sprintf("EDE %d %s", ede.InfoCode, ede.ExtraText))
	}
	o.Detail = strings.Join(detail, "; ")
	switch {
	case m.Rcode == dns.RcodeRefused:
		o.Action = actRefused
	case ede != nil && ede.InfoCode == dns.ExtendedErrorCodeBlocked:
		o.Action = actBlocked
		if _, ok := tax.Lookup(ede.ExtraText); ok {
			o.Category = ede.ExtraText
		}
	case o.Answer != "":
		o.Action = actRewritten
	case m.Rcode == dns.RcodeNameError:
		o.Action = actNXDomain
	case m.Rcode == dns.RcodeServerFailure:
		o.Action = actServFail
	default:
		o.Action = actAnswered
	}
	return o
}

// safeSearchTargets lists every name SafeSearchName can answer with.
func safeSearchTargets() map[string]bool {
	out := map[string]bool{}
	for _, h := range safeSearchHosts {
		for _, yt := range []string{categories.YouTubeStrict, categories.YouTubeModerate} {
			if name, ok := categories.SafeSearchName(h, true, yt); ok {
				out[strings.TrimSuffix(name, ".")] = true
			}
		}
	}
	return out
}

// httpClient sends plain HTTP requests through the proxy from src and
// follows no redirects: the first answer is the one the filter gave.
func (st *selftester) httpClient(src netip.Addr) *http.Client {
	target, _ := dialTarget(st.proxy, src)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	tr := &http.Transport{
		Proxy:       http.ProxyURL(&url.URL{Scheme: "http", Host: target.String()}),
		DialContext: d.DialContext,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get fetches a URL through the proxy and reads the proxy's verdict from
// the answer: its block page, its refusal, its login request, or a page it
// let through.
func (st *selftester) get(ctx context.Context, client *http.Client, rawURL string) SelftestObserved {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return SelftestObserved{Action: actError, Detail: err.Error()}
	}
	req.Header.Set("User-Agent", "hedgerow-selftest")
	resp, err := client.Do(req)
	if err != nil {
		return SelftestObserved{Action: actError, Detail: "no answer from the proxy: " + err.Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
	if err != nil {
		return SelftestObserved{Action: actError, Status: resp.StatusCode, Detail: "reading the answer: " + err.Error()}
	}
	return classifyHTTP(resp.StatusCode, body, st.snap.Taxonomy())
}

// classifyHTTP reads the proxy's answer.
func classifyHTTP(status int, body []byte, tax *categories.Taxonomy) SelftestObserved {
	o := SelftestObserved{Status: status}
	firstLine, _, _ := strings.Cut(string(body), "\n")
	switch {
	case status == http.StatusForbidden && bytes.Contains(body, []byte(`action="`+proxy.ReportPath+`"`)):
		o.Action, o.Detail = actBlocked, "HTTP 403 with hedgerow's block page"
		o.Group = blockPageField(body, "Group")
		if name := blockPageField(body, "Category"); name != "" {
			name, _, _ = strings.Cut(name, " (")
			for _, c := range tax.All() {
				if template.HTMLEscapeString(c.Name) == name {
					o.Category = c.Slug
				}
			}
		}
		if o.Group != "" {
			o.Detail += " for group " + o.Group
		}
	case status == http.StatusForbidden && strings.HasPrefix(firstLine, "hedgerow: blocked."):
		o.Action, o.Detail = actBlocked, "HTTP 403: "+firstLine
	case status == http.StatusForbidden && strings.Contains(firstLine, "not allowed to use this proxy"):
		o.Action, o.Detail = actRefused, "HTTP 403: "+firstLine
	case status == http.StatusProxyAuthRequired:
		o.Action, o.Detail = actLogin, "HTTP 407: the proxy asks for a login"
	default:
		o.Action = actPassed
		o.Detail = fmt.Sprintf("HTTP %d: not hedgerow's block page, so the filter let it through", status)
		if status == http.StatusBadGateway || status == http.StatusGatewayTimeout {
			o.Detail += " (the site itself could not be reached from here: " + strings.TrimPrefix(firstLine, "hedgerow: ") + ")"
		}
	}
	return o
}

// blockPageField reads one "Details for teachers" value of the block page.
func blockPageField(body []byte, name string) string {
	_, rest, ok := bytes.Cut(body, []byte("<dt>"+name+"</dt><dd>"))
	if !ok {
		return ""
	}
	v, _, _ := bytes.Cut(rest, []byte("</dd>"))
	return string(v)
}

// dialTarget is where a probe from src goes: the listener's address, or,
// for a listener on every address, src itself (this host). ok is false when
// src cannot reach the listener (another address family).
func dialTarget(listen netip.AddrPort, src netip.Addr) (netip.AddrPort, bool) {
	la := listen.Addr()
	if la.IsUnspecified() {
		if la.Is4() && !src.Is4() {
			return listen, false
		}
		return netip.AddrPortFrom(src, listen.Port()), true
	}
	return listen, la.Is4() == src.Is4()
}

func (st *selftester) reachable(listen netip.AddrPort, src netip.Addr) bool {
	_, ok := dialTarget(listen, src)
	return ok
}

// localAddrs lists this host's interface addresses.
func localAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// findSource finds an address this host can send from that the client
// mapping puts in group and that can reach the DNS listener: an interface
// address in one of the group's ranges, or any loopback address in them
// (all of 127.0.0.0/8 is local on Linux). Addresses like the listener's
// (loopback or not) come first.
func (st *selftester) findSource(group string) (netip.Addr, bool) {
	var cands []netip.Addr
	for _, c := range st.snap.Policy().Clients {
		if c.Group != group {
			continue
		}
		p := c.Prefix.Masked()
		for _, a := range st.local {
			if p.Contains(a) {
				cands = append(cands, a)
			}
		}
		if p.Addr().Is4() && p.Overlaps(loopback4) {
			o := p
			if p.Bits() < loopback4.Bits() {
				o = loopback4
			}
			a := o.Addr()
			if o.Bits() <= 30 {
				a = a.Next() // 127.0.0.1 rather than the network's own address
			}
			for i := 0; i < 256 && o.Contains(a); i, a = i+1, a.Next() {
				cands = append(cands, a)
			}
		}
	}
	targetLoop := st.dns.Addr().IsLoopback() || st.dns.Addr().IsUnspecified()
	slices.SortStableFunc(cands, func(x, y netip.Addr) int {
		return boolRank(x.IsLoopback() != targetLoop) - boolRank(y.IsLoopback() != targetLoop)
	})
	for _, a := range cands {
		if g, ok := st.snap.GroupFor(a); ok && g == group && st.reachable(st.dns, a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// unmappedSource finds a loopback address in no mapped range.
func (st *selftester) unmappedSource() (netip.Addr, bool) {
	cands := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.254"),
		netip.MustParseAddr("127.255.255.254")}
	for i := 1; i < 255; i++ {
		cands = append(cands, netip.AddrFrom4([4]byte{127, byte(i), 0, 1}))
	}
	cands = append(cands, netip.IPv6Loopback())
	for _, a := range cands {
		if _, mapped := st.snap.GroupFor(a); !mapped && st.reachable(st.dns, a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func (st *selftester) unmappedNotProbed() string {
	return fmt.Sprintf("not probed from this host: every loopback address that can reach %s is mapped to a group. "+
		"From a device outside every mapped range, a DNS query to the filter must be REFUSED and the proxy must answer 403", st.dns)
}

// notProbed explains why a group was not probed and how to probe it.
func (st *selftester) notProbed(group string, ranges []string) string {
	if len(ranges) == 0 {
		return fmt.Sprintf("not probed: no address or range is mapped to %s, so no device is in it "+
			"(map one with: hedgerow clients add RANGE %s --reason ...)", group, group)
	}
	proxyFlag := ""
	if st.proxy.IsValid() {
		proxyFlag = fmt.Sprintf(" --proxy FILTER:%d", st.proxy.Port())
	}
	return fmt.Sprintf("not probed from this host: no address of this host is in %s. To check it, run "+
		"hedgerow selftest --data DIR --dns FILTER:%d%s on a device in that range, where FILTER is the filter's "+
		"address there and DIR holds a copy of this database (hedgerow backup)",
		strings.Join(ranges, ", "), st.dns.Port(), proxyFlag)
}

// selftestNotes explain how to read the report.
var selftestNotes = []string{
	"Expected verdicts come from the lists and policy in the database at the moment of each probe, decided by the same code the filter runs; observed ones are what the filter's DNS and proxy listeners answered. A probe passes when they agree.",
	"\"allowed\" means the filter let the request through. For DNS, any answer that is not the filter's own counts: an address, NXDOMAIN for a name that does not exist, or SERVFAIL when the upstream resolvers did not answer. For the proxy, any answer other than hedgerow's block page counts, including 502 when this host cannot reach the site (no internet here, or the name does not resolve): the filter did not stop it.",
	"The probes are real requests: each blocked one is recorded as an incident from the probing address, and critical ones alert the safeguarding lead as any attempt would. The audit trail records that a self-test ran.",
	"The path of a URL entry in a critical (illegal) category is withheld from this report, as it is from the block page.",
	"A change to the lists or policy made while the self-test runs can show as a disagreement: run it again.",
}

// summarise counts the probes per group and overall.
func (r *SelftestReport) summarise() {
	s := SelftestSummary{Probed: []string{}, NotProbed: []string{}}
	idx := map[string]int{}
	for i, g := range r.Groups {
		idx[g.Name] = i
		if g.NotProbed != "" {
			s.NotProbed = append(s.NotProbed, g.Name)
		} else {
			s.Probed = append(s.Probed, g.Name)
		}
	}
	for _, p := range r.Probes {
		s.Probes++
		if p.Pass {
			s.Passed++
		} else {
			s.Failed++
		}
		if i, ok := idx[p.Group]; ok {
			r.Groups[i].Probes++
			if !p.Pass {
				r.Groups[i].Failed++
			}
		}
	}
	s.Pass = s.Probes > 0 && s.Failed == 0
	r.Summary = s
}

// writeSelftestReport writes the JSON and HTML reports, named by the start
// time, and returns the HTML file's path.
func writeSelftestReport(dir string, rep *SelftestReport, loc *time.Location) (string, error) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs // the audit trail names the report wherever it is read from
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("selftest: report directory %s: %w", dir, err)
	}
	base := filepath.Join(dir, "selftest-"+rep.Started.In(loc).Format("20060102-150405"))
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", fmt.Errorf("selftest: report: %w", err)
	}
	if err := os.WriteFile(base+".json", append(raw, '\n'), 0o640); err != nil {
		return "", fmt.Errorf("selftest: writing the report: %w", err)
	}
	var page bytes.Buffer
	if err := renderSelftestHTML(&page, rep, loc); err != nil {
		return "", err
	}
	if err := os.WriteFile(base+".html", page.Bytes(), 0o640); err != nil {
		return "", fmt.Errorf("selftest: writing the report: %w", err)
	}
	return base + ".html", nil
}

// renderSelftestHTML renders the report for people; html/template escapes
// everything it shows (group descriptions and list reasons are typed by
// staff).
func renderSelftestHTML(w io.Writer, rep *SelftestReport, loc *time.Location) error {
	funcs := template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.In(loc).Format("Mon 2 Jan 2006, 15:04:05 MST")
		},
		"join":  func(s []string) string { return strings.Join(s, ", ") },
		"group": func(g string) string { return orDefault(g, "unmapped source") },
		"probesOf": func(group string) []SelftestProbe {
			var out []SelftestProbe
			for _, p := range rep.Probes {
				if p.Group == group {
					out = append(out, p)
				}
			}
			return out
		},
		"failures": func() []SelftestProbe {
			var out []SelftestProbe
			for _, p := range rep.Probes {
				if !p.Pass {
					out = append(out, p)
				}
			}
			return out
		},
	}
	t, err := template.New("selftest.html").Funcs(funcs).ParseFS(selftestFiles, "selftest.html")
	if err != nil {
		return fmt.Errorf("selftest: report template: %w", err)
	}
	if err := t.Execute(w, rep); err != nil {
		return fmt.Errorf("selftest: rendering the report: %w", err)
	}
	return nil
}

// printSelftestSummary prints the outcome for the person at the terminal.
func (a *app) printSelftestSummary(rep *SelftestReport, htmlPath string) {
	w := a.stdout
	s := rep.Summary
	verdict := "every probe agrees with the policy"
	if s.Failed > 0 {
		verdict = fmt.Sprintf("%d DISAGREE with the policy", s.Failed)
	} else if s.Probes == 0 {
		verdict = "NOTHING COULD BE PROBED"
	}
	fmt.Fprintf(w, "hedgerow selftest: %d probes through DNS %s", s.Probes, rep.DNS)
	if rep.Proxy != "" {
		fmt.Fprintf(w, " and the proxy %s", rep.Proxy)
	}
	fmt.Fprintf(w, ": %s\n", verdict)
	for _, g := range rep.Groups {
		if g.NotProbed != "" {
			fmt.Fprintf(w, "  %-16s %s\n", g.Name, g.NotProbed)
			continue
		}
		fmt.Fprintf(w, "  %-16s from %s: %d probes, %d disagree\n", g.Name, g.Source, g.Probes, g.Failed)
	}
	if rep.Unmapped.NotProbed != "" {
		fmt.Fprintf(w, "  %-16s %s\n", "unmapped source", rep.Unmapped.NotProbed)
	} else {
		fmt.Fprintf(w, "  %-16s from %s\n", "unmapped source", rep.Unmapped.Source)
	}
	unanswered := 0
	for _, p := range rep.Probes {
		if p.Observed.Action == actError {
			unanswered++
		}
	}
	if unanswered > 0 && unanswered == s.Probes {
		fmt.Fprintf(w, "  no probe got an answer: is hedgerow serve running, with DNS on %s and the proxy on %s? (--config, --dns, --proxy)\n",
			rep.DNS, orDefault(rep.Proxy, "off"))
	}
	shown := 0
	for _, p := range rep.Probes {
		if p.Pass {
			continue
		}
		if shown++; shown > 20 {
			fmt.Fprintf(w, "  ... and %d more in the report\n", s.Failed-20)
			break
		}
		fmt.Fprintf(w, "  DISAGREES: %s %s %s: expected %s, observed %s (%s)\n",
			orDefault(p.Group, "unmapped"), p.Channel, p.Target, p.Expected.Action, p.Observed.Action, p.Observed.Detail)
	}
	fmt.Fprintf(w, "report: %s (and %s)\n", htmlPath, strings.TrimSuffix(htmlPath, ".html")+".json")
}
