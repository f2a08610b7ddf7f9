package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"hedgerow/store"
)

// maxSessions bounds the memory sessions take: a school has a handful of
// staff using the UI; past this the oldest session is ended.
const maxSessions = 1000

// session is a logged-in browser. Sessions live in memory only: a restart
// logs everyone out, and no session secret is ever written to disk.
type session struct {
	id      string
	user    string
	csrf    string
	created time.Time
	seen    time.Time
	flash   string // a message for the next page, e.g. "incident 7 reviewed"
}

type sessions struct {
	mu        sync.Mutex
	byID      map[string]*session
	idle, max time.Duration
	now       func() time.Time
}

func newSessions(idle, max time.Duration, now func() time.Time) *sessions {
	return &sessions{byID: map[string]*session{}, idle: idle, max: max, now: now}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux; a zero token would still be unguessable by nobody, so it is checked below
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// start makes a new session for user: always a new ID, so an ID planted in
// the browser before login (session fixation) is worth nothing.
func (ss *sessions) start(user string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	if len(ss.byID) >= maxSessions {
		var oldest *session
		for _, s := range ss.byID {
			if oldest == nil || s.seen.Before(oldest.seen) {
				oldest = s
			}
		}
		delete(ss.byID, oldest.id)
	}
	s := &session{id: randomToken(), user: user, csrf: randomToken(), created: now, seen: now}
	ss.byID[s.id] = s
	return s
}

// get returns the live session with this ID and marks it used.
func (ss *sessions) get(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[id]
	if s == nil {
		return nil
	}
	now := ss.now()
	if now.Sub(s.seen) > ss.idle || now.Sub(s.created) > ss.max {
		delete(ss.byID, id)
		return nil
	}
	s.seen = now
	return s
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, id)
}

// endUser ends every session of a user: after a password change, removal
// or disabling, nobody stays logged in as them.
func (ss *sessions) endUser(user string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, s := range ss.byID {
		if s.user == user {
			delete(ss.byID, id)
		}
	}
}

func (ss *sessions) takeFlash(s *session) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}

func (ss *sessions) setFlash(s *session, msg string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s.flash = msg
}

// loginLimiter counts failed logins per address and per account in a fixed
// window: guessing passwords gets a few tries, not thousands.
type loginLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	now    func() time.Time
	fails  map[string]*failWindow
}

type failWindow struct {
	n     int
	start time.Time
}

func newLoginLimiter(max int, window time.Duration, now func() time.Time) *loginLimiter {
	return &loginLimiter{max: max, window: window, now: now, fails: map[string]*failWindow{}}
}

// blocked reports whether any of the keys has used up its failures, and
// for how long it stays blocked.
func (l *loginLimiter) blocked(keys ...string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		if f := l.fails[k]; f != nil && now.Sub(f.start) < l.window && f.n >= l.max {
			return true, l.window - now.Sub(f.start)
		}
	}
	return false, 0
}

func (l *loginLimiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.fails) > 10000 { // bound memory under a spray of names
		for k, f := range l.fails {
			if now.Sub(f.start) >= l.window {
				delete(l.fails, k)
			}
		}
	}
	for _, k := range keys {
		f := l.fails[k]
		if f == nil || now.Sub(f.start) >= l.window {
			f = &failWindow{start: now}
			l.fails[k] = f
		}
		f.n++
	}
}

func (l *loginLimiter) succeed(account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, account)
}

// Cookie names. Over TLS the __Host- prefix makes the browser refuse a
// cookie set by another host or path, or without Secure.
func sessionCookieName(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-hedgerow_session"
	}
	return "hedgerow_session"
}

func loginCookieName(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-hedgerow_login"
	}
	return "hedgerow_login"
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// errUnauthenticated means no valid session or token came with the request.
var errUnauthenticated = errors.New("not logged in")

// authenticate finds who is asking: an API token in the Authorization
// header, or a session cookie. The user is read afresh from the database,
// so a disabled or removed account stops working at once.
func (s *Server) authenticate(r *http.Request) (store.User, *session, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return store.User{}, nil, errUnauthenticated
		}
		var u store.User
		err := s.d.Read(func(st *store.Store) error {
			var err error
			u, err = st.TokenUser(strings.TrimSpace(tok))
			return err
		})
		if err != nil {
			return store.User{}, nil, errUnauthenticated
		}
		return u, nil, nil
	}
	c, err := r.Cookie(sessionCookieName(r))
	if err != nil {
		return store.User{}, nil, errUnauthenticated
	}
	sess := s.sessions.get(c.Value)
	if sess == nil {
		return store.User{}, nil, errUnauthenticated
	}
	var u store.User
	err = s.d.Read(func(st *store.Store) error {
		var err error
		u, err = st.User(sess.user)
		return err
	})
	if err != nil || u.Disabled || len(u.Roles) == 0 {
		s.sessions.end(sess.id)
		return store.User{}, nil, errUnauthenticated
	}
	return u, sess, nil
}

// sameOrigin checks that a state-changing request comes from a page of
// this UI: the Origin header, or failing that the Referer, must name the
// host the request was sent to. Browsers send Origin on every POST, so a
// form on another site (or a rebinding page) is refused even before the
// CSRF token is looked at.
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" || src == "null" {
		return false
	}
	u, err := url.Parse(src)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

func tokensEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// clientIP is the address a request came from, for rate limits and the
// audit trail.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func fromLoopback(r *http.Request) bool {
	ip := net.ParseIP(clientIP(r))
	return ip != nil && ip.IsLoopback()
}

// hasRole reports whether u holds role; roleAny is any staff role.
func hasRole(u store.User, role string) bool {
	if role == roleAny {
		return len(u.Roles) > 0
	}
	return slices.Contains(u.Roles, role)
}
