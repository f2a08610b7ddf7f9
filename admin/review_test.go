package admin

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hedgerow/store"
)

func TestDigestAndSelftestPages(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	e.srv.cfg.SelftestDir = dir
	now := time.Now().UTC()
	e.write(func(s *store.Store) error {
		return s.SaveIncidents([]store.Incident{{First: now, Last: now, Count: 4, Channel: "dns", Client: "10.0.0.1", Group: "ks2",
			Host: "a.example", Category: "self-harm", Severity: "high", Rule: "category", Blocked: true, Review: true, State: store.StateNew}})
	})
	b := e.browser().login("vic")
	resp, page := b.get("/digest")
	if resp.StatusCode != 200 || !strings.Contains(page, "self-harm") || !strings.Contains(page, "<strong>1</strong> incidents wait for review") {
		t.Errorf("digest: %d\n%s", resp.StatusCode, page)
	}
	if strings.Contains(page, "10.0.0.1") {
		t.Error("the digest shows a device")
	}
	if _, page := b.get("/selftests"); !strings.Contains(page, "No self-test has been run yet") {
		t.Errorf("empty self-tests page:\n%s", page)
	}
	name := "selftest-20261123-101500.html"
	if err := os.WriteFile(filepath.Join(dir, name), []byte("<html>report</html>"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.html"), []byte("private"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, page := b.get("/selftests"); !strings.Contains(page, name) || strings.Contains(page, "notes.html") {
		t.Errorf("self-tests page lists the wrong files:\n%s", page)
	}
	resp, body := b.get("/selftests/" + name)
	if resp.StatusCode != 200 || body != "<html>report</html>" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("report: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Security-Policy"))
	}
	for _, bad := range []string{"notes.html", "..%2Fhedgerow.db", "selftest-20261123-101500.html.bak"} {
		if resp, _ := b.get("/selftests/" + bad); resp.StatusCode != http.StatusNotFound {
			t.Errorf("/selftests/%s: %d, want 404", bad, resp.StatusCode)
		}
	}
}
