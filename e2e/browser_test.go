package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// findChromium returns the path of a Chromium or Chrome binary, or "".
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if p := filepath.Join("/usr/bin", name); isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// artifactDir is where a test keeps files for people to look at afterwards:
// $HEDGEROW_ARTIFACTS, or e2e/artifacts next to this file.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HEDGEROW_ARTIFACTS")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artefact directory: %v", err)
	}
	return dir
}

// lockedBuffer collects the browser's output, written from another goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBrowserBlockPageReport drives headless Chromium through hedgerow's
// proxy: a blocked site shows the block page, and the "this page should not
// be blocked" form files a report that `hedgerow reports` lists.
//
// pornhub.com is on Chromium's HSTS preload list, so the browser never asks
// for http://pornhub.com/: it goes straight to https://, and only a group
// that intercepts with the school CA sees the block page there (without it
// the CONNECT is refused and Chromium shows its own tunnel error). The
// plain-HTTP block page is tested with a hand-listed host that is not
// preloaded.
func TestBrowserBlockPageReport(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("no chromium, chromium-browser or google-chrome in PATH or /usr/bin (apt-get install chromium; .ci/run does): skipping the browser test")
	}
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not installed (apt-get install bind9-dnsutils; .ci/run does): skipping the browser test")
	}
	data := t.TempDir()
	if out := mustRun(t, "", "clients", "list", "--data", data); !strings.Contains(out, "127.0.0.0/8") {
		mustRun(t, "", "clients", "add", "127.0.0.0/8", "ks2", "--data", data, "--reason", "test")
	}
	mustRun(t, "", "lists", "add", "plain-http.example", "--category", "adult", "--data", data, "--reason", "test")
	mustRun(t, "", "ca", "init", "--data", data)
	mustRun(t, "", "groups", "proxy", "ks2", "--intercept", "on", "--data", data, "--reason", "test")
	caPEM, err := os.ReadFile(filepath.Join(data, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caPEM)
	if block == nil {
		t.Fatalf("ca.crt holds no PEM block:\n%s", caPEM)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caSPKI := sha256.Sum256(ca.RawSubjectPublicKeyInfo)

	// The proxy decides blocked hosts before any lookup, so the upstream only
	// has to be there for serve to start.
	up, _ := startUnbound(t, []string{"ready.example. 300 IN A 192.0.2.1"}, "ready.example")
	s := startServeAll(t, data, "--upstream", up)

	var browserLog lockedBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root in CI
		chromedp.Flag("disable-gpu", true),
		chromedp.ProxyServer("http://"+s.proxy),
		// Chromium never proxies loopback unless told to; nothing else
		// may go round the proxy either.
		chromedp.Flag("proxy-bypass-list", "<-loopback>"),
		chromedp.Flag("disable-quic", true),
		// Trust the school CA, as a school's devices do, for this browser
		// only: certificates whose chain holds its key are accepted (the
		// proxy sends the CA with each leaf). It works only with a
		// --user-data-dir, which chromedp always gives.
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(caSPKI[:])),
		// No automatic upgrade of http:// to https:// for hosts that are
		// not preloaded: plain-http.example must stay plain.
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,HttpsUpgrades,HttpsFirstBalancedModeAutoEnable"),
		chromedp.WindowSize(1024, 900),
		chromedp.CombinedOutput(&browserLog),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	defer func() {
		if t.Failed() {
			t.Logf("chromium output:\n%s", browserLog.String())
		}
	}()
	arts := artifactDir(t)

	for _, tc := range []struct {
		name, typed, host, url, shot string
	}{
		{"https intercepted with the school CA", "http://pornhub.com/", "pornhub.com", "https://pornhub.com/", "browser-https"},
		{"plain http", "http://plain-http.example/", "plain-http.example", "http://plain-http.example/", "browser-http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			message := "I need " + tc.host + " for my homework on the Romans."
			reportThroughBrowser(t, bctx, tc.typed, tc.url, message, filepath.Join(arts, tc.shot))
			var reports []struct {
				Kind, Host, URL, Group, Category, Message, State string
			}
			out := mustRun(t, "", "reports", "--json", "--data", data)
			if err := json.Unmarshal([]byte(out), &reports); err != nil {
				t.Fatalf("hedgerow reports --json: %v\n%s", err, out)
			}
			found := false
			for _, r := range reports {
				if r.Kind == "unblock" && r.Host == tc.host && r.Message == message {
					found = true
					if r.Group != "ks2" || r.Category != "Pornography and adult content" || r.State != "new" || r.URL != tc.url {
						t.Errorf("report %+v: want group ks2, the category's name, state new and URL %s", r, tc.url)
					}
				}
			}
			if !found {
				t.Errorf("no unblock report for %s with the message in:\n%s", tc.host, out)
			}
		})
	}
}

// reportThroughBrowser opens typed in the browser, checks that the block
// page for wantURL comes back, reaches the unblock form with the keyboard,
// types message into it and sends it with a click, and checks the thank-you
// page. It keeps screenshots of both pages as shot+"-block.png" (filled in)
// and shot+"-thanks.png".
func reportThroughBrowser(t *testing.T, bctx context.Context, typed, wantURL, message, shot string) {
	t.Helper()
	screenshot := func(path string) {
		t.Helper()
		buf, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", path, err)
		}
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}

	// The block page.
	resp, err := chromedp.Run(bctx, chromedp.NavigateResponse(typed))
	if err != nil {
		t.Fatalf("opening %s through the proxy: %v", typed, err)
	}
	if resp.Status != 403 || resp.URL != wantURL {
		t.Errorf("opening %s: status %d from %s, want 403 from %s", typed, resp.Status, resp.URL, wantURL)
	}
	heading, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil {
		t.Fatal(err)
	}
	if heading != "This page is blocked" {
		t.Errorf("heading %q, want %q", heading, "This page is blocked")
	}
	lead, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(".lead")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lead, "pornography and adult content") {
		t.Errorf("the block page does not name the category: %q", lead)
	}
	details, err := chromedp.Run(bctx, chromedp.TextContent(chromedp.CSS("details dl")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{wantURL, "Pornography and adult content (high)", "ks2"} {
		if !strings.Contains(details, want) {
			t.Errorf("the teachers' details lack %q: %q", want, details)
		}
	}

	// The keyboard reaches the form: the first Tab lands in the unblock
	// box, which is labelled, and the next Tab reaches its button.
	if err := chromedp.Do(bctx, chromedp.KeyEvent("\t")); err != nil {
		t.Fatal(err)
	}
	focused, err := chromedp.Run(bctx, chromedp.Evaluate[string](
		`document.activeElement.id + "|" + (document.activeElement.labels[0] || {}).textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if focused != "unblock-message|Why do you need it?" {
		t.Errorf("after one Tab, focus is on %q, want the labelled unblock box", focused)
	}
	if err := chromedp.Do(bctx, chromedp.KeyEvent(message), chromedp.KeyEvent("\t")); err != nil {
		t.Fatal(err)
	}
	focused, err = chromedp.Run(bctx, chromedp.Evaluate[string](
		`document.activeElement.form.className + "|" + document.activeElement.textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if focused != "unblock|Ask IT to check this page" {
		t.Errorf("after the box, Tab reaches %q, want the unblock button", focused)
	}
	typedText, err := chromedp.Run(bctx, chromedp.Value(chromedp.ID("unblock-message")))
	if err != nil {
		t.Fatal(err)
	}
	if typedText != message {
		t.Errorf("typed into the box %q, want %q", typedText, message)
	}
	screenshot(shot + "-block.png") // with the message typed and the button focused

	// Submit it with a click and get the thank-you page.
	resp, err = chromedp.RunResponse(bctx, chromedp.Click(chromedp.CSS("form.unblock button[type=submit]"), chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("submitting the unblock form: %v", err)
	}
	if want := strings.TrimSuffix(wantURL, "/") + "/.well-known/hedgerow/report"; resp.Status != 200 || resp.URL != want {
		t.Errorf("the form's answer: status %d from %s, want 200 from %s", resp.Status, resp.URL, want)
	}
	thanks, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Thank you", "We have asked IT at your school to look at this page."} {
		if !strings.Contains(thanks, want) {
			t.Errorf("the thank-you page lacks %q:\n%s", want, thanks)
		}
	}
	screenshot(shot + "-thanks.png")
}
