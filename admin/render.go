package admin

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"hedgerow/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFS embed.FS

func staticFiles() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	return http.FileServerFS(sub)
}

// pageTemplate is one page parsed together with the layout.
type pageTemplate struct{ t *template.Template }

var templateFuncs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.Local().Format("Mon 2 Jan 2006 15:04")
	},
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.Local().Format("2 Jan 2006")
	},
	"join":  strings.Join,
	"query": url.QueryEscape,
	"has":   func(u store.User, role string) bool { return hasRole(u, role) },
	"add":   func(a, b int) int { return a + b },
	"pct": func(n, total int) int {
		if total == 0 {
			return 0
		}
		return n * 100 / total
	},
	"contains": func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	},
}

func parsePages() (map[string]*pageTemplate, error) {
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*pageTemplate{}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" || strings.HasPrefix(base, "_") {
			continue
		}
		t, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(templateFiles, "templates/layout.html", "templates/_*.html", n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		pages[base] = &pageTemplate{t}
	}
	return pages, nil
}

// navItem is one link of the menu, shown only to roles that may follow it.
type navItem struct {
	Path, Label string
	Current     bool
}

// pageData is what every template gets.
type pageData struct {
	Title    string
	Me       store.User
	LoggedIn bool
	CSRF     string
	Flash    string
	Error    string
	Nav      []navItem
	Data     any
}

func (s *Server) nav(c *call) []navItem {
	var out []navItem
	add := func(path, label, role string) {
		if hasRole(c.user, role) {
			cur := c.r.URL.Path == path || (path != "/" && strings.HasPrefix(c.r.URL.Path, path+"/"))
			out = append(out, navItem{path, label, cur})
		}
	}
	add("/", "Dashboard", roleAny)
	add("/incidents", "Incidents", roleAny)
	add("/concerns", "Concerns", roleDSL)
	add("/restrictions", "Restricted devices", roleDSL)
	add("/lists", "Lists", roleAdmin)
	add("/policies", "Policies", roleAdmin)
	add("/clients", "Clients", roleAdmin)
	add("/requests", "Unblock requests", roleAdmin)
	add("/test", "Test a URL", roleAny)
	add("/digest", "Digest", roleAny)
	add("/selftests", "Self-tests", roleAny)
	add("/audit", "Audit log", roleAdmin)
	add("/users", "Users", roleAdmin)
	add("/account", "My account", roleAny)
	return out
}

// render writes a page. The template runs into a buffer first so that a
// template error becomes a clean 500, not half a page.
func (s *Server) render(c *call, status int, page, title string, data any, errMsg string) {
	pt := s.pages[page]
	if pt == nil {
		s.d.Log.Error("admin: no such template", "page", page)
		http.Error(c.w, "internal error", http.StatusInternalServerError)
		return
	}
	pd := pageData{Title: title, Me: c.user, LoggedIn: len(c.user.Roles) > 0, Data: data, Error: errMsg}
	if c.sess != nil {
		pd.CSRF = c.sess.csrf
		pd.Flash = s.sessions.takeFlash(c.sess)
		pd.Nav = s.nav(c)
	}
	var buf bytes.Buffer
	if err := pt.t.ExecuteTemplate(&buf, "layout.html", pd); err != nil {
		s.d.Log.Error("admin: template failed", "page", page, "err", err)
		http.Error(c.w, "internal error", http.StatusInternalServerError)
		return
	}
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	c.w.WriteHeader(status)
	_, _ = c.w.Write(buf.Bytes())
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// localPath keeps a "next" parameter to a path on this site, so the login
// form cannot be used to send someone elsewhere.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return p
}
