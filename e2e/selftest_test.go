package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"hedgerow/e2e/sharedlists"
)

// selftestReport is the part of the JSON report the tests read.
type selftestReport struct {
	RanBy           string `json:"ran_by"`
	Host            string `json:"host"`
	HedgerowVersion string `json:"hedgerow_version"`
	Lists           []struct {
		Name       string `json:"name"`
		ImportedAt string `json:"imported_at"`
		Domains    int    `json:"domains"`
	} `json:"lists"`
	Groups []struct {
		Name      string `json:"name"`
		Source    string `json:"source"`
		NotProbed string `json:"not_probed"`
		Probes    int    `json:"probes"`
	} `json:"groups"`
	Unmapped struct {
		Source string `json:"source"`
	} `json:"unmapped"`
	Probes  []selftestProbe `json:"probes"`
	Summary struct {
		Probes, Passed, Failed int
		Pass                   bool
	} `json:"summary"`
}

type selftestProbe struct {
	Group    string `json:"group"`
	Source   string `json:"source"`
	Kind     string `json:"kind"`
	Channel  string `json:"channel"`
	Target   string `json:"target"`
	Expected struct {
		Action, Category, Answer, Reason string
	} `json:"expected"`
	Observed struct {
		Action, Category, Group, Rcode, Answer, Detail string
		Status                                         int
	} `json:"observed"`
	Pass bool `json:"pass"`
}

// readSelftest reads the one JSON and one HTML report in dir.
func readSelftest(t *testing.T, dir string) (selftestReport, string, string) {
	t.Helper()
	jsons, _ := filepath.Glob(filepath.Join(dir, "selftest-*.json"))
	htmls, _ := filepath.Glob(filepath.Join(dir, "selftest-*.html"))
	if len(jsons) != 1 || len(htmls) != 1 {
		t.Fatalf("reports in %s: %v %v; want one JSON and one HTML", dir, jsons, htmls)
	}
	raw, err := os.ReadFile(jsons[0])
	if err != nil {
		t.Fatal(err)
	}
	var rep selftestReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("%s: %v", jsons[0], err)
	}
	page, err := os.ReadFile(htmls[0])
	if err != nil {
		t.Fatal(err)
	}
	return rep, string(page), htmls[0]
}

// probesOf returns a group's probes of one kind.
func (r selftestReport) probesOf(group, kind string) []selftestProbe {
	var out []selftestProbe
	for _, p := range r.Probes {
		if p.Group == group && p.Kind == kind {
			out = append(out, p)
		}
	}
	return out
}

// TestSelftest maps loopback addresses to four groups, runs hedgerow
// selftest against a running serve, and reads its reports; then it points
// the self-test's DNS at a plain resolver, as a device whose DNS bypasses
// the filter would use, and checks that the report says so and exits 1.
func TestSelftest(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not installed (apt-get install bind9-dnsutils; .ci/run does): skipping")
	}
	data := t.TempDir()
	mustRun(t, "", "clients", "remove", "127.0.0.0/8", "--data", data, "--reason", "test")
	groups := map[string]string{"ks2": "127.0.0.1", "early-years-ks1": "127.0.1.1", "ks3-ks4": "127.0.2.1", "staff": "127.0.3.1"}
	for g, addr := range groups {
		mustRun(t, "", "clients", "add", addr, g, "--data", data, "--reason", "test")
	}
	// A range this host has no address in, and a group with no range at all
	// whose description needs escaping.
	mustRun(t, "", "clients", "add", "198.51.100.0/24", "sixth-form", "--data", data, "--reason", "test")
	const hostile = `<script>alert('x')</script> & "friends"`
	mustRun(t, "", "groups", "add", "visitors", "--like", "staff", "--description", hostile, "--data", data, "--reason", "test")
	if lists := sharedlists.Dir(); lists != "" {
		mustRun(t, "", "import", filepath.Join(lists, "hagezi/adblock/doh-vpn-proxy-bypass.txt"), "--feed", "hagezi-bypass",
			"--category", "circumvention", "--data", data, "--reason", "<b>bypass</b> list & more")
	} else {
		t.Log(sharedlists.SkipMessage + " (the report lists the starter lists alone)")
	}

	up := upstream(t)
	s := startServeAll(t, data, "--upstream", up)
	dnsAddr := "127.0.0.1:" + strconv.Itoa(s.dns)
	out := t.TempDir()
	stdout, stderr, code := run(t, "", "selftest", "--data", data, "--dns", dnsAddr, "--proxy", s.proxy, "--out", out, "--per-category", "2")
	if code != 0 {
		t.Fatalf("selftest: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "every probe agrees with the policy") {
		t.Errorf("summary: %s", stdout)
	}
	rep, page, htmlPath := readSelftest(t, out)
	if !rep.Summary.Pass || rep.Summary.Failed != 0 || rep.Summary.Probes == 0 {
		t.Fatalf("summary %+v", rep.Summary)
	}

	for _, g := range rep.Groups {
		want, mapped := groups[g.Name]
		switch {
		case mapped && (g.Source != want || g.NotProbed != "" || g.Probes == 0):
			t.Errorf("group %s: source %q, %d probes, not probed %q; want probed from %s", g.Name, g.Source, g.Probes, g.NotProbed, want)
		case g.Name == "sixth-form" && (!strings.Contains(g.NotProbed, "198.51.100.0/24") || !strings.Contains(g.NotProbed, "hedgerow selftest --data DIR --dns FILTER:")):
			t.Errorf("sixth-form: %q; want how to run the check from a device in 198.51.100.0/24", g.NotProbed)
		case g.Name == "visitors" && !strings.Contains(g.NotProbed, "hedgerow clients add RANGE visitors"):
			t.Errorf("visitors: %q; want the advice to map a range", g.NotProbed)
		}
	}
	if len(rep.Groups) != 6 {
		t.Errorf("%d groups in the report; want 6", len(rep.Groups))
	}
	for g, addr := range groups {
		blockedCats := map[string]bool{}
		for _, p := range rep.probesOf(g, "category") {
			if p.Source != addr {
				t.Errorf("%s: probe from %s; want %s", g, p.Source, addr)
			}
			if p.Expected.Action == "blocked" && p.Channel == "dns" {
				if p.Observed.Action != "blocked" || p.Observed.Category != p.Expected.Category {
					t.Errorf("%s %s: observed %+v; want blocked as %s", g, p.Target, p.Observed, p.Expected.Category)
				}
				blockedCats[p.Expected.Category] = true
			}
		}
		if !blockedCats["adult"] || !blockedCats["circumvention"] {
			t.Errorf("%s: blocked category probes %v; want adult and circumvention among them", g, blockedCats)
		}
		if c := rep.probesOf(g, "doh-canary"); len(c) != 1 || c[0].Observed.Rcode != "NXDOMAIN" || c[0].Target != "use-application-dns.net" {
			t.Errorf("%s canary: %+v", g, c)
		}
		if ss := rep.probesOf(g, "safe-search"); len(ss) != 4 {
			t.Errorf("%s: %d safe-search probes; want 4", g, len(ss))
		}
		if c := rep.probesOf(g, "circumvention"); len(c) == 0 {
			t.Errorf("%s: no circumvention probes", g)
		}
		if b := rep.probesOf(g, "proxy-blocked"); len(b) != 1 || b[0].Observed.Status != 403 || b[0].Observed.Group != g {
			t.Errorf("%s proxy-blocked: %+v; want hedgerow's block page naming the group", g, b)
		}
		// No internet here: an allowed site answers 502 from the proxy, which
		// is the filter letting it through.
		if a := rep.probesOf(g, "proxy-allowed"); len(a) != 1 || a[0].Observed.Action != "passed" || a[0].Observed.Status == 403 {
			t.Errorf("%s proxy-allowed: %+v", g, a)
		}
	}
	for _, tt := range []struct {
		group, target, action, answer string
	}{
		{"ks2", "www.google.com", "rewritten", "forcesafesearch.google.com"},
		{"ks2", "www.youtube.com", "rewritten", "restrict.youtube.com"},
		{"ks3-ks4", "www.youtube.com", "rewritten", "restrictmoderate.youtube.com"},
		{"staff", "www.youtube.com", "allowed", ""},
		{"early-years-ks1", "www.google.com", "blocked", ""}, // approved sites only
	} {
		found := false
		for _, p := range rep.probesOf(tt.group, "safe-search") {
			if p.Target == tt.target {
				found = true
				if p.Expected.Action != tt.action || p.Expected.Answer != tt.answer || !p.Pass {
					t.Errorf("%s %s: %+v; want %s %s", tt.group, tt.target, p, tt.action, tt.answer)
				}
			}
		}
		if !found {
			t.Errorf("%s: no safe-search probe of %s", tt.group, tt.target)
		}
	}
	unmapped := rep.probesOf("", "unmapped")
	if rep.Unmapped.Source != "127.0.0.2" || len(unmapped) != 2 {
		t.Fatalf("unmapped source %q, probes %+v; want DNS and proxy probes from 127.0.0.2", rep.Unmapped.Source, unmapped)
	}
	for _, p := range unmapped {
		if p.Observed.Action != "refused" || !p.Pass {
			t.Errorf("unmapped %s probe: %+v; want refused", p.Channel, p)
		}
	}
	if len(rep.Lists) == 0 || rep.Lists[0].ImportedAt == "" || rep.Lists[len(rep.Lists)-1].Name != "starter" {
		t.Errorf("lists: %+v", rep.Lists)
	}

	// The HTML says who, when, where, which version, and escapes what staff typed.
	for _, want := range []string{rep.RanBy, rep.Host, rep.HedgerowVersion, "Lists in service", "starter",
		"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;friends&#34;", "198.51.100.0/24", "use-application-dns.net"} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	if strings.Contains(strings.ToLower(page), "<script") || strings.Contains(page, "<b>bypass") {
		t.Error("HTML report has unescaped markup or a script")
	}
	audit := mustRun(t, "", "audit", "--json", "--limit", "5", "--data", data)
	if !strings.Contains(audit, `"action": "selftest"`) || !strings.Contains(audit, htmlPath) {
		t.Errorf("audit trail does not record the self-test and its report %s:\n%s", htmlPath, audit)
	}

	// A device whose DNS goes to a plain resolver instead of the filter: the
	// blocked names resolve (here NXDOMAIN from the resolver, without the
	// filter's mark), safe search is not enforced, and nothing is refused.
	out2 := t.TempDir()
	stdout, stderr, code = run(t, "", "selftest", "--data", data, "--dns", up, "--proxy", s.proxy, "--out", out2, "--per-category", "2")
	if code != 1 || !strings.Contains(stdout, "DISAGREE") || !strings.Contains(stderr, "disagree with the policy") {
		t.Fatalf("selftest against a plain resolver: exit %d; want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	bad, page2, _ := readSelftest(t, out2)
	if bad.Summary.Pass || bad.Summary.Failed == 0 {
		t.Fatalf("summary %+v; want failures", bad.Summary)
	}
	for _, p := range bad.Probes {
		if !p.Pass && p.Channel != "dns" {
			t.Errorf("%s %s through the proxy failed: %+v; only DNS went elsewhere", p.Group, p.Target, p)
		}
		if p.Channel == "dns" && p.Expected.Action == "blocked" && (p.Pass || p.Observed.Action == "blocked") {
			t.Errorf("%s %s: %+v; want a disagreement (the plain resolver does not block)", p.Group, p.Target, p)
		}
		if p.Kind == "doh-canary" && !p.Pass {
			t.Errorf("%s canary: %+v; the resolver's NXDOMAIN keeps Firefox's DoH off too", p.Group, p)
		}
	}
	if u := bad.probesOf("", "unmapped"); len(u) != 2 || u[0].Channel != "dns" || u[0].Pass || u[1].Channel != "http" || !u[1].Pass {
		t.Errorf("unmapped probes: %+v; want the DNS one failing (a plain resolver answers anyone) and the proxy one passing", u)
	}
	for _, g := range []string{"ks2", "ks3-ks4"} {
		for _, p := range bad.probesOf(g, "safe-search") {
			if p.Target == "www.youtube.com" && (p.Pass || p.Observed.Action != "answered") {
				t.Errorf("%s www.youtube.com through the plain resolver: %+v; want an unrestricted answer, disagreeing", g, p)
			}
		}
	}
	if !strings.Contains(page2, "DISAGREE") || !strings.Contains(page2, `class="fail"`) {
		t.Error("HTML report does not mark the failing probes")
	}
}
