package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"hedgerow/categories"
	"hedgerow/store"
)

// TestBrowserAdmin drives the admin UI in headless Chromium against
// hedgerow serve on loopback, as IT staff and the DSL would: log in, block
// a category for a group and see dig change, add and remove a domain,
// approve an unblock request, review an incident with a note, export CSV.
// Screenshots of each page are kept in e2e/artifacts.
func TestBrowserAdmin(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("no chromium, chromium-browser or google-chrome in PATH or /usr/bin (apt-get install chromium; .ci/run does): skipping the browser test")
	}
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not installed (apt-get install bind9-dnsutils; .ci/run does): skipping the browser test")
	}
	data := t.TempDir()
	mustRun(t, "", "lists", "add", "videos.test", "--category", "streaming", "--data", data, "--reason", "test")
	mustRun(t, "", "lists", "add", "wrongly-blocked.test", "--category", "games", "--data", data, "--reason", "test")
	passwords := map[string]string{}
	for _, u := range [][]string{{"ada", "admin"}, {"dora", "dsl"}} {
		out := mustRun(t, "", "users", "add", u[0], "--role", u[1], "--generate", "--data", data, "--reason", "test")
		m := regexp.MustCompile(`(?m)password[^:]*:\s*(\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no generated password in:\n%s", out)
		}
		passwords[u[0]] = m[1]
	}
	// A pupil asked for a games site to be unblocked from the block page.
	db, err := store.Open(filepath.Join(data, "hedgerow.db"), categories.Builtin(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddReport(store.Report{Kind: store.ReportUnblock, Client: "127.0.0.1", Group: "ks2", Host: "wrongly-blocked.test",
		URL: "http://wrongly-blocked.test/", Category: "games", Message: "It is the maths game from our lesson"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	up, _ := startUnbound(t, []string{"ready.test. 300 IN A 127.0.0.1", "videos.test. 300 IN A 127.0.0.1",
		"added.test. 300 IN A 127.0.0.1", "wrongly-blocked.test. 300 IN A 127.0.0.1"}, "ready.test")
	s := startServeAll(t, data, "--upstream", up)
	// The incident the DSL reviews.
	if r := dig(t, s.dns, "-b", "127.0.0.1", "pornhub.com"); r.status != "NXDOMAIN" {
		t.Fatalf("pornhub.com: %s", r.status)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.Headless,
		chromedp.NoSandbox, chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1024, 1200))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	arts := artifactDir(t)
	type step = chromedp.Action[chromedp.Void]
	shot := func(name string) step {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 makes a PNG
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(arts, "admin-"+name+".png"), png, 0o644)
		})
	}
	run := func(what string, steps ...step) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			body, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("main")))
			t.Fatalf("%s: %v\npage:\n%.3000s", what, err, body)
		}
	}
	confirmAll := func() {
		t.Helper()
		// The remove buttons ask "are you sure?" in a dialog.
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool]("(window.confirm = () => true, true)")); err != nil {
			t.Fatal(err)
		}
	}
	// dnsChanges waits (bounded) for a name's answer to become want and
	// reports how long the edit took to reach the filter.
	dnsChanges := func(name, want string) {
		t.Helper()
		start := time.Now()
		for dig(t, s.dns, "-b", "127.0.0.1", name).status != want {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%s did not become %s within 10s of the edit", name, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s became %s %v after the edit was saved", name, want, time.Since(start).Round(time.Millisecond))
	}
	flash := chromedp.WaitVisible(chromedp.CSS(".flash"))
	login := func(user string) {
		run("log in as "+user,
			chromedp.Navigate(s.admin+"/login"),
			chromedp.SendKeys(chromedp.ID("name"), user),
			chromedp.SendKeys(chromedp.ID("password"), passwords[user]),
			chromedp.Submit(chromedp.ID("password")),
			chromedp.WaitVisible(chromedp.CSS(".tiles")),
			shot(user+"-dashboard"))
	}

	login("ada")
	// Block streaming for ks2 in the matrix.
	if r := dig(t, s.dns, "-b", "127.0.0.1", "videos.test"); r.status != "NOERROR" {
		t.Fatalf("videos.test before the edit: %s", r.status)
	}
	run("block streaming for ks2",
		chromedp.Navigate(s.admin+"/policies"),
		chromedp.Click(chromedp.ID("m-ks2-streaming")),
		chromedp.SendKeys(chromedp.ID("m-reason"), "Year 5 parents' request"),
		shot("policies"),
		chromedp.Submit(chromedp.ID("m-reason")),
		flash)
	dnsChanges("videos.test", "NXDOMAIN")

	// Add a domain, then remove it.
	run("add a domain",
		chromedp.Navigate(s.admin+"/lists"),
		chromedp.SendKeys(chromedp.ID("add-target"), "added.test"),
		chromedp.SetValue(chromedp.ID("add-cat"), "adult"),
		chromedp.SendKeys(chromedp.ID("add-reason"), "reported by the Year 6 teacher"),
		chromedp.Submit(chromedp.ID("add-reason")),
		flash,
		shot("lists-added"))
	dnsChanges("added.test", "NXDOMAIN")
	run("find the domain", chromedp.Navigate(s.admin+"/lists?q=added.test"))
	confirmAll()
	run("remove the domain",
		chromedp.SendKeys(chromedp.CSS(`form[action="/lists/entries/remove"] input[name="reason"]`), "added by mistake"),
		chromedp.Click(chromedp.CSS(`form[action="/lists/entries/remove"] button`)),
		flash,
		shot("lists-removed"))
	dnsChanges("added.test", "NOERROR")

	// Approve the unblock request: an allow override for ks2.
	if r := dig(t, s.dns, "-b", "127.0.0.1", "wrongly-blocked.test"); r.status != "NXDOMAIN" {
		t.Fatalf("wrongly-blocked.test before approval: %s", r.status)
	}
	run("approve the unblock request",
		chromedp.Navigate(s.admin+"/requests"),
		chromedp.SendKeys(chromedp.ID("an-1"), "the maths game is part of the scheme of work"),
		shot("requests"),
		chromedp.Submit(chromedp.ID("an-1")),
		flash)
	dnsChanges("wrongly-blocked.test", "NOERROR")
	// The yearly filtering check, run from the UI.
	run("run a self-test",
		chromedp.Navigate(s.admin+"/selftests"),
		chromedp.Click(chromedp.CSS(`form[action="/selftests/run"] button`)),
		flash,
		shot("selftests"))
	if text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("main"))); err != nil || !strings.Contains(text, "Self-test done") || !strings.Contains(text, "selftest-") {
		t.Errorf("after running a self-test: %v\n%s", err, text)
	}
	run("log out", chromedp.Click(chromedp.CSS(".logout button")), chromedp.WaitVisible(chromedp.ID("name")))

	// The DSL reviews the incident with a note and exports CSV.
	login("dora")
	run("review the incident",
		chromedp.Navigate(s.admin+"/incidents"),
		chromedp.WaitVisible(chromedp.CSS("table.incidents")),
		shot("incidents"),
		chromedp.Click(chromedp.CSS("table.incidents tbody tr td a")),
		chromedp.WaitVisible(chromedp.ID("note")),
		chromedp.Click(chromedp.CSS(`input[name="state"][value="reviewed"]`)),
		chromedp.SendKeys(chromedp.ID("note"), "spoke to the class teacher <b>"),
		chromedp.Submit(chromedp.ID("note")),
		flash,
		shot("incident-reviewed"))
	text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "spoke to the class teacher <b>") || !strings.Contains(text, "127.0.0.1") {
		t.Errorf("the reviewed incident page does not show the note and the device:\n%s", text)
	}
	cookies, err := chromedp.Call(bctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.admin}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.admin+"/incidents/export?format=csv", nil)
	for _, c := range cookies.Cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	csv, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(csv), "pornhub.com") || !strings.Contains(string(csv), "reviewed") {
		t.Errorf("CSV export: %d\n%s", resp.StatusCode, csv)
	}
	// Who changed what is in the audit log, with the reasons given.
	audit := mustRun(t, "", "audit", "--json", "--limit", "50", "--data", data)
	for _, want := range []string{"Year 5 parents' request", "reported by the Year 6 teacher", "added by mistake", "incidents-export"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit log lacks %q", want)
		}
	}
}
