package admin

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"hedgerow/categories/listfile"
	"hedgerow/store"
)

// listsSharedDir is ../shared/lists beside the repository, or a skip.
func listsSharedDir(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(wd, "..", "..", "shared", "lists")
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST.tsv")); err != nil {
		t.Skipf("real lists not available (%s/MANIFEST.tsv: %v); they are fetched separately, see shared/lists/README.md", dir, err)
	}
	return dir
}

func listsReadFile(t testing.TB, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// listsStoreFeed imports a real list file straight into the store, as
// "hedgerow import" does, and returns its first entry.
func listsStoreFeed(t *testing.T, e *testEnv, name, path, category string, locked bool) string {
	t.Helper()
	m, err := e.tax.MaskOf(category)
	if err != nil {
		t.Fatal(err)
	}
	f := store.NewFeed(store.FeedInfo{Name: name, Source: path, Format: "auto", Locked: locked, Reason: "test feed " + name})
	var first string
	if _, err := listfile.Read(context.Background(), path, listfile.Options{Category: category}, func(en listfile.Entry) error {
		if first == "" && !strings.Contains(en.Target, "/") {
			first = en.Target
		}
		f.Add(en.Target, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.write(func(s *store.Store) error { _, err := s.ReplaceFeed("test", f); return err })
	return first
}

// listsFingerprint sums up everything a list change touches: the feeds and
// the audit trail, to which every change writes in its own transaction.
func listsFingerprint(t *testing.T, e *testEnv) string {
	t.Helper()
	var out string
	e.read(func(s *store.Store) error {
		feeds, err := s.Feeds()
		if err != nil {
			return err
		}
		recs, err := s.Audit(0)
		if err != nil {
			return err
		}
		raw, _ := json.Marshal(feeds)
		out = fmt.Sprintf("%s audit=%d", raw, len(recs))
		return nil
	})
	return out
}

func listsFind(t *testing.T, e *testEnv, host, path string) []store.Found {
	t.Helper()
	var found []store.Found
	e.read(func(s *store.Store) error {
		var err error
		found, err = s.Find(host, path)
		return err
	})
	return found
}

func listsFeed(t *testing.T, e *testEnv, name string) (store.FeedInfo, bool) {
	t.Helper()
	var feeds []store.FeedInfo
	e.read(func(s *store.Store) error {
		var err error
		feeds, err = s.Feeds()
		return err
	})
	for _, f := range feeds {
		if f.Name == name {
			return f, true
		}
	}
	return store.FeedInfo{}, false
}

// listsMultipart encodes fields, and a file part "file" if fileName is set.
func listsMultipart(t *testing.T, fields url.Values, fileName string, content []byte) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, vs := range fields {
		for _, v := range vs {
			if err := w.WriteField(k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if fileName != "" {
		fw, err := w.CreateFormFile("file", fileName)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write(content); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, w.FormDataContentType()
}

// listsUpload posts a multipart form from our own page (Origin and CSRF
// token set), as the import form does.
func (b *browser) listsUpload(path string, fields url.Values, fileName string, content []byte) (*http.Response, string) {
	b.e.t.Helper()
	if fields.Get("csrf") == "" {
		fields.Set("csrf", b.csrf)
	}
	body, ct := listsMultipart(b.e.t, fields, fileName, content)
	return b.do(http.MethodPost, path, body, http.Header{"Content-Type": {ct}, "Origin": {b.e.http.URL}})
}

// listsAPIUpload posts a multipart form to the API with a token.
func (e *testEnv) listsAPIUpload(token, path string, fields url.Values, fileName string, content []byte) (*http.Response, string) {
	e.t.Helper()
	body, ct := listsMultipart(e.t, fields, fileName, content)
	req, err := http.NewRequest(http.MethodPost, e.http.URL+"/api/v1"+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

// listsWaitImport waits until import id has ended and returns it. The
// wait is on the job's own signal; the deadline only stops a hung test.
func listsWaitImport(t *testing.T, e *testEnv, id uint64) importJob {
	t.Helper()
	e.srv.imports.mu.Lock()
	var done chan struct{}
	for _, j := range e.srv.imports.jobs {
		if j.ID == id {
			done = j.done
		}
	}
	e.srv.imports.mu.Unlock()
	if done == nil {
		t.Fatalf("import %d: no such job", id)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("import %d did not end", id)
	}
	j, _ := e.srv.imports.get(id)
	return j
}

// listsWaitAll waits for every import to end, so that none still writes
// when the test's database is removed.
func listsWaitAll(t *testing.T, e *testEnv) {
	for _, j := range e.srv.imports.list() {
		listsWaitImport(t, e, j.ID)
	}
}

// listsImportID reads the job number from the redirect to its page.
func listsImportID(t *testing.T, resp *http.Response, body string) uint64 {
	t.Helper()
	loc := resp.Header.Get("Location")
	n, err := strconv.ParseUint(strings.TrimPrefix(loc, "/lists/import/"), 10, 64)
	if resp.StatusCode != http.StatusSeeOther || err != nil {
		t.Fatalf("status %d, Location %q, want a redirect to the import's page:\n%s", resp.StatusCode, loc, body)
	}
	return n
}

func TestListsSearch(t *testing.T) {
	dir := listsSharedDir(t)
	e := newTestEnv(t)
	locked := listsStoreFeed(t, e, "snuff", filepath.Join(dir, "sinfonietta", "snuff-hosts"), "violence", true)
	open := listsStoreFeed(t, e, "gambling", filepath.Join(dir, "sinfonietta", "gambling-hosts"), "gambling", false)
	const xss = `<script>alert("x")</script>`
	e.write(func(s *store.Store) error {
		return s.AddEntry("ada", "badsite.example", []string{"adult", "gambling"}, "reported by the Y6 teacher "+xss)
	})
	b := e.browser().login("ada")
	tok := e.token("ada")

	for _, tc := range []struct {
		name, q   string
		status    int
		msg       string   // in the page and the API error
		feeds     []string // feeds of the entries found, in order
		removable int      // remove forms on the page
		locked    bool
	}{
		{name: "hand-added, as a URL", q: "https://www.BadSite.example/page?x=1", status: 200, feeds: []string{store.LocalFeed}, removable: 1},
		{name: "locked feed", q: strings.ToUpper(locked), status: 200, feeds: []string{"snuff"}, locked: true},
		{name: "unlocked feed", q: "http://" + open + "/", status: 200, feeds: []string{"gambling"}},
		{name: "on no list", q: "nothing-here.example", status: 200, msg: "nothing-here.example is on no list"},
		{name: "not a host", q: "http://exa mple.com/", status: 400, msg: `search: normalize "http://exa mple.com/"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := b.get("/lists?q=" + url.QueryEscape(tc.q))
			if resp.StatusCode != tc.status {
				t.Fatalf("page: status %d, want %d:\n%s", resp.StatusCode, tc.status, body)
			}
			if tc.msg != "" && !strings.Contains(body, html.EscapeString(tc.msg)) {
				t.Errorf("page does not say %q:\n%s", tc.msg, body)
			}
			if n := strings.Count(body, `action="/lists/entries/remove"`); n != tc.removable {
				t.Errorf("page has %d remove forms, want %d", n, tc.removable)
			}
			if tc.locked && !strings.Contains(body, "Locked: nobody can remove or override it") {
				t.Errorf("locked entry not shown as locked:\n%s", body)
			}
			if strings.Contains(body, xss) {
				t.Errorf("a reason from the database was not escaped")
			}

			resp, body = e.api(tok, http.MethodGet, "/lists?q="+url.QueryEscape(tc.q), "")
			if resp.StatusCode != tc.status {
				t.Fatalf("api: status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				if !strings.Contains(body, strings.ReplaceAll(tc.msg, `"`, `\"`)) {
					t.Errorf("api error does not say %q: %s", tc.msg, body)
				}
				return
			}
			var p struct {
				Found []struct {
					store.Found
					Removable bool `json:"removable"`
				} `json:"found"`
				Feeds []store.FeedInfo `json:"feeds"`
			}
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				t.Fatal(err)
			}
			var feeds []string
			for _, f := range p.Found {
				feeds = append(feeds, f.Feed)
				if f.Removable != (f.Feed == store.LocalFeed) || f.Locked != tc.locked {
					t.Errorf("found %+v: removable %v, locked %v", f, f.Removable, f.Locked)
				}
			}
			feeds = slices.Compact(feeds) // a name and its parent may both be listed
			if !slices.Equal(feeds, tc.feeds) {
				t.Errorf("found in feeds %v, want %v", feeds, tc.feeds)
			}
			if len(p.Feeds) != 2 {
				t.Errorf("api lists %d feeds, want 2", len(p.Feeds))
			}
		})
	}

	// The page shows the feeds and what changed, escaped.
	_, body := b.get("/lists")
	for _, want := range []string{"snuff", "gambling", "<span class=\"badge\">locked</span>", "lists-add", "import", html.EscapeString(xss)} {
		if !strings.Contains(body, want) {
			t.Errorf("lists page lacks %q", want)
		}
	}
}

// TestListsAddRemove runs one edit after another on one database: each
// either changes the lists (and the running filter is told) or is refused
// with a message naming the bad input, leaving everything as it was.
func TestListsAddRemove(t *testing.T) {
	dir := listsSharedDir(t)
	e := newTestEnv(t)
	locked := listsStoreFeed(t, e, "snuff", filepath.Join(dir, "sinfonietta", "snuff-hosts"), "violence", true)
	b := e.browser().login("ada")
	tok := e.token("ada")
	local := func(target string) []string {
		for _, f := range listsFind(t, e, target, "") {
			if f.Feed == store.LocalFeed && f.Entry == target {
				return f.Categories
			}
		}
		return nil
	}

	for _, tc := range []struct {
		name    string
		api     bool
		path    string
		form    url.Values
		status  int
		msg     string
		changes bool
		check   func(t *testing.T)
	}{
		{name: "add without a reason", path: "/lists/entries", form: url.Values{"target": {"newsite.example"}, "category": {"games"}},
			status: 400, msg: "add newsite.example: a reason is required"},
		{name: "add without a reason, api", api: true, path: "/lists/entries", form: url.Values{"target": {"newsite.example"}, "category": {"games"}, "reason": {"  "}},
			status: 400, msg: "add newsite.example: a reason is required"},
		{name: "add without a category", path: "/lists/entries", form: url.Values{"target": {"newsite.example"}, "reason": {"r"}},
			status: 400, msg: "category is required"},
		{name: "add to an unknown category", api: true, path: "/lists/entries", form: url.Values{"target": {"newsite.example"}, "category": {"casino"}, "reason": {"r"}},
			status: 400, msg: `category: unknown category "casino"`},
		{name: "add a bad target", path: "/lists/entries", form: url.Values{"target": {"exa mple.com"}, "category": {"games"}, "reason": {"r"}},
			status: 400, msg: `target: normalize "exa mple.com"`},
		{name: "add with a query string", api: true, path: "/lists/entries", form: url.Values{"target": {"example.com/a?b=c"}, "category": {"games"}, "reason": {"r"}},
			status: 400, msg: "a query string cannot be part of an entry"},
		{name: "add without a target", path: "/lists/entries", form: url.Values{"category": {"games"}, "reason": {"r"}},
			status: 400, msg: "target is required"},
		{name: "add", path: "/lists/entries", form: url.Values{"target": {"https://NewSite.example/"}, "category": {"games"}, "reason": {"pupils' game site"}},
			status: 303, msg: "Added newsite.example to games.", changes: true, check: func(t *testing.T) {
				if got := local("newsite.example"); !slices.Equal(got, []string{"games"}) {
					t.Errorf("stored categories %v", got)
				}
				// The running filter has it: Changed reloaded it.
				_, v, err := e.filter.Current().Check("ks2", "http://www.newsite.example/", time.Now())
				if err != nil || !slices.Contains(e.tax.Slugs(v.Cats), "games") {
					t.Errorf("the running filter does not list newsite.example as games: %v %v", e.tax.Slugs(v.Cats), err)
				}
			}},
		{name: "add another category, api", api: true, path: "/lists/entries", form: url.Values{"target": {"newsite.example"}, "category": {"chat"}, "reason": {"chat too"}},
			status: 200, msg: "Added newsite.example to chat.", changes: true, check: func(t *testing.T) {
				if got := local("newsite.example"); !slices.Equal(got, []string{"chat", "games"}) && !slices.Equal(got, []string{"games", "chat"}) {
					t.Errorf("stored categories %v", got)
				}
			}},
		{name: "add a URL prefix, api", api: true, path: "/lists/entries", form: url.Values{"target": {"example.org/forum"}, "categories": {"forums", "chat"}, "reason": {"unmoderated"}},
			status: 200, msg: "Added example.org/forum to forums, chat.", changes: true},
		{name: "remove an unknown category", path: "/lists/entries/remove", form: url.Values{"target": {"newsite.example"}, "categories": {"casino"}, "reason": {"r"}},
			status: 400, msg: `categories: unknown category "casino"`},
		{name: "remove a category it is not in", api: true, path: "/lists/entries/remove", form: url.Values{"target": {"newsite.example"}, "categories": {"adult"}, "reason": {"r"}},
			status: 400, msg: "remove newsite.example: it is not in adult"},
		{name: "remove one category", path: "/lists/entries/remove", form: url.Values{"target": {"newsite.example"}, "categories": {"chat"}, "reason": {"chat is fine"}},
			status: 303, msg: "Removed newsite.example from chat.", changes: true, check: func(t *testing.T) {
				if got := local("newsite.example"); !slices.Equal(got, []string{"games"}) {
					t.Errorf("stored categories %v", got)
				}
			}},
		{name: "remove a locked feed's entry", path: "/lists/entries/remove", form: url.Values{"target": {locked}, "reason": {"r"}},
			status: 400, msg: "it comes from feed snuff"},
		{name: "remove a locked feed's entry, api", api: true, path: "/lists/entries/remove", form: url.Values{"target": {locked}, "reason": {"r"}},
			status: 400, msg: "it comes from feed snuff"},
		{name: "remove without a reason", path: "/lists/entries/remove", form: url.Values{"target": {"newsite.example"}},
			status: 400, msg: "remove newsite.example: a reason is required"},
		{name: "remove, api", api: true, path: "/lists/entries/remove", form: url.Values{"target": {"newsite.example"}, "reason": {"closed down"}},
			status: 200, msg: "Removed newsite.example.", changes: true, check: func(t *testing.T) {
				if got := local("newsite.example"); got != nil {
					t.Errorf("still stored: %v", got)
				}
			}},
		{name: "remove what is not there", path: "/lists/entries/remove", form: url.Values{"target": {"newsite.example"}, "reason": {"r"}},
			status: 400, msg: "remove newsite.example: no such entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, changed := listsFingerprint(t, e), e.changed.Load()
			var resp *http.Response
			var body string
			if tc.api {
				in := map[string]any{}
				for k, v := range tc.form {
					if len(v) == 1 {
						in[k] = v[0]
					} else {
						in[k] = v
					}
				}
				raw, _ := json.Marshal(in)
				resp, body = e.api(tok, http.MethodPost, tc.path, string(raw))
			} else {
				resp, body = b.post(tc.path, tc.form)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d:\n%s", resp.StatusCode, tc.status, body)
			}
			switch {
			case tc.api:
				var out struct{ Message, Error string }
				if err := json.Unmarshal([]byte(body), &out); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out.Message+out.Error, tc.msg) {
					t.Errorf("api says %q, want %q", out.Message+out.Error, tc.msg)
				}
			case tc.status == http.StatusSeeOther:
				// The message is flashed on the page the redirect leads to.
				_, body = b.get(resp.Header.Get("Location"))
				fallthrough
			default:
				if !strings.Contains(body, html.EscapeString(tc.msg)) {
					t.Errorf("page does not say %q:\n%s", tc.msg, body)
				}
			}
			if tc.status == http.StatusBadRequest && !tc.api {
				// Refused: the lists page again, with what was typed.
				if !strings.Contains(body, `action="/lists/entries"`) {
					t.Errorf("a refused edit does not show the lists page again")
				}
				if v := tc.form.Get("reason"); v != "" && tc.path == "/lists/entries" && !strings.Contains(body, `value="`+html.EscapeString(v)+`"`) {
					t.Errorf("the reason typed was lost")
				}
			}
			after, nowChanged := listsFingerprint(t, e), e.changed.Load()
			if tc.changes {
				if after == before {
					t.Errorf("nothing was stored")
				}
				if nowChanged != changed+1 {
					t.Errorf("Changed called %d times, want once", nowChanged-changed)
				}
			} else {
				if after != before {
					t.Errorf("a refused edit changed the database:\nbefore %s\nafter  %s", before, after)
				}
				if nowChanged != changed {
					t.Errorf("a refused edit called Changed")
				}
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}

	// Every change is in the audit log, with its reason.
	var recs []store.AuditRecord
	e.read(func(s *store.Store) error { var err error; recs, err = s.Audit(0); return err })
	var got []string
	for _, r := range recs {
		if strings.HasPrefix(r.Action, "lists") && r.Actor == "ada" {
			got = append(got, r.Action+" "+r.Target+": "+r.Reason)
		}
	}
	want := []string{"lists-remove newsite.example: closed down", "lists-remove newsite.example: chat is fine",
		"lists-add example.org/forum: unmoderated", "lists-add newsite.example: chat too", "lists-add newsite.example: pupils' game site"}
	if !slices.Equal(got, want) {
		t.Errorf("audit:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// listsUT1Archive builds a small UT1 archive from real UT1 directories,
// nested as the real download is.
func listsUT1Archive(t *testing.T, dir string, cats ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, cat := range cats {
		for _, kind := range []string{"domains", "urls"} {
			raw, err := os.ReadFile(filepath.Join(dir, "ut1", cat, kind))
			if err != nil {
				continue
			}
			if err := tw.WriteHeader(&tar.Header{Name: "blacklists/" + cat + "/" + kind, Mode: 0o644, Size: int64(len(raw)), Typeflag: tar.TypeReg}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write(raw); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestListsImport imports real lists through the form and the API, from
// uploads and from a URL, and checks that a failed import changes nothing.
func TestListsImport(t *testing.T) {
	dir := listsSharedDir(t)
	e := newTestEnv(t)
	t.Cleanup(func() { listsWaitAll(t, e) })
	b := e.browser().login("ada")
	tok := e.token("ada")
	files := http.FileServer(http.Dir(dir))
	lists := httptest.NewServer(files)
	t.Cleanup(lists.Close)

	gambling := listsReadFile(t, filepath.Join(dir, "sinfonietta", "gambling-hosts"))
	porn := listsReadFile(t, filepath.Join(dir, "sinfonietta", "pornography-hosts.gz"))
	ut1 := listsUT1Archive(t, dir, "agressif", "drogue", "astrology")

	type result struct {
		state    string
		feed     string
		cats     []string // the feed's categories afterwards
		minEntry int
		source   string // the feed's recorded source
		errMsg   string // in the job's error
		ignored  string // in the summary's skipped categories
	}
	for _, tc := range []struct {
		name     string
		api      bool
		form     url.Values
		fileName string
		file     []byte
		want     result
	}{
		{name: "hosts file upload", form: url.Values{"feed": {"sinf-gambling"}, "format": {"hosts"}, "category": {"gambling"}, "reason": {"gambling sites"}},
			fileName: "gambling-hosts", file: gambling,
			want: result{state: importDone, feed: "sinf-gambling", cats: []string{"gambling"}, minEntry: 1000}},
		{name: "gzip upload keeps its extension", api: true, form: url.Values{"feed": {"sinf-porn"}, "category": {"adult"}, "reason": {"adult sites"}, "locked": {"on"}},
			fileName: "pornography-hosts.gz", file: porn,
			want: result{state: importDone, feed: "sinf-porn", cats: []string{"adult"}, minEntry: 10000}},
		{name: "UT1 archive upload", form: url.Values{"feed": {"ut1"}, "format": {"ut1"}, "reason": {"UT1 blacklists"}},
			fileName: "blacklists.tar.gz", file: ut1,
			want: result{state: importDone, feed: "ut1", cats: []string{"hate", "drugs"}, minEntry: 100, ignored: "ut1/astrology"}},
		{name: "URL", form: url.Values{"url": {lists.URL + "/blocklistproject/vaping.txt"}, "feed": {"vaping"}, "format": {"auto"}, "category": {"drugs"}, "reason": {"vaping"}},
			want: result{state: importDone, feed: "vaping", cats: []string{"drugs"}, minEntry: 50, source: lists.URL + "/blocklistproject/vaping.txt"}},
		{name: "URL that is not there", api: true, form: url.Values{"url": {lists.URL + "/no-such-list.txt"}, "feed": {"vaping"}, "category": {"drugs"}, "reason": {"vaping"}},
			want: result{state: importFailed, errMsg: "404"}},
		{name: "a file of nothing usable, over an existing feed", form: url.Values{"feed": {"sinf-gambling"}, "format": {"domains"}, "category": {"gambling"}, "reason": {"oops"}},
			fileName: "LICENSE", file: []byte("# only comments\n\n# here\n"),
			want: result{state: importFailed, errMsg: "no usable entries"}},
		{name: "a UT1 import given a category", form: url.Values{"feed": {"ut1"}, "format": {"auto"}, "category": {"adult"}, "reason": {"UT1"}},
			fileName: "blacklists.tar.gz", file: ut1,
			want: result{state: importFailed, errMsg: "UT1 lists name their own categories"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, changed := listsFingerprint(t, e), e.changed.Load()
			var id uint64
			if tc.api {
				var resp *http.Response
				var body string
				if tc.fileName != "" {
					resp, body = e.listsAPIUpload(tok, "/lists/import", tc.form, tc.fileName, tc.file)
				} else {
					in := map[string]string{}
					for k := range tc.form {
						in[k] = tc.form.Get(k)
					}
					raw, _ := json.Marshal(in)
					resp, body = e.api(tok, http.MethodPost, "/lists/import", string(raw))
				}
				var out struct {
					Message string
					Result  importJob
				}
				if err := json.Unmarshal([]byte(body), &out); err != nil || resp.StatusCode != 200 || out.Result.ID == 0 {
					t.Fatalf("api: status %d, %v: %s", resp.StatusCode, err, body)
				}
				id = out.Result.ID
			} else if tc.fileName != "" {
				resp, body := b.listsUpload("/lists/import", tc.form, tc.fileName, tc.file)
				id = listsImportID(t, resp, body)
			} else {
				resp, body := b.post("/lists/import", tc.form)
				id = listsImportID(t, resp, body)
			}
			j := listsWaitImport(t, e, id)
			if j.State != tc.want.state {
				t.Fatalf("import %s: %s, want %s: %s", j.Feed, j.State, tc.want.state, j.Error)
			}
			if !strings.Contains(j.Error, tc.want.errMsg) {
				t.Errorf("error %q, want it to say %q", j.Error, tc.want.errMsg)
			}
			if j.Error != "" && (strings.Contains(j.Error, os.TempDir()) || !strings.Contains(j.Error, "nothing was changed")) {
				t.Errorf("error %q: should name the upload, not our temporary copy, and say nothing changed", j.Error)
			}

			// The page and the API show the finished job.
			_, page := b.get(fmt.Sprintf("/lists/import/%d", id))
			if strings.Contains(page, `http-equiv="refresh"`) {
				t.Errorf("a finished import's page still refreshes itself")
			}
			if !strings.Contains(page, ">"+tc.want.state+"<") && !strings.Contains(page, tc.want.state+"</span>") {
				t.Errorf("import page does not say %s:\n%s", tc.want.state, page)
			}
			resp, body := e.api(tok, http.MethodGet, fmt.Sprintf("/lists/import/%d", id), "")
			var aj importJob
			if err := json.Unmarshal([]byte(body), &aj); err != nil || resp.StatusCode != 200 || aj.State != tc.want.state {
				t.Errorf("api job: status %d, %v, %+v", resp.StatusCode, err, aj)
			}

			if tc.want.state == importFailed {
				if after := listsFingerprint(t, e); after != before {
					t.Errorf("a failed import changed the database:\nbefore %s\nafter  %s", before, after)
				}
				if e.changed.Load() != changed {
					t.Errorf("a failed import called Changed")
				}
				return
			}
			if e.changed.Load() != changed+1 {
				t.Errorf("Changed called %d times, want once", e.changed.Load()-changed)
			}
			info, ok := listsFeed(t, e, tc.want.feed)
			if !ok {
				t.Fatalf("feed %s not stored", tc.want.feed)
			}
			for _, c := range tc.want.cats {
				if !slices.Contains(info.Categories, c) {
					t.Errorf("feed categories %v, want %s among them", info.Categories, c)
				}
			}
			if n := info.Domains + info.URLs; n < tc.want.minEntry || j.Summary == nil || j.Summary.Domains != info.Domains {
				t.Errorf("feed has %d entries (summary %+v), want at least %d", n, j.Summary, tc.want.minEntry)
			}
			if info.Source != tc.want.source || info.ImportedBy != "ada" || info.Locked != (tc.form.Get("locked") != "") {
				t.Errorf("feed record %+v", info)
			}
			if tc.want.ignored != "" && (j.Summary == nil || !strings.Contains(strings.Join(j.Summary.Ignored, "\n"), tc.want.ignored)) {
				t.Errorf("summary does not report %s skipped: %+v", tc.want.ignored, j.Summary)
			}
			if j.Total <= 0 || j.Done <= 0 || j.Percent != int(min(100, j.Done*100/j.Total)) {
				t.Errorf("progress %d of %d bytes (%d%%), want progress through a known size", j.Done, j.Total, j.Percent)
			}
		})
	}

	// The imports are listed on the lists page, newest first.
	_, page := b.get("/lists")
	if !strings.Contains(page, `href="/lists/import/7"`) || strings.Index(page, `href="/lists/import/7"`) > strings.Index(page, `href="/lists/import/1"`) {
		t.Errorf("lists page does not list the imports newest first")
	}
	if resp, _ := b.get("/lists/import/99"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown import: status %d, want 404", resp.StatusCode)
	}
}

// TestListsImportRefused checks the import form's input: each mistake is
// named, and no import starts.
func TestListsImportRefused(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser().login("ada")
	tok := e.token("ada")
	file := []byte("badsite.example\n")
	ok := url.Values{"feed": {"mine"}, "format": {"domains"}, "category": {"adult"}, "reason": {"why"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key, vs := range ok {
			f[key] = slices.Clone(vs)
		}
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	for _, tc := range []struct {
		name     string
		form     url.Values
		fileName string
		msg      string
	}{
		{"no reason", with("reason", ""), "list.txt", "import of feed mine: a reason is required"},
		{"no feed name", with("feed", ""), "list.txt", "feed is required"},
		{"a bad feed name", with("feed", "my list"), "list.txt", `feed: feed name "my list": use letters`},
		{"the reserved feed name", with("feed", "local"), "list.txt", `feed name "local" is reserved`},
		{"an unknown format", with("format", "csv"), "list.txt", `format "csv": want one of auto, ut1, hosts, domains, adblock`},
		{"a domain list without a category", with("category", ""), "list.txt", "category is required for a domains list"},
		{"UT1 with a category", with("format", "ut1"), "list.txt", `category "adult": UT1 lists name their own categories`},
		{"an unknown category", with("category", "casino"), "list.txt", `category: unknown category "casino"`},
		{"neither file nor URL", ok, "", "file or url is required"},
		{"both file and URL", with("url", "https://lists.example/x.txt"), "list.txt", "give either a file or a URL to import, not both"},
		{"a path on the server", with("url", "/etc/passwd"), "", `url "/etc/passwd": want an http:// or https:// address`},
		{"another scheme", with("url", "ftp://lists.example/x.txt"), "", `url "ftp://lists.example/x.txt": want an http:// or https:// address`},
		{"a password in the URL stays hidden", with("url", "gopher://user:secret@lists.example/x"), "", `url "gopher://user:xxxxx@lists.example/x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := listsFingerprint(t, e)
			resp, body := b.listsUpload("/lists/import", tc.form, tc.fileName, file)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, html.EscapeString(tc.msg)) {
				t.Errorf("page: status %d, want 400 saying %q:\n%s", resp.StatusCode, tc.msg, body)
			}
			if v := tc.form.Get("reason"); v != "" && !strings.Contains(body, `value="`+v+`"`) {
				t.Errorf("page: the form lost what was typed")
			}
			resp, body = e.listsAPIUpload(tok, "/lists/import", tc.form, tc.fileName, file)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, strings.ReplaceAll(tc.msg, `"`, `\"`)) {
				t.Errorf("api: status %d, want 400 saying %q: %s", resp.StatusCode, tc.msg, body)
			}
			if strings.Contains(body, "secret") {
				t.Errorf("a password in a URL was repeated: %s", body)
			}
			if n := len(e.srv.imports.list()); n != 0 {
				t.Errorf("%d imports started", n)
			}
			if listsFingerprint(t, e) != before {
				t.Errorf("a refused import changed the database")
			}
		})
	}
}

// TestListsImportOneAtATime holds an import in the middle of its download
// and checks that its page follows it and a second import is refused.
func TestListsImportOneAtATime(t *testing.T) {
	dir := listsSharedDir(t)
	raw := listsReadFile(t, filepath.Join(dir, "blocklistproject", "piracy.txt"))
	e := newTestEnv(t)
	b := e.browser().login("ada")
	tok := e.token("ada")
	t.Cleanup(func() { listsWaitAll(t, e) })
	release := make(chan struct{})
	var once bool
	releaseOnce := func() {
		if !once {
			once = true
			close(release)
		}
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
		half := len(raw) / 2
		_, _ = w.Write(raw[:half])
		w.(http.Flusher).Flush()
		<-release
		_, _ = w.Write(raw[half:])
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(releaseOnce) // first: Close waits for the held download

	resp, body := b.post("/lists/import", url.Values{"url": {slow.URL + "/piracy.txt"}, "feed": {"piracy"}, "format": {"hosts"},
		"category": {"piracy"}, "reason": {"piracy sites"}})
	id := listsImportID(t, resp, body)

	_, page := b.get(fmt.Sprintf("/lists/import/%d", id))
	if !strings.Contains(page, `<meta http-equiv="refresh" content="1">`) || !strings.Contains(page, "running") {
		t.Errorf("a running import's page does not refresh itself:\n%s", page)
	}
	resp, body = b.post("/lists/import", url.Values{"url": {slow.URL + "/again.txt"}, "feed": {"other"}, "format": {"hosts"},
		"category": {"piracy"}, "reason": {"second"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "an import is running (feed piracy, started by ada)") {
		t.Errorf("second import from the page: status %d:\n%s", resp.StatusCode, body)
	}
	resp, body = e.api(tok, http.MethodPost, "/lists/import", `{"url": "`+slow.URL+`/again.txt", "feed": "other", "category": "piracy", "reason": "second"}`)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "an import is running") {
		t.Errorf("second import from the API: status %d: %s", resp.StatusCode, body)
	}
	if _, ok := listsFeed(t, e, "piracy"); ok {
		t.Errorf("the feed was stored before its download ended")
	}

	releaseOnce()
	if j := listsWaitImport(t, e, id); j.State != importDone || j.Summary.Domains < 1000 {
		t.Errorf("import ended %s: %s %+v", j.State, j.Error, j.Summary)
	}
	if len(e.srv.imports.list()) != 1 {
		t.Errorf("the refused imports were kept as jobs")
	}
	// Once it has ended, the next may start.
	resp, body = e.api(tok, http.MethodPost, "/lists/import", `{"url": "`+slow.URL+`/again.txt", "feed": "other", "format": "hosts", "category": "piracy", "reason": "second"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("import after the first ended: status %d: %s", resp.StatusCode, body)
	}
	listsWaitImport(t, e, id+1)
}

func TestListsImportJobsKeepTheLast20(t *testing.T) {
	var ij importJobs
	now := time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC)
	for i := range 25 {
		j := &importJob{Feed: fmt.Sprintf("f%d", i)}
		if err := ij.start(j); err != nil {
			t.Fatalf("job %d: %v", i+1, err)
		}
		if err := ij.start(&importJob{Feed: "second"}); err == nil {
			t.Fatalf("a second job started beside job %d", i+1)
		}
		ij.progress(j, 50, 200)
		if got, _ := ij.get(j.ID); got.Percent != 25 {
			t.Errorf("percent %d, want 25", got.Percent)
		}
		var err error
		if i%2 == 1 {
			err = fmt.Errorf("broken")
		}
		ij.finish(j, &store.ImportSummary{}, err, now)
	}
	jobs := ij.list()
	if len(jobs) != keptImports || jobs[0].ID != 25 || jobs[len(jobs)-1].ID != 6 {
		t.Fatalf("kept %d jobs, %d to %d; want the last %d, newest first", len(jobs), jobs[0].ID, jobs[len(jobs)-1].ID, keptImports)
	}
	if _, ok := ij.get(5); ok {
		t.Errorf("job 5 kept")
	}
	if j, _ := ij.get(24); j.State != importFailed || j.Error != "broken" {
		t.Errorf("job 24: %+v", j)
	}
}

func TestListsUploadExt(t *testing.T) {
	for in, want := range map[string]string{
		"blacklists.tar.gz": ".tar.gz", "Porn-Hosts.GZ": ".gz", "list.tgz": ".tgz", "hosts": "", "a.txt": ".txt",
		"../../etc/x.t/xt": "", "x.tar.gz/../y": "", "evil.g*z": "", "x.averyverylongext": "",
	} {
		if got := uploadExt(in); got != want {
			t.Errorf("uploadExt(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzListsUploadExt checks that whatever name a browser sends, the
// extension kept for the temporary copy is a plain suffix of it: a dot and
// letters or digits (or ".tar.gz"), never a path.
func FuzzListsUploadExt(f *testing.F) {
	for _, s := range []string{"blacklists.tar.gz", "x.GZ", "../../a.b/c", "a.t/x.gz", "hosts", ".", "a.", "é.txt", "x.tar.gz.exe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ext := uploadExt(name)
		if ext == "" {
			return
		}
		if !strings.HasSuffix(strings.ToLower(name), ext) || strings.ContainsAny(ext, `/\*?`) || ext[0] != '.' || len(ext) > 10 {
			t.Errorf("uploadExt(%q) = %q", name, ext)
		}
		for _, r := range strings.TrimPrefix(ext, ".") {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '.' {
				t.Errorf("uploadExt(%q) = %q: character %q", name, ext, r)
			}
		}
	})
}
