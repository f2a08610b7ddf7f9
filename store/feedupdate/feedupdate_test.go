package feedupdate

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/categories"
	"hedgerow/e2e/metrictest"
	"hedgerow/store"
)

var tax = categories.Builtin()

// testDB is a database in a temporary directory, opened for each use the
// way serve opens it (writeExisting).
type testDB struct {
	path string
}

func newDB(t testing.TB) *testDB {
	t.Helper()
	db := &testDB{path: filepath.Join(t.TempDir(), "hedgerow.db")}
	s, err := store.Open(db.path, tax, store.Options{Defaults: store.Defaults{Policy: categories.DefaultPolicy(tax)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return db
}

func (db *testDB) open(fn func(*store.Store) error) error {
	s, err := store.Open(db.path, tax, store.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s)
}

// register creates a feed as `hedgerow import` would, with the given
// entries (domains in the feed's category).
func (db *testDB) register(t testing.TB, info store.FeedInfo, domains []string) store.FeedInfo {
	t.Helper()
	if info.Reason == "" {
		info.Reason = "test feed"
	}
	f := store.NewFeed(info)
	if len(domains) > 0 {
		m, err := tax.MaskOf(info.Category)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range domains {
			f.Add(d, m)
		}
	}
	if err := db.open(func(s *store.Store) error { _, err := s.ReplaceFeed("cli:tester", f); return err }); err != nil {
		t.Fatal(err)
	}
	return f.Info
}

func (db *testDB) info(t testing.TB, name string) store.FeedInfo {
	t.Helper()
	var info store.FeedInfo
	if err := db.open(func(s *store.Store) (err error) { info, err = s.FeedByName(name); return err }); err != nil {
		t.Fatal(err)
	}
	return info
}

// entries lists which of n0.example ... n199.example the feed holds,
// sorted.
func (db *testDB) entries(t testing.TB, name string) []string {
	t.Helper()
	var out []string
	err := db.open(func(s *store.Store) error {
		for _, target := range names(0, 200) {
			found, err := s.Find(target, "")
			if err != nil {
				return err
			}
			for _, f := range found {
				if f.Feed == name && f.Entry == target {
					out = append(out, f.Entry)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func (db *testDB) auditActions(t testing.TB) []string {
	t.Helper()
	var recs []store.AuditRecord
	if err := db.open(func(s *store.Store) (err error) { recs, err = s.Audit(0); return err }); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Action)
	}
	return out
}

// names returns n<from>.example ... n<to-1>.example, sorted as stored.
func names(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("n%d.example", i))
	}
	slices.Sort(out)
	return out
}

func domainList(ds []string) []byte {
	return []byte("# a test list\n" + strings.Join(ds, "\n") + "\n")
}

// listServer serves one list with an ETag and a Last-Modified, answers
// conditional requests as a web server does, and counts requests.
type listServer struct {
	mu       sync.Mutex
	body     []byte
	etag     string
	modified time.Time
	status   int    // non-zero: answer this instead
	cut      bool   // declare the whole length, send half, hang up
	raw      []byte // non-nil: send this body with a 200, no validators
	requests int
	lastReq  http.Header
	block    chan struct{} // non-nil: hold the response until the client gives up
}

func (ls *listServer) set(body []byte, etag string, modified time.Time) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.body, ls.etag, ls.modified, ls.status, ls.cut, ls.raw = body, etag, modified, 0, false, nil
}

func (ls *listServer) with(fn func(*listServer)) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	fn(ls)
}

func (ls *listServer) count() (int, http.Header) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.requests, ls.lastReq
}

func (ls *listServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ls.mu.Lock()
	ls.requests++
	ls.lastReq = r.Header.Clone()
	body, etag, modified, status, cut, raw, block := ls.body, ls.etag, ls.modified, ls.status, ls.cut, ls.raw, ls.block
	ls.mu.Unlock()
	if block != nil {
		select {
		case <-r.Context().Done():
		case <-block:
		}
		return
	}
	switch {
	case status != 0:
		http.Error(w, "internal trouble", status)
	case raw != nil:
		_, _ = w.Write(raw)
	case cut:
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body[:len(body)/2])
	default:
		w.Header().Set("ETag", etag)
		// ServeContent answers If-None-Match and If-Modified-Since.
		http.ServeContent(w, r, "list.txt", modified, bytes.NewReader(body))
	}
}

func newUpdater(t testing.TB, db *testDB, reg prometheus.Registerer, opts Options) *Updater {
	t.Helper()
	opts.Open, opts.Taxonomy, opts.TempDir = db.open, tax, t.TempDir()
	if reg != nil {
		opts.Metrics = NewMetrics(reg)
	}
	u, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// seriesCount counts the series of a gathered metric.
func seriesCount(t testing.TB, g prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestUpdateFromHTTP walks one feed through the life of a nightly update:
// a first download, an unchanged list, a changed one, a server error, cut
// off and garbage downloads, a list that lost most of its entries, and
// that list forced through.
func TestUpdateFromHTTP(t *testing.T) {
	ls := &listServer{}
	srv := httptest.NewServer(ls)
	defer srv.Close()
	db := newDB(t)
	reg := prometheus.NewRegistry()
	u := newUpdater(t, db, reg, Options{})
	db.register(t, store.FeedInfo{Name: "porn", Source: srv.URL + "/lists/porn.txt", Format: "domains", Category: "adult"}, nil)
	u.opts.Metrics.SetFeeds([]store.FeedInfo{db.info(t, "porn")})

	t0 := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	v1, v2 := names(0, 100), append(names(5, 100), names(100, 110)...)
	slices.Sort(v2)
	lost := names(5, 26) // 21 of v2's 105 left: 80% gone
	steps := []struct {
		name      string
		serve     func()
		force     bool
		want      string
		wantErr   string
		entries   []string
		change    store.FeedChange
		etag      string // stored afterwards
		condition bool   // the request carried If-None-Match and If-Modified-Since
	}{
		{name: "first update imports", serve: func() { ls.set(domainList(v1), `"v1"`, t0) },
			want: store.FeedUpdated, entries: v1, change: store.FeedChange{Added: 100}, etag: `"v1"`},
		{name: "unchanged: 304, nothing changes", want: store.FeedNotModified, entries: v1, etag: `"v1"`, condition: true},
		{name: "changed with a new ETag", serve: func() { ls.set(domainList(v2), `"v2"`, t0.Add(time.Hour)) },
			want: store.FeedUpdated, entries: v2, change: store.FeedChange{Added: 10, Removed: 5, Kept: 95}, etag: `"v2"`, condition: true},
		{name: "server error", serve: func() { ls.with(func(ls *listServer) { ls.status = 500 }) },
			want: store.FeedFailed, wantErr: "HTTP status 500", entries: v2, etag: `"v2"`, condition: true},
		{name: "cut-off download", serve: func() {
			ls.set(domainList(v1), `"v3"`, t0.Add(2*time.Hour))
			ls.with(func(ls *listServer) { ls.cut = true })
		},
			want: store.FeedFailed, wantErr: "unexpected EOF", entries: v2, etag: `"v2"`, condition: true},
		{name: "truncated gzip", serve: func() {
			gz := gzipped(t, domainList(names(0, 5000)))
			ls.with(func(ls *listServer) { ls.raw = gz[:len(gz)/2] })
		}, want: store.FeedFailed, wantErr: "unexpected EOF", entries: v2, etag: `"v2"`, condition: true},
		{name: "garbage: an HTML error page", serve: func() {
			ls.with(func(ls *listServer) {
				ls.raw = []byte("<html>\n<body>\n<h1>Sorry, the list moved</h1>\n</body>\n</html>\n")
			})
		}, want: store.FeedFailed, wantErr: "is it still a domains list", entries: v2, etag: `"v2"`, condition: true},
		{name: "a list that lost 80% is refused", serve: func() { ls.set(domainList(lost), `"v4"`, t0.Add(3*time.Hour)) },
			want: store.FeedRefused, wantErr: "would remove 84 of its 105 entries", entries: v2,
			change: store.FeedChange{Removed: 84, Kept: 21}, etag: `"v2"`, condition: true},
		{name: "refused again: the refused copy's ETag was not kept", want: store.FeedRefused, entries: v2, etag: `"v2"`,
			change: store.FeedChange{Removed: 84, Kept: 21}, condition: true},
		{name: "forced through", force: true, want: store.FeedUpdated, entries: lost,
			change: store.FeedChange{Removed: 84, Kept: 21}, etag: `"v4"`},
	}
	failures := 0
	for i, st := range steps {
		if st.serve != nil {
			st.serve()
		}
		before, _ := ls.count()
		res := u.Update(context.Background(), "porn", Request{Force: st.force})
		if res.Result != st.want {
			t.Fatalf("step %d (%s): result %q (%v), want %q", i, st.name, res.Result, res.Err, st.want)
		}
		if st.wantErr != "" && (res.Err == nil || !strings.Contains(res.Error, st.wantErr)) {
			t.Errorf("step %d (%s): error %q, want it to mention %q", i, st.name, res.Error, st.wantErr)
		}
		if st.wantErr == "" && st.want != store.FeedRefused && res.Err != nil {
			t.Errorf("step %d (%s): error %v", i, st.name, res.Err)
		}
		if strings.Contains(res.Error, os.TempDir()) || strings.Contains(res.Error, "hedgerow-feed-") {
			t.Errorf("step %d (%s): the error names the temporary file: %s", i, st.name, res.Error)
		}
		if st.change != (store.FeedChange{}) && res.Change != st.change {
			t.Errorf("step %d (%s): change %+v, want %+v", i, st.name, res.Change, st.change)
		}
		n, hdr := ls.count()
		if n != before+1 {
			t.Errorf("step %d (%s): %d requests, want 1", i, st.name, n-before)
		}
		if got := hdr.Get("If-None-Match") != "" && hdr.Get("If-Modified-Since") != ""; got != st.condition {
			t.Errorf("step %d (%s): conditional request %v, want %v (headers %v)", i, st.name, got, st.condition, hdr)
		}
		if got := db.entries(t, "porn"); !slices.Equal(got, st.entries) {
			t.Errorf("step %d (%s): %d entries stored, want %d", i, st.name, len(got), len(st.entries))
		}
		info := db.info(t, "porn")
		if st.want == store.FeedUpdated {
			failures = 0
		} else if st.want != store.FeedNotModified {
			failures++
		}
		wantLastError := st.want == store.FeedFailed || st.want == store.FeedRefused
		if info.LastResult != st.want || info.ETag != st.etag || info.Failures != failures || (info.LastError != "") != wantLastError {
			t.Errorf("step %d (%s): recorded %q etag %s failures %d error %q", i, st.name, info.LastResult, info.ETag, info.Failures, info.LastError)
		}
		if wantLastError && !strings.Contains(info.LastError, st.wantErr) {
			t.Errorf("step %d (%s): recorded error %q", i, st.name, info.LastError)
		}
	}

	counts := map[string]float64{store.FeedUpdated: 3, store.FeedNotModified: 1, store.FeedFailed: 4, store.FeedRefused: 2}
	for result, want := range counts {
		if got, _ := metrictest.Value(t, reg, "hedgerow_feed_updates_total", "feed", "porn", "result", result); got != want {
			t.Errorf("hedgerow_feed_updates_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	if got, _ := metrictest.Value(t, reg, "hedgerow_feed_entries", "feed", "porn"); got != float64(len(lost)) {
		t.Errorf("hedgerow_feed_entries = %v, want %d", got, len(lost))
	}
	info := db.info(t, "porn")
	if got, _ := metrictest.Value(t, reg, "hedgerow_feed_last_success_timestamp_seconds", "feed", "porn"); got != float64(info.LastSuccess().UnixNano())/1e9 {
		t.Errorf("hedgerow_feed_last_success_timestamp_seconds = %v, want %v", got, info.LastSuccess())
	}
	actions := db.auditActions(t)
	if c := strings.Count(strings.Join(actions, " "), "feed-update"); c != 3 {
		t.Errorf("%d feed-update audit records, want 3: %v", c, actions)
	}
	if c := strings.Count(strings.Join(actions, " "), "feed-check"); c != 7 {
		t.Errorf("%d feed-check audit records, want 7: %v", c, actions)
	}
}

// TestUpdateLimitsAndCancellation: the size limit, the timeout and a
// cancelled context each stop a download; only the first two are the
// source's fault and recorded.
func TestUpdateLimitsAndCancellation(t *testing.T) {
	ls := &listServer{}
	ls.set(domainList(names(0, 1000)), `"big"`, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	srv := httptest.NewServer(ls)
	defer srv.Close()

	t.Run("size limit", func(t *testing.T) {
		db := newDB(t)
		db.register(t, store.FeedInfo{Name: "big", Source: srv.URL + "/big.txt", Format: "domains", Category: "adult"}, names(0, 3))
		u := newUpdater(t, db, nil, Options{MaxBytes: 1000})
		res := u.Update(context.Background(), "big", Request{})
		if res.Result != store.FeedFailed || !strings.Contains(res.Error, "1000-byte limit") {
			t.Errorf("result %s %q, want failed at the limit", res.Result, res.Error)
		}
		if got := db.entries(t, "big"); len(got) != 3 {
			t.Errorf("%d entries after a refused download, want the old 3", len(got))
		}
	})

	block := make(chan struct{})
	defer close(block)
	ls.with(func(ls *listServer) { ls.block = block })

	t.Run("timeout", func(t *testing.T) {
		db := newDB(t)
		db.register(t, store.FeedInfo{Name: "slow", Source: srv.URL + "/slow.txt", Format: "domains", Category: "adult"}, names(0, 3))
		u := newUpdater(t, db, nil, Options{Timeout: 100 * time.Millisecond})
		res := u.Update(context.Background(), "slow", Request{})
		if res.Result != store.FeedFailed || !errors.Is(res.Err, context.DeadlineExceeded) || !strings.Contains(res.Error, "took longer than 100ms") {
			t.Errorf("result %s %q, want failed with the timeout", res.Result, res.Error)
		}
		if info := db.info(t, "slow"); info.LastResult != store.FeedFailed {
			t.Errorf("a timeout was recorded as %q", info.LastResult)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		db := newDB(t)
		db.register(t, store.FeedInfo{Name: "slow", Source: srv.URL + "/slow.txt", Format: "domains", Category: "adult"}, names(0, 3))
		reg := prometheus.NewRegistry()
		u := newUpdater(t, db, reg, Options{})
		ctx, cancel := context.WithCancel(context.Background())
		before, _ := ls.count()
		go func() {
			// Cancel once the request is waiting at the server.
			for i := 0; i < 10_000; i++ {
				if n, _ := ls.count(); n > before {
					break
				}
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		res := u.Update(ctx, "slow", Request{})
		if res.Result != store.FeedFailed || !errors.Is(res.Err, context.Canceled) {
			t.Errorf("result %s %v, want failed with context.Canceled", res.Result, res.Err)
		}
		if info := db.info(t, "slow"); info.LastResult != "" || !info.CheckedAt.IsZero() {
			t.Errorf("a cancelled update was recorded: %q at %v", info.LastResult, info.CheckedAt)
		}
		if n := seriesCount(t, reg, "hedgerow_feed_updates_total"); n != 0 {
			t.Errorf("a cancelled update was counted (%d series)", n)
		}
	})
}

func TestUpdateRefusesFeedsWithoutSource(t *testing.T) {
	db := newDB(t)
	db.register(t, store.FeedInfo{Name: "starter", Source: "embedded starter lists", Format: store.StarterFormat, Category: "adult"}, names(0, 2))
	u := newUpdater(t, db, nil, Options{})
	for name, want := range map[string]string{"starter": "embedded", "nope": "no such feed"} {
		res := u.Update(context.Background(), name, Request{Force: true})
		if res.Result != store.FeedFailed || !strings.Contains(res.Error, want) {
			t.Errorf("%s: %s %q, want failed mentioning %q", name, res.Result, res.Error, want)
		}
	}
	if info := db.info(t, "starter"); info.LastResult != "" {
		t.Errorf("the starter feed got a check recorded: %q", info.LastResult)
	}
}

// sharedLists is ../shared/lists beside the repository, or a skip.
func sharedLists(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(wd, "..", "..", "..", "shared", "lists")
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST.tsv")); err != nil {
		t.Skipf("real lists not available (%s/MANIFEST.tsv: %v); they are fetched separately, see shared/lists/README.md", dir, err)
	}
	return dir
}

// TestUpdateFromLocalFile updates a feed from a real hosts file: read when
// first seen, left alone while its modification time stands, read again
// when it changes or when forced.
func TestUpdateFromLocalFile(t *testing.T) {
	real := filepath.Join(sharedLists(t), "sinfonietta", "gambling-hosts")
	raw, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gambling-hosts")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db := newDB(t)
	db.register(t, store.FeedInfo{Name: "gambling", Source: path, Format: "hosts", Category: "gambling"}, nil)
	u := newUpdater(t, db, nil, Options{})

	res := u.Update(context.Background(), "gambling", Request{})
	if res.Result != store.FeedUpdated || res.Entries < 2500 || res.Change.Added != res.Entries {
		t.Fatalf("first update: %s, %d entries, %+v, %v", res.Result, res.Entries, res.Change, res.Err)
	}
	first := db.info(t, "gambling")
	if first.SourceStamp == "" {
		t.Error("no source stamp kept")
	}
	if res := u.Update(context.Background(), "gambling", Request{}); res.Result != store.FeedNotModified {
		t.Errorf("unchanged file: %s %v", res.Result, res.Err)
	}
	// Append one line and move the modification time on.
	lines := append(raw, []byte("0.0.0.0 new-casino.example\n")...)
	if err := os.WriteFile(path, lines, 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	res = u.Update(context.Background(), "gambling", Request{})
	if res.Result != store.FeedUpdated || res.Change.Added != 1 || res.Change.Removed != 0 {
		t.Errorf("changed file: %s %+v %v", res.Result, res.Change, res.Err)
	}
	if res := u.Update(context.Background(), "gambling", Request{Force: true}); res.Result != store.FeedUpdated || res.Change.Added != 0 {
		t.Errorf("forced: %s %+v %v", res.Result, res.Change, res.Err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	res = u.Update(context.Background(), "gambling", Request{})
	if res.Result != store.FeedFailed || !strings.Contains(res.Error, "no such file") {
		t.Errorf("deleted file: %s %q", res.Result, res.Error)
	}
	if got := db.info(t, "gambling"); got.Domains != first.Domains+1 {
		t.Errorf("after a failed check %d domains, want the %d kept", got.Domains, first.Domains+1)
	}
}

// TestUpdateFromUT1Directory: a change to one file deep in a UT1 tree is
// noticed through the directory's stamp.
func TestUpdateFromUT1Directory(t *testing.T) {
	shared := sharedLists(t)
	root := filepath.Join(t.TempDir(), "ut1")
	for _, f := range []string{"agressif/domains", "agressif/urls", "arjel/domains"} {
		raw, err := os.ReadFile(filepath.Join(shared, "ut1", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db := newDB(t)
	db.register(t, store.FeedInfo{Name: "ut1", Source: root, Format: "auto"}, nil)
	u := newUpdater(t, db, nil, Options{})
	res := u.Update(context.Background(), "ut1", Request{})
	if res.Result != store.FeedUpdated || res.Entries < 300 {
		t.Fatalf("first update: %s %d entries %v", res.Result, res.Entries, res.Err)
	}
	if res := u.Update(context.Background(), "ut1", Request{}); res.Result != store.FeedNotModified {
		t.Errorf("unchanged tree: %s %v", res.Result, res.Err)
	}
	f, err := os.OpenFile(filepath.Join(root, "arjel", "domains"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("new-bookmaker.example\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	res = u.Update(context.Background(), "ut1", Request{})
	if res.Result != store.FeedUpdated || res.Change.Added != 1 {
		t.Errorf("one file changed: %s %+v %v", res.Result, res.Change, res.Err)
	}
	if got := db.info(t, "ut1"); !slices.Contains(got.Categories, "gambling") || !slices.Contains(got.Categories, "hate") {
		t.Errorf("UT1 categories %v", got.Categories)
	}
}

func TestUpdateMetricsFollowFeeds(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	at := time.Date(2026, 3, 1, 2, 30, 0, 0, time.UTC)
	m.SetFeeds([]store.FeedInfo{
		{Name: "a", Domains: 10, URLs: 2, Exceptions: 1, ImportedAt: at},
		{Name: "b", Domains: 5, ImportedAt: at, SucceededAt: at.Add(time.Hour), LastResult: store.FeedFailed, Failures: 3},
	})
	if got, ok := metrictest.Value(t, reg, "hedgerow_feed_consecutive_failures", "feed", "b"); got != 3 {
		t.Errorf("consecutive failures of b = %v (present %v), want 3 from its record", got, ok)
	}
	if got, ok := metrictest.Value(t, reg, "hedgerow_feed_consecutive_failures", "feed", "a"); !ok || got != 0 {
		t.Errorf("consecutive failures of a = %v (present %v), want 0", got, ok)
	}
	if n := seriesCount(t, reg, "hedgerow_feed_updates_total"); n != 2*len(store.FeedResults()) {
		t.Errorf("%d update series, want every result for both feeds", n)
	}
	if got, _ := metrictest.Value(t, reg, "hedgerow_feed_entries", "feed", "a"); got != 13 {
		t.Errorf("entries of a = %v, want 13", got)
	}
	if got, _ := metrictest.Value(t, reg, "hedgerow_feed_last_success_timestamp_seconds", "feed", "b"); got != float64(at.Add(time.Hour).Unix()) {
		t.Errorf("last success of b = %v", got)
	}
	m.SetFeeds([]store.FeedInfo{{Name: "b", Domains: 6}})
	for _, name := range []string{"hedgerow_feed_updates_total", "hedgerow_feed_entries", "hedgerow_feed_last_success_timestamp_seconds",
		"hedgerow_feed_consecutive_failures"} {
		if n := seriesCount(t, reg, name); n == 0 || n > len(store.FeedResults()) {
			t.Errorf("%s has %d series after feed a went", name, n)
		}
	}
	var nilMetrics *Metrics
	nilMetrics.SetFeeds([]store.FeedInfo{{Name: "x"}}) // must not panic
	nilMetrics.count("x", store.FeedFailed)
}

func TestLocalName(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/lists/porn.txt", "lists/porn.txt"},
		{"/blacklists/adult/domains.gz", "adult/domains.gz"},
		{"/blacklists.tar.gz", "blacklists.tar.gz"},
		{"/", "list"},
		{"", "list"},
		{"/a/../..", "list"},
		{"/x/..", "x"},
		{"/we ird/na:me?.txt", "we_ird/na_me_.txt"},
	}
	for _, tc := range tests {
		if got := localName(tc.path); got != filepath.FromSlash(tc.want) {
			t.Errorf("localName(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// FuzzLocalName: whatever the URL path, the name stays inside the
// download directory.
func FuzzLocalName(f *testing.F) {
	for _, s := range []string{"/lists/x.txt", "/../../etc/passwd", "/a/b/c/d", "//", "/.../..", "/\x00/é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		name := localName(p)
		if name == "" || filepath.IsAbs(name) || !filepath.IsLocal(name) || strings.Count(name, string(filepath.Separator)) > 1 {
			t.Fatalf("localName(%q) = %q: not a short local name", p, name)
		}
		for _, part := range strings.Split(name, string(filepath.Separator)) {
			if part == "" || part == "." || part == ".." {
				t.Fatalf("localName(%q) = %q has component %q", p, name, part)
			}
		}
	})
}

// BenchmarkUpdateRealList answers: what does a forced nightly update of a
// 60,000-entry hosts list cost (parse, compare, replace in one
// transaction)?
func BenchmarkUpdateRealList(b *testing.B) {
	path := filepath.Join(sharedLists(b), "sinfonietta", "pornography-hosts.gz")
	db := newDB(b)
	db.register(b, store.FeedInfo{Name: "porn", Source: path, Format: "hosts", Category: "adult"}, nil)
	u := newUpdater(b, db, nil, Options{})
	b.ReportAllocs()
	for b.Loop() {
		if res := u.Update(context.Background(), "porn", Request{Force: true}); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
}
