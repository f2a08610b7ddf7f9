package admin

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hedgerow/categories"
	"hedgerow/store"
)

// testEnv is a real admin server over loopback HTTP on a real database in
// a temporary directory, with one account per role.
type testEnv struct {
	t       *testing.T
	srv     *Server
	http    *httptest.Server
	dbPath  string
	tax     *categories.Taxonomy
	filter  *categories.Filter
	changed atomic.Int32
	mu      sync.Mutex // serialises database opens, as bbolt's file lock would across processes
}

// testPassword is every test account's password.
const testPassword = "correct horse battery"

// testUsers are the accounts newTestEnv creates: name → roles.
var testUsers = map[string][]string{
	"ada":   {store.RoleAdmin},
	"dora":  {store.RoleDSL},
	"vic":   {store.RoleViewer},
	"pupil": nil, // a proxy-only account: may not use the UI
}

// testDB is the database every test environment starts from, made once:
// the accounts' bcrypt hashes are most of a test server's start-up, many
// times over under the race detector.
var testDB struct {
	once sync.Once
	raw  []byte
	err  error
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{t: t, dbPath: filepath.Join(t.TempDir(), "hedgerow.db"), tax: categories.Builtin()}
	testDB.once.Do(func() {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("hedgerow-admin-test-%d.db", os.Getpid()))
		defer os.Remove(path)
		seed := &testEnv{t: t, dbPath: path, tax: e.tax}
		testDB.err = seed.open(false, func(s *store.Store) error {
			for name, roles := range testUsers {
				if err := s.AddUser("test", "test account", store.User{Name: name, Roles: roles}, testPassword); err != nil {
					return err
				}
			}
			return s.AddEntry("test", "adult.example", []string{"adult"}, "a listed site for tests")
		})
		if testDB.err == nil {
			testDB.raw, testDB.err = os.ReadFile(path)
		}
	})
	if testDB.err != nil {
		t.Fatalf("test database: %v", testDB.err)
	}
	if err := os.WriteFile(e.dbPath, testDB.raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var snap *categories.Snapshot
	e.read(func(s *store.Store) error {
		var err error
		snap, err = s.LoadSnapshot()
		return err
	})
	var err error
	if e.filter, err = categories.NewFilter(snap); err != nil {
		t.Fatal(err)
	}
	e.srv, err = New(Config{LoginFailures: 5}, Deps{
		Read:   func(fn func(*store.Store) error) error { return e.open(true, fn) },
		Write:  func(fn func(*store.Store) error) error { return e.open(false, fn) },
		Filter: e.filter,
		Changed: func() {
			e.changed.Add(1)
			if err := e.filter.Reload(func() (*categories.Snapshot, error) {
				var snap *categories.Snapshot
				err := e.open(true, func(s *store.Store) error {
					var err error
					snap, err = s.LoadSnapshot()
					return err
				})
				return snap, err
			}); err != nil {
				t.Errorf("reload after an edit: %v", err)
			}
		},
		Log: slog.New(slog.NewTextHandler(testLogWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	plain := http.NewServeMux()
	plain.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics\n") })
	e.http = httptest.NewServer(e.srv.Handler(plain))
	t.Cleanup(e.http.Close)
	return e
}

func (e *testEnv) open(readOnly bool, fn func(*store.Store) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := store.Open(e.dbPath, e.tax, store.Options{ReadOnly: readOnly,
		Defaults: store.Defaults{Policy: categories.DefaultPolicy(e.tax)}})
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s)
}

func (e *testEnv) read(fn func(*store.Store) error) {
	e.t.Helper()
	if err := e.open(false, fn); err != nil { // read-write: creates the database on first use
		e.t.Fatal(err)
	}
}

func (e *testEnv) write(fn func(*store.Store) error) {
	e.t.Helper()
	if err := e.open(false, fn); err != nil {
		e.t.Fatal(err)
	}
}

// browser is a cookie-keeping client that does not follow redirects, so
// tests see the 303s the UI answers with.
type browser struct {
	e    *testEnv
	c    *http.Client
	csrf string
}

func (e *testEnv) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var (
	reLoginToken = regexp.MustCompile(`name="token" value="([^"]+)"`)
	reCSRF       = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// login logs in through the login form, as a person would, and keeps the
// session's CSRF token for later posts.
func (b *browser) login(name string) *browser {
	b.e.t.Helper()
	_, body := b.get("/login")
	m := reLoginToken.FindStringSubmatch(body)
	if m == nil {
		b.e.t.Fatalf("no login token in the login page:\n%s", body)
	}
	resp, _ := b.post("/login", url.Values{"token": {m[1]}, "name": {name}, "password": {testPassword}, "next": {"/"}})
	if resp.StatusCode != http.StatusSeeOther {
		b.e.t.Fatalf("login %s: status %d", name, resp.StatusCode)
	}
	_, body = b.get("/account")
	if m := reCSRF.FindStringSubmatch(body); m != nil {
		b.csrf = m[1]
	}
	return b
}

func (b *browser) get(path string) (*http.Response, string) {
	b.e.t.Helper()
	return b.do(http.MethodGet, path, nil, nil)
}

// post sends a form from one of our pages (Origin set), with the CSRF
// token added unless the form has one.
func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" && b.csrf != "" {
		form.Set("csrf", b.csrf)
	}
	return b.do(http.MethodPost, path, strings.NewReader(form.Encode()), http.Header{
		"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {b.e.http.URL}})
}

func (b *browser) do(method, path string, body io.Reader, h http.Header) (*http.Response, string) {
	b.e.t.Helper()
	req, err := http.NewRequest(method, b.e.http.URL+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

// token makes an API token for a test user.
func (e *testEnv) token(user string) string {
	e.t.Helper()
	var tok string
	e.write(func(s *store.Store) error {
		var err error
		tok, _, err = s.CreateToken("test", user, "test")
		return err
	})
	return tok
}

// api calls the JSON API with a token; body is JSON or "".
func (e *testEnv) api(token, method, path, body string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+"/api/v1"+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

// testLogWriter sends the server's log to the test's log, shown on failure.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
