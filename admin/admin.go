// Package admin serves the web UI and the JSON API where IT staff edit lists,
// policies, clients and users and the Designated Safeguarding Lead reviews
// incidents. It checks, on every request, the Host (against DNS rebinding),
// the login or API token, the role, and for every change the CSRF token and
// Origin; identities in incidents are pseudonymised for everyone but the DSL,
// and every view of them by a person is audited.
package admin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/categories"
	"hedgerow/store"
)

// Config tunes the admin server.
type Config struct {
	// Hosts are the names and addresses the UI may be reached under (the
	// Host header), besides localhost and loopback addresses. A request for
	// any other Host is refused: that is what stops a web page from using
	// DNS rebinding to drive the UI from a staff member's browser.
	Hosts []string
	// SessionIdle ends a session nobody has used for this long (default 30
	// minutes); SessionMax ends any session (default 12 hours).
	SessionIdle, SessionMax time.Duration
	// LoginFailures is how many failed logins an address or an account may
	// make per LoginWindow before further attempts are refused (defaults 10
	// and 15 minutes).
	LoginFailures int
	LoginWindow   time.Duration
	// SelftestDir is where `hedgerow selftest` writes its reports, listed
	// on the self-tests page.
	SelftestDir string
	// FeedSchedule says in words when serve updates the feeds, for the
	// lists page ("every day at 02:30").
	FeedSchedule string
}

// FilterHealth is what the dashboard shows of the running filter.
type FilterHealth struct {
	Ready     bool
	Problems  []string
	Version   string
	Entries   int
	LoadedAt  time.Time
	Upstreams []UpstreamStatus
	Queue     int    // incidents waiting to be written
	Dropped   uint64 // incidents lost to a full queue since start
	// FeedsFailing describes feeds whose last update failed or was refused
	// (their old entries stay in service).
	FeedsFailing []string
}

// UpstreamStatus is one upstream resolver's state.
type UpstreamStatus struct {
	Name  string
	OK    bool
	Error string
}

// Deps is what the admin server works with, passed in by serve.
type Deps struct {
	// Read and Write run fn with the database open for reading or writing;
	// serve does not hold it open, so that the CLI can write too.
	Read  func(fn func(*store.Store) error) error
	Write func(fn func(*store.Store) error) error
	// Filter is the running filter, for "test a URL" and the dashboard.
	Filter *categories.Filter
	// Restrictions are the devices a pattern restricted to approved sites
	// (incidents.pattern_restrict); the DSL sees and lifts them. May be nil.
	Restrictions *categories.Restrictions
	// Changed asks the running filter to reload lists and policy now, so an
	// edit takes effect within a second.
	Changed func()
	// Health reports the running filter's health for the dashboard.
	Health func(context.Context) FilterHealth
	// RunSelftest runs `hedgerow selftest` against the running filter as
	// actor and returns the HTML report's file name and a one-line
	// summary; nil leaves the button out.
	RunSelftest func(ctx context.Context, actor string) (report, summary string, err error)
	Log         *slog.Logger
	Now         func() time.Time
	// Metrics receives hedgerow_admin_* metrics; may be nil.
	Metrics prometheus.Registerer
}

// Server is the admin UI and API.
type Server struct {
	cfg      Config
	d        Deps
	sessions *sessions
	limiter  *loginLimiter
	pages    map[string]*pageTemplate
	mux      *http.ServeMux
	logins   *prometheus.CounterVec

	keyMu sync.Mutex
	key   []byte // pseudonym key, see pseudonymKey

	selftestRunning atomic.Bool // one self-test at a time

	imports importJobs // background list imports (lists.go); the zero value is ready
}

// New builds the admin server.
func New(cfg Config, d Deps) (*Server, error) {
	if cfg.SessionIdle == 0 {
		cfg.SessionIdle = 30 * time.Minute
	}
	if cfg.SessionMax == 0 {
		cfg.SessionMax = 12 * time.Hour
	}
	if cfg.LoginFailures == 0 {
		cfg.LoginFailures = 10
	}
	if cfg.LoginWindow == 0 {
		cfg.LoginWindow = 15 * time.Minute
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Changed == nil {
		d.Changed = func() {}
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	for i, h := range cfg.Hosts {
		cfg.Hosts[i] = strings.ToLower(strings.TrimSuffix(h, "."))
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("admin templates: %w", err)
	}
	s := &Server{cfg: cfg, d: d, pages: pages,
		sessions: newSessions(cfg.SessionIdle, cfg.SessionMax, d.Now),
		limiter:  newLoginLimiter(cfg.LoginFailures, cfg.LoginWindow, d.Now),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hedgerow_admin_logins_total",
			Help: "Admin UI login attempts by result (ok, failed, limited)."}, []string{"result"}),
	}
	for _, r := range []string{"ok", "failed", "limited"} {
		s.logins.WithLabelValues(r)
	}
	if d.Metrics != nil {
		if err := d.Metrics.Register(s.logins); err != nil {
			return nil, fmt.Errorf("admin metrics: %w", err)
		}
	}
	s.mux = http.NewServeMux()
	for _, rt := range s.routes() {
		s.handle(rt)
	}
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", staticFiles()))
	return s, nil
}

// Handler serves the UI and API, and passes every other path (metrics,
// health, the PAC file) to next.
func (s *Server) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := s.mux.Handler(r); pattern != "" {
			if !s.hostAllowed(r.Host) {
				http.Error(w, fmt.Sprintf("hedgerow admin: the host name %q is not one this UI answers to; add it to admin_ui.hosts in the configuration", r.Host), http.StatusMisdirectedRequest)
				return
			}
			securityHeaders(w)
			s.mux.ServeHTTP(w, r) // (not the Handler's result: only ServeHTTP sets path values)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed checks the Host header against the configured names,
// localhost and IP literals. An IP literal is safe: DNS rebinding needs a
// name the attacker controls.
func (s *Server) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || net.ParseIP(host) != nil {
		return true
	}
	for _, h := range s.cfg.Hosts {
		if h == host {
			return true
		}
	}
	return false
}

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}
