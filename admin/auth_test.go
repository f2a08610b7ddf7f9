package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"hedgerow/store"
)

// concretePath fills a route's wildcards with plausible values.
func concretePath(p string) string {
	r := strings.NewReplacer("{$}", "", "{id}", "1", "{group}", "ks2", "{name}", "vic", "{addr}", "10.0.0.5")
	return r.Replace(p)
}

// TestAuthorizationTable walks every route, as a page and as an API call,
// for every role and for nobody, and checks the role gate: anonymous
// callers are sent to the login page (401 for the API), the wrong role gets
// 403, the right role gets past the gate.
func TestAuthorizationTable(t *testing.T) {
	e := newTestEnv(t)
	sessions := map[string]*browser{}
	tokens := map[string]string{}
	for _, who := range []string{"ada", "dora", "vic"} {
		sessions[who] = e.browser().login(who)
		tokens[who] = e.token(who)
	}
	roleOf := map[string]string{"ada": store.RoleAdmin, "dora": store.RoleDSL, "vic": store.RoleViewer}
	for _, rt := range e.srv.routes() {
		for _, who := range []string{"", "ada", "dora", "vic"} {
			allowed := rt.role == rolePublic || (who != "" && (rt.role == roleAny || rt.role == roleOf[who]))
			path := concretePath(rt.path)
			name := rt.method + " " + rt.path + " as " + map[bool]string{true: who, false: "anonymous"}[who != ""]
			if rt.html {
				t.Run("page "+name, func(t *testing.T) {
					b := e.browser()
					if who != "" {
						b = sessions[who]
						if rt.path == "/logout" {
							b = e.browser().login(who) // logging out must not end the shared session
						}
					}
					var resp *http.Response
					if rt.method == http.MethodGet {
						resp, _ = b.get(path)
					} else {
						resp, _ = b.post(path, url.Values{})
					}
					loc := resp.Header.Get("Location")
					switch {
					case allowed && ((resp.StatusCode == http.StatusForbidden && rt.role != rolePublic) || strings.HasPrefix(loc, "/login?")):
						// (a public form's own CSRF check may answer 403)
						t.Errorf("status %d (Location %q): the %s role should get past the gate", resp.StatusCode, loc, rt.role)
					case !allowed && who == "" && !(resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(loc, "/login?")):
						t.Errorf("anonymous: status %d Location %q, want 303 to the login page", resp.StatusCode, loc)
					case !allowed && who != "" && resp.StatusCode != http.StatusForbidden:
						t.Errorf("status %d, want 403", resp.StatusCode)
					}
				})
			}
			if rt.api {
				t.Run("api "+name, func(t *testing.T) {
					body := ""
					if rt.method != http.MethodGet {
						body = "{}"
					}
					resp, _ := e.api(tokens[who], rt.method, strings.TrimSuffix(path, "/"), body)
					switch {
					case allowed && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
						t.Errorf("status %d: should get past the gate", resp.StatusCode)
					case !allowed && who == "" && resp.StatusCode != http.StatusUnauthorized:
						t.Errorf("anonymous: status %d, want 401", resp.StatusCode)
					case !allowed && who != "" && resp.StatusCode != http.StatusForbidden:
						t.Errorf("status %d, want 403", resp.StatusCode)
					}
				})
			}
		}
	}
}

func TestAccountsWithoutStaffRoleCannotLogIn(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	_, body := b.get("/login")
	tok := reLoginToken.FindStringSubmatch(body)[1]
	resp, body := b.post("/login", url.Values{"token": {tok}, "name": {"pupil"}, "password": {testPassword}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "without a staff role") {
		t.Errorf("proxy-only account: status %d", resp.StatusCode)
	}
}

func TestCSRFAndOrigin(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser().login("ada")
	post := func(form url.Values, origin string) int {
		h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
		if origin != "" {
			h.Set("Origin", origin)
		}
		resp, _ := b.do(http.MethodPost, "/account/tokens", strings.NewReader(form.Encode()), h)
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name   string
		csrf   string
		origin string
		want   int
	}{
		{"missing token", "", e.http.URL, http.StatusForbidden},
		{"wrong token", "x" + b.csrf[1:], e.http.URL, http.StatusForbidden},
		{"another site's form", b.csrf, "https://evil.example", http.StatusForbidden},
		{"no Origin or Referer", b.csrf, "", http.StatusForbidden},
		{"our own page", b.csrf, e.http.URL, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := post(url.Values{"csrf": {tc.csrf}, "name": {"script"}}, tc.origin); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
	var n int
	e.read(func(s *store.Store) error { toks, err := s.Tokens("ada"); n = len(toks); return err })
	if n != 1 {
		t.Errorf("%d tokens made, want 1 (only the genuine request)", n)
	}
	// The login form has its own double-submit token.
	fresh := e.browser()
	resp, _ := fresh.post("/login", url.Values{"token": {"forged"}, "name": {"ada"}, "password": {testPassword}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without the form's token: status %d, want 403", resp.StatusCode)
	}
}

func TestSessionFixationAndLogout(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	u, _ := url.Parse(e.http.URL)
	planted := &http.Cookie{Name: "hedgerow_session", Value: "attacker-chosen-id", Path: "/"}
	b.c.Jar.SetCookies(u, []*http.Cookie{planted})
	b.login("dora")
	var id string
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "hedgerow_session" {
			id = c.Value
		}
	}
	if id == "" || id == planted.Value {
		t.Fatalf("session ID after login %q: want a new one", id)
	}
	if resp, _ := b.get("/incidents"); resp.StatusCode != http.StatusOK {
		t.Fatalf("logged in: status %d", resp.StatusCode)
	}
	if resp, _ := b.post("/logout", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: status %d", resp.StatusCode)
	}
	// The old ID is dead even if someone kept a copy.
	thief := e.browser()
	thief.c.Jar.SetCookies(u, []*http.Cookie{{Name: "hedgerow_session", Value: id, Path: "/"}})
	if resp, _ := thief.get("/incidents"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a logged-out session still works: status %d", resp.StatusCode)
	}
	// Disabling the account ends its sessions at once.
	b2 := e.browser().login("vic")
	e.write(func(s *store.Store) error {
		return s.UpdateUser("test", "left the school", "vic", func(u *store.User) error { u.Disabled = true; return nil })
	})
	if resp, _ := b2.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a disabled account's session still works: status %d", resp.StatusCode)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newTestEnv(t) // 5 failures per window
	b := e.browser()
	try := func(name, pw string) int {
		_, body := b.get("/login")
		tok := reLoginToken.FindStringSubmatch(body)[1]
		resp, _ := b.post("/login", url.Values{"token": {tok}, "name": {name}, "password": {pw}})
		return resp.StatusCode
	}
	for i := range 5 {
		if got := try("ada", "wrong password "+string(rune('a'+i))); got != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d, want 401", i+1, got)
		}
	}
	if got := try("ada", testPassword); got != http.StatusTooManyRequests {
		t.Errorf("right password after 5 failures: status %d, want 429", got)
	}
	if got := try("dora", testPassword); got != http.StatusTooManyRequests {
		t.Errorf("another account from the same address: status %d, want 429", got)
	}
}

func TestHostCheck(t *testing.T) {
	e := newTestEnv(t)
	e.srv.cfg.Hosts = []string{"filter.school.example"}
	for host, want := range map[string]int{
		"evil.example":                http.StatusMisdirectedRequest, // DNS rebinding: the attacker's name
		"filter.school.example.evil":  http.StatusMisdirectedRequest,
		"filter.school.example":       http.StatusOK,
		"FILTER.school.example.:9153": http.StatusOK,
		"localhost:9153":              http.StatusOK,
		"127.0.0.1":                   http.StatusOK,
		"[::1]:9153":                  http.StatusOK,
	} {
		req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/policy", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: status %d, want %d", host, resp.StatusCode, want)
		}
	}
	// Metrics and health are not the UI's: any Host reaches them.
	req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/metrics", nil)
	req.Host = "evil.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("metrics with another Host: %v %v", resp.StatusCode, err)
	}
}

func TestPlainHTTPOnlyFromLoopback(t *testing.T) {
	e := newTestEnv(t)
	h := e.srv.Handler(http.NotFoundHandler())
	for path, want := range map[string]int{"/login": http.StatusForbidden, "/policy": http.StatusOK} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Host = "10.0.0.53:9153"
		req.RemoteAddr = "10.1.2.3:50000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%s over plain HTTP from the network: status %d, want %d", path, rec.Code, want)
		}
	}
}

// xss are hostile strings an incident can carry: a URL or search term is
// whatever a pupil typed.
var xss = []string{`<script>alert(1)</script>`, `"><img src=x onerror=alert(2)>`, `javascript:alert(3)`, `'><svg onload=alert(4)>`}

func TestIncidentsPseudonymisedAndAudited(t *testing.T) {
	e := newTestEnv(t)
	now := time.Now().UTC()
	e.write(func(s *store.Store) error {
		return s.SaveIncidents([]store.Incident{{First: now, Last: now, Count: 3, Channel: "https", Client: "10.9.8.7", User: "jsmith",
			Group: "ks3-ks4", Host: "self-harm.example", URL: "https://self-harm.example/how?q=" + xss[0], SearchTerm: xss[1],
			Category: "self-harm", Severity: "high", Rule: "list", Blocked: true, Review: true, State: store.StateNew}})
	})
	e.write(func(s *store.Store) error {
		return s.ReviewIncident("dora", 1, store.StateEscalated, "spoke to "+xss[2])
	})
	_, viewer := e.browser().login("vic").get("/incidents/1")
	for _, secret := range []string{"10.9.8.7", "jsmith", "self-harm.example/how", "spoke to"} {
		if strings.Contains(viewer, secret) {
			t.Errorf("a viewer sees %q", secret)
		}
	}
	if !strings.Contains(viewer, "pupil-") {
		t.Error("a viewer sees no pseudonym")
	}
	_, tokenView := e.api(e.token("ada"), http.MethodGet, "/incidents", "")
	if strings.Contains(tokenView, "10.9.8.7") || !strings.Contains(tokenView, `"pseudonymised": true`) {
		t.Errorf("an admin's API view is not pseudonymised: %s", tokenView)
	}
	dsl := e.browser().login("dora")
	_, page := dsl.get("/incidents/1")
	for _, want := range []string{"10.9.8.7", "jsmith", "escalated"} {
		if !strings.Contains(page, want) {
			t.Errorf("the DSL does not see %q", want)
		}
	}
	for _, x := range xss {
		if strings.Contains(page, x) && !strings.HasPrefix(x, "javascript:") || strings.Contains(page, `href="javascript:alert`) {
			t.Errorf("payload %q rendered raw", x)
		}
	}
	if !strings.Contains(page, "&lt;script&gt;") {
		t.Error("the payload is not shown escaped")
	}
	resp, csv := dsl.get("/incidents/export?format=csv")
	if resp.StatusCode != 200 || !strings.Contains(csv, "10.9.8.7") || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("export: %d %q", resp.StatusCode, csv)
	}
	var recs []store.AuditRecord
	e.read(func(s *store.Store) error { var err error; recs, err = s.Audit(20); return err })
	views := map[string]int{}
	for _, r := range recs {
		if (r.Action == "incidents-view" || r.Action == "incidents-show" || r.Action == "incidents-export") && r.Actor == "dora" {
			views[r.Action]++
			if !strings.Contains(r.Target, "from 127.0.0.1") || !strings.Contains(r.Target, "1") {
				t.Errorf("audit target %q: want the records and where from", r.Target)
			}
		}
		if r.Actor == "vic" || r.Actor == "ada" {
			t.Errorf("a pseudonymised view was audited as identifying: %+v", r)
		}
	}
	if views["incidents-show"] != 1 || views["incidents-export"] != 1 {
		t.Errorf("audited DSL views %v, want one show and one export", views)
	}
}

func TestReviewThroughPageAndAPI(t *testing.T) {
	e := newTestEnv(t)
	now := time.Now().UTC()
	e.write(func(s *store.Store) error {
		return s.SaveIncidents([]store.Incident{{First: now, Last: now, Count: 1, Channel: "dns", Client: "10.0.0.1", Group: "ks2",
			Host: "a.example", Category: "adult", Severity: "high", Rule: "list", Blocked: true, Review: true, State: store.StateNew}})
	})
	b := e.browser().login("dora")
	if resp, body := b.post("/incidents/1/review", url.Values{"state": {"reviewed"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "note is required") {
		t.Errorf("review without a note: %d", resp.StatusCode)
	}
	if resp, _ := b.post("/incidents/1/review", url.Values{"state": {"reviewed"}, "note": {"checked with the class teacher"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("review: %d", resp.StatusCode)
	}
	if _, page := b.get("/incidents/1"); !strings.Contains(page, "Incident 1 marked reviewed") || !strings.Contains(page, "checked with the class teacher") {
		t.Error("the review is not shown after saving")
	}
	resp, body := e.api(e.token("dora"), http.MethodPost, "/incidents/1/review", `{"state":"escalated","note":"referred to social care"}`)
	var out struct {
		Message string `json:"message"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &out) != nil || !strings.Contains(out.Message, "escalated") {
		t.Errorf("API review: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.api(e.token("vic"), http.MethodPost, "/incidents/1/review", `{"state":"dismissed","note":"x"}`); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer reviewed: %d", resp.StatusCode)
	}
}

func TestTestURLEscapesInput(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser().login("vic")
	for _, x := range xss {
		_, page := b.get("/test?group=ks2&url=" + url.QueryEscape(x))
		if strings.Contains(page, x) && !strings.HasPrefix(x, "javascript:") || strings.Contains(page, `href="javascript:alert`) {
			t.Errorf("payload %q rendered raw", x)
		}
	}
	_, page := b.get("/test?group=ks2&url=adult.example")
	if !strings.Contains(page, "Blocked for ks2") {
		t.Errorf("verdict missing:\n%s", page)
	}
}
