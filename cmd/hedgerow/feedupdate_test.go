package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/categories"
	"hedgerow/e2e/metrictest"
	"hedgerow/store"
	"hedgerow/store/feedupdate"
)

// feedServer serves one domain list with an ETag and Last-Modified (and
// answers conditional requests), or an error status.
type feedServer struct {
	mu       sync.Mutex
	body     string
	etag     string
	modified time.Time
	status   int
	requests int
}

func (fs *feedServer) set(n int, etag string, status int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "site%d.example\n", i)
	}
	fs.body, fs.etag, fs.status = b.String(), etag, status
	fs.modified = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(len(etag)+n) * time.Minute)
}

func (fs *feedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fs.mu.Lock()
	fs.requests++
	body, etag, modified, status := fs.body, fs.etag, fs.modified, fs.status
	fs.mu.Unlock()
	if status != 0 {
		http.Error(w, "trouble", status)
		return
	}
	w.Header().Set("ETag", etag)
	http.ServeContent(w, r, "list.txt", modified, strings.NewReader(body))
}

// TestListsUpdateCommand drives hedgerow lists update through the CLI
// against a list served on loopback: an update after import, a 304, a
// refused shrink, the same forced through, a server error, and the
// listing and audit trail that show them.
func TestListsUpdateCommand(t *testing.T) {
	fs := &feedServer{}
	fs.set(100, `"a"`, 0)
	srv := httptest.NewServer(fs)
	defer srv.Close()
	data := t.TempDir()
	run := func(wantCode int, args ...string) (string, string) {
		t.Helper()
		out, errs, code := runCLI(t, data, "", args...)
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, out, errs)
		}
		return out, errs
	}
	run(0, "import", srv.URL+"/adult.txt", "--feed", "web", "--category", "adult", "--reason", "provider list")

	// The import kept no validators, so the first update downloads.
	out, _ := run(0, "lists", "update")
	if !strings.Contains(out, "web: updated: 0 added, 0 removed, 100 kept; 100 entries") {
		t.Errorf("first update printed %q", out)
	}
	out, _ = run(0, "lists", "update", "web")
	if !strings.Contains(out, "web: not-modified: 100 entries") {
		t.Errorf("second update printed %q", out)
	}

	fs.set(10, `"b"`, 0) // 90% gone
	out, errs := run(1, "lists", "update")
	if !strings.Contains(out, "web: refused: update of feed web would remove 90 of its 100 entries") || !strings.Contains(errs, "1 of 1 feeds not updated") {
		t.Errorf("refused update printed %q / %q", out, errs)
	}
	out, _ = run(0, "lists", "feeds")
	if !strings.Contains(out, "CHECKED") || !strings.Contains(out, "refused") || !strings.Contains(out, "web: refused 1 time(s) since the last success: update of feed web would remove") {
		t.Errorf("lists feeds after a refusal:\n%s", out)
	}
	if out, _ := run(0, "check", "--group", "ks2", "site50.example"); !strings.Contains(out, "block") {
		t.Errorf("a refused update took site50.example off the list: %s", out)
	}

	out, _ = run(0, "lists", "update", "web", "--force", "--json")
	var results []feedupdate.Result
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(results) != 1 || results[0].Result != store.FeedUpdated || results[0].Change != (store.FeedChange{Removed: 90, Kept: 10}) {
		t.Errorf("forced update: %+v", results)
	}

	fs.set(10, `"c"`, http.StatusInternalServerError)
	out, _ = run(1, "lists", "update", "web")
	if !strings.Contains(out, "web: failed: download "+srv.URL+"/adult.txt: HTTP status 500") {
		t.Errorf("failed update printed %q", out)
	}
	out, _ = run(0, "lists", "feeds", "--json")
	var infos []store.FeedInfo
	if err := json.Unmarshal([]byte(out), &infos); err != nil {
		t.Fatal(err)
	}
	for _, f := range infos {
		if f.Name == "web" && (f.LastResult != store.FeedFailed || f.Category != "adult" || f.ETag != `"b"` || f.Domains != 10 || f.Failures != 1) {
			t.Errorf("web after a failed check: %+v", f)
		}
	}
	out, _ = run(0, "audit", "--json", "--limit", "10")
	if !strings.Contains(out, `"feed-update"`) || !strings.Contains(out, `"feed-check"`) || !strings.Contains(out, `"actor": "cli:`) {
		t.Errorf("audit trail lacks the updates:\n%s", out)
	}
	fs.mu.Lock()
	requests := fs.requests
	fs.mu.Unlock()
	if requests != 6 { // import, five updates
		t.Errorf("%d requests to the list server, want 6", requests)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lists", "update", "starter"}, "embedded in hedgerow"},
		{[]string{"lists", "update", "nope"}, "lists update nope: no such feed"},
		{[]string{"lists", "update", "--max-removal", "1.5"}, "--max-removal 1.5; want a fraction"},
		{[]string{"lists", "update", "--timeout", "0s"}, "--timeout 0s"},
	} {
		_, errs, code := runCLI(t, data, "", tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want it to mention %q", tc.args, code, errs, tc.want)
		}
	}
}

// sharedListsDir is ../shared/lists beside the repository, or a skip.
func sharedListsDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "lists"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST.tsv")); err != nil {
		t.Skipf("real lists not available (%s/MANIFEST.tsv: %v); they are fetched separately, see shared/lists/README.md", dir, err)
	}
	return dir
}

// TestFeedUpdatesInServe: serve's metrics have a series for every feed
// from the start, and a scheduled run updates a feed imported from a real
// list by a relative path (kept absolute), then finds it unchanged.
func TestFeedUpdatesInServe(t *testing.T) {
	rel, err := filepath.Rel(mustGetwd(t), filepath.Join(sharedListsDir(t), "sinfonietta", "gambling-hosts"))
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	if out, errs, code := runCLI(t, data, "", "import", rel, "--feed", "gambling", "--category", "gambling", "--reason", "test"); code != 0 {
		t.Fatalf("import: %s %s", out, errs)
	}
	var logs bytes.Buffer
	a := &app{dataDir: data, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, log: slog.New(slog.NewTextHandler(&logs, nil)),
		tax: categories.Builtin(), now: time.Now}
	reg := prometheus.NewRegistry()
	m := a.newFeedMetrics(reg)
	for _, feed := range []string{"starter", "gambling"} {
		if _, ok := metrictest.Value(t, reg, "hedgerow_feed_updates_total", "feed", feed, "result", store.FeedFailed); !ok {
			t.Errorf("no hedgerow_feed_updates_total series for %s at start", feed)
		}
		if v, _ := metrictest.Value(t, reg, "hedgerow_feed_entries", "feed", feed); v == 0 {
			t.Errorf("hedgerow_feed_entries{feed=%q} = 0 at start", feed)
		}
		if v, _ := metrictest.Value(t, reg, "hedgerow_feed_last_success_timestamp_seconds", "feed", feed); v == 0 {
			t.Errorf("no last success for %s at start", feed)
		}
	}
	u, err := feedupdate.New(feedupdate.Options{Open: a.writeExisting, Taxonomy: a.tax, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	all := func(store.FeedInfo) bool { return true }
	a.updateFeeds(context.Background(), u, m, all)
	a.updateFeeds(context.Background(), u, m, all)
	// The catch-up after start skips feeds checked within update_every.
	a.updateFeeds(context.Background(), u, m, func(f store.FeedInfo) bool { return time.Since(f.CheckedAt) > 24*time.Hour })
	want := map[string]float64{store.FeedUpdated: 1, store.FeedNotModified: 1, store.FeedFailed: 0, store.FeedRefused: 0}
	for result, n := range want {
		if v, _ := metrictest.Value(t, reg, "hedgerow_feed_updates_total", "feed", "gambling", "result", result); v != n {
			t.Errorf("gambling %s = %v, want %v\nlog:\n%s", result, v, n, logs.String())
		}
		if v, _ := metrictest.Value(t, reg, "hedgerow_feed_updates_total", "feed", "starter", "result", result); v != 0 {
			t.Errorf("the starter feed was checked (%s = %v)", result, v)
		}
	}
	if !strings.Contains(logs.String(), "list update") || !strings.Contains(logs.String(), "result=not-modified") {
		t.Errorf("log:\n%s", logs.String())
	}
}

func mustGetwd(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestFeedUpdateSchedule(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.ParseInLocation("2006-01-02 15:04", s, london)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := []struct {
		now   string
		every time.Duration
		want  string
	}{
		{"2026-03-04 10:00", 24 * time.Hour, "2026-03-05 02:30"},
		{"2026-03-04 01:00", 24 * time.Hour, "2026-03-04 02:30"},
		{"2026-03-04 02:30", 24 * time.Hour, "2026-03-05 02:30"},
		{"2026-03-04 10:00", 6 * time.Hour, "2026-03-04 14:30"},
		{"2026-03-04 01:00", 6 * time.Hour, "2026-03-04 02:30"},
		{"2026-03-04 23:00", 6 * time.Hour, "2026-03-05 02:30"},
		{"2026-03-04 10:00", 168 * time.Hour, "2026-03-05 02:30"},
	}
	for _, tc := range first {
		if got := firstFeedUpdate(at(tc.now), 2, 30, tc.every); !got.Equal(at(tc.want)) {
			t.Errorf("first after %s every %s = %s, want %s", tc.now, tc.every, got.Format(time.DateTime), tc.want)
		}
	}
	next := []struct {
		prev, now string
		every     time.Duration
		want      string
	}{
		{"2026-03-04 02:30", "2026-03-04 02:31", 24 * time.Hour, "2026-03-05 02:30"},
		{"2026-03-28 02:30", "2026-03-28 02:35", 24 * time.Hour, "2026-03-29 02:30"}, // clocks go forward that night
		{"2026-10-24 02:30", "2026-10-24 02:35", 24 * time.Hour, "2026-10-25 02:30"}, // and back
		{"2026-03-02 02:30", "2026-03-04 10:00", 24 * time.Hour, "2026-03-05 02:30"}, // missed slots skipped
		{"2026-03-04 02:30", "2026-03-04 15:00", 6 * time.Hour, "2026-03-04 20:30"},
		{"2026-03-05 02:30", "2026-03-05 02:40", 168 * time.Hour, "2026-03-12 02:30"},
	}
	for _, tc := range next {
		if got := nextFeedUpdate(at(tc.prev), at(tc.now), tc.every); !got.Equal(at(tc.want)) {
			t.Errorf("next after %s (now %s) every %s = %s, want %s", tc.prev, tc.now, tc.every, got.Format(time.DateTime), tc.want)
		}
	}
}

func TestFeedsConfig(t *testing.T) {
	d := DefaultConfig().Feeds
	if d.UpdateEvery.D() != 24*time.Hour || d.UpdateAt != "02:30" || d.MaxRemoval != 0.5 || d.Timeout.D() != 10*time.Minute {
		t.Errorf("defaults %+v", d)
	}
	c, err := LoadConfig(writeConfig(t, "feeds:\n  update_every: 6h\n  update_at: \"23:05\"\n  max_removal: 0.8\n  timeout: 30m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Feeds != (FeedsConfig{UpdateEvery: Duration(6 * time.Hour), UpdateAt: "23:05", MaxRemoval: 0.8, Timeout: Duration(30 * time.Minute)}) {
		t.Errorf("loaded %+v", c.Feeds)
	}
	if c, _ := LoadConfig(writeConfig(t, "feeds:\n  update_every: 0s\n")); c.Validate() != nil {
		t.Errorf("update_every 0 (by hand only) refused: %v", c.Validate())
	}
	bad := []struct {
		yaml, want string
	}{
		{"feeds:\n  update_every: 30m\n", "feeds.update_every: 30m0s; want 0 (by hand only) or at least 1h"},
		{"feeds:\n  update_every: -1h\n", "feeds.update_every: -1h0m0s"},
		{"feeds:\n  update_at: \"2:30\"\n", `feeds.update_at: "2:30"; want a local time HH:MM`},
		{"feeds:\n  update_at: \"24:00\"\n", `feeds.update_at: "24:00"`},
		{"feeds:\n  update_at: \"02:60\"\n", `feeds.update_at: "02:60"`},
		{"feeds:\n  update_at: \"\"\n", `feeds.update_at: ""`},
		{"feeds:\n  max_removal: 0\n", "feeds.max_removal: 0; want a fraction above 0 and at most 1"},
		{"feeds:\n  max_removal: 1.5\n", "feeds.max_removal: 1.5"},
		{"feeds:\n  timeout: 1s\n", "feeds.timeout: 1s; want from 10s to 24h"},
	}
	for _, tc := range bad {
		c, err := LoadConfig(writeConfig(t, tc.yaml))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want it to mention %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := LoadConfig(writeConfig(t, "feeds:\n  max_removal: half\n")); err == nil || !strings.Contains(err.Error(), "feeds.max_removal") || !strings.Contains(err.Error(), "a number") {
		t.Errorf("max_removal: half: %v", err)
	}
}
