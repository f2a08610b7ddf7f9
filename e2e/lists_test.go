package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"hedgerow/categories"
	"hedgerow/categories/listfile"
	"hedgerow/e2e/sharedlists"
)

// importSharedLists imports every list of ../shared/lists through the CLI,
// the way the README tells IT staff to, and returns how long it took.
func importSharedLists(t *testing.T, lists, data string) time.Duration {
	t.Helper()
	start := time.Now()
	mustRun(t, "", "import", filepath.Join(lists, "ut1"), "--data", data, "--feed", sharedlists.UT1Feed,
		"--reason", "UT1 blacklists")
	for _, f := range sharedlists.Files {
		mustRun(t, "", "import", filepath.Join(lists, f.Path), "--data", data, "--feed", f.Feed,
			"--category", f.Category, "--reason", "shared list "+f.Path)
	}
	return time.Since(start)
}

// expectation is one line fed to `hedgerow check -` and the category its
// verdict must carry.
type expectation struct {
	input    string
	category string
}

// TestRealListsAgree imports every real list and checks that `hedgerow
// check` blocks every listed domain (and subdomains, and URL prefixes) for a
// group that blocks its category, and allows well-known benign sites for ks2.
func TestRealListsAgree(t *testing.T) {
	lists := sharedlists.Dir()
	if lists == "" {
		t.Skip(sharedlists.SkipMessage)
	}
	data := t.TempDir()
	took := importSharedLists(t, lists, data)
	t.Logf("imported all of %s in %.1fs", lists, took.Seconds())

	// A group that blocks every block category, so every listed entry must block.
	tax := categories.Builtin()
	mustRun(t, "", "groups", "add", "everything", "--like", "staff", "--data", data, "--reason", "test")
	var low []string
	for _, c := range tax.All() {
		if c.Kind == categories.KindBlock && c.Severity == categories.SeverityLow {
			low = append(low, c.Slug)
		}
	}
	mustRun(t, "", append([]string{"groups", "block", "everything", "--data", data, "--reason", "test"}, low...)...)

	var want []expectation
	collect := func(source string, opts listfile.Options) {
		n := 0
		_, err := listfile.Read(context.Background(), source, opts, func(e listfile.Entry) error {
			c, ok := tax.Lookup(e.Category)
			if !ok || c.Kind != categories.KindBlock || e.Allow {
				return nil
			}
			n++
			host, path, isURL := strings.Cut(e.Target, "/")
			switch {
			case isURL:
				want = append(want, expectation{"http://" + host + "/" + path, e.Category})
				if n%10 == 0 && !isIP(host) {
					want = append(want, expectation{"http://www." + host + "/" + strings.TrimSuffix(path, "/") + "/more?q=1", e.Category})
				}
			default:
				want = append(want, expectation{e.Target, e.Category})
				if n%10 == 0 && !isIP(host) {
					want = append(want, expectation{"Sub-" + fmt.Sprint(n) + "." + strings.ToUpper(e.Target) + ".", e.Category})
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("reading %s: %v", source, err)
		}
	}
	collect(filepath.Join(lists, "ut1"), listfile.Options{})
	for _, f := range sharedlists.Files {
		collect(filepath.Join(lists, f.Path), listfile.Options{Category: f.Category})
	}
	t.Logf("checking %d targets", len(want))

	var stdin strings.Builder
	for _, w := range want {
		stdin.WriteString(w.input)
		stdin.WriteByte('\n')
	}
	cmd := exec.Command(hedgerowBinary(t), "check", "--data", data, "--group", "everything", "--json", "-")
	cmd.Stdin = strings.NewReader(stdin.String())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	checkStart := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	i, failures, trusted := 0, 0, 0
	for sc.Scan() {
		var r struct {
			Input, Action, Rule string
			Categories          []string
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d of check output: %v", i+1, err)
		}
		if i >= len(want) {
			t.Fatalf("more verdicts than inputs")
		}
		w := want[i]
		if r.Input == w.input && r.Action == "allow" && r.Rule == "school-allow" && slices.Contains(r.Categories, w.category) {
			trusted++ // the default trusted-education allow list overrides a false positive
		} else if r.Input != w.input || r.Action != "block" || !slices.Contains(r.Categories, w.category) {
			failures++
			if failures <= 10 {
				t.Errorf("%s: got %s %v, want block in %s", w.input, r.Action, r.Categories, w.category)
			}
		}
		i++
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("hedgerow check: %v", err)
	}
	if i != len(want) {
		t.Fatalf("got %d verdicts for %d inputs", i, len(want))
	}
	if failures > 0 {
		t.Errorf("%d of %d listed targets were not blocked", failures, len(want))
	}
	t.Logf("%d verdicts in %.1fs; %d listed targets allowed by the default school-wide trusted list", i, time.Since(checkStart).Seconds(), trusted)

	// Clearly benign sites a lesson needs: news, government, encyclopaedias,
	// educational publishers, museums, exam boards.
	benign := []string{
		"www.bbc.co.uk", "https://www.bbc.co.uk/bitesize", "www.gov.uk", "www.nhs.uk", "en.wikipedia.org",
		"www.britannica.com", "www.nationalgeographic.com", "www.nasa.gov", "www.theguardian.com",
		"www.oup.com", "www.cambridge.org", "www.pearson.com", "www.collinsdictionary.com",
		"www.khanacademy.org", "www.scratch.mit.edu", "www.nhm.ac.uk", "www.sciencemuseum.org.uk",
		"www.aqa.org.uk", "www.ocr.org.uk", "www.metoffice.gov.uk", "www.parliament.uk",
		"www.ox.ac.uk", "www.open.ac.uk", "www.reuters.com", "www.timestables.co.uk",
		"www.oxfordowl.co.uk", "www.twinkl.co.uk", "www.natgeokids.com", "www.rspb.org.uk", "www.nspcc.org.uk",
	}
	out := mustRun(t, strings.Join(benign, "\n")+"\n", "check", "--data", data, "--group", "ks2", "--json", "-")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct{ Input, Action, Reason string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Action != "allow" {
			t.Errorf("benign %s for ks2: %s (%s)", r.Input, r.Action, r.Reason)
		}
	}
}

func isIP(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	return strings.Contains(host, ":") || strings.Trim(last, "0123456789") == ""
}
