package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"hedgerow/store"
)

// Who may use a route.
const (
	rolePublic = ""  // anyone, no login: the published filtering policy, the login page
	roleAny    = "*" // any staff role
	roleAdmin  = store.RoleAdmin
	roleDSL    = store.RoleDSL
)

// route is one page or action. A route with api set is served under
// /api/v1 too, from the same handler: the API can do everything the pages
// do, with the same role checks.
type route struct {
	method, path string // path as in the UI, e.g. "/incidents/{id}"
	role         string
	html, api    bool
	h            func(c *call) (reply, error)
}

// reply is what a handler produces; how it is written depends on whether
// the call came to a page or to the API.
type reply struct {
	page     string // template (GET pages)
	title    string
	data     any    // template data, or the JSON body
	redirect string // pages: where to go after a change (303)
	message  string // what was done, shown on the next page or in the JSON
	download func(w http.ResponseWriter)
	status   int // pages: a status other than 200, with errMsg shown on the page
	errMsg   string
}

// httpError is an error with the status a client should see.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

// call is one request on its way through a handler.
type call struct {
	s    *Server
	w    http.ResponseWriter
	r    *http.Request
	user store.User
	sess *session // nil for API tokens and anonymous calls
	api  bool
	in   map[string][]string
}

// value returns a form field, query parameter or JSON member.
func (c *call) value(name string) string {
	if v := c.in[name]; len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// values returns every value of a repeated field (or a JSON array).
func (c *call) values(name string) []string { return c.in[name] }

func (c *call) id(name string) (uint64, error) {
	v := c.r.PathValue(name)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, notFound("%s %q: want a number", name, v)
	}
	return n, nil
}

// actor names the person in audit records: their account, and where they
// came from.
func (c *call) actor() string { return c.user.Name }

// from is where the call came from, kept in audit records of views.
func (c *call) from() string { return clientIP(c.r) }

// identities reports whether the caller may see who pupils are.
func (c *call) identities() bool { return hasRole(c.user, roleDSL) }

func (s *Server) handle(rt route) {
	if rt.html {
		s.mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) { s.serve(rt, w, r, false) })
	}
	if rt.api {
		s.mux.HandleFunc(rt.method+" /api/v1"+strings.TrimSuffix(rt.path, "/"), func(w http.ResponseWriter, r *http.Request) { s.serve(rt, w, r, true) })
	}
}

// serve runs one route: who is asking, may they, is a change genuine, then
// the handler, then the answer in the form the caller wants.
func (s *Server) serve(rt route, w http.ResponseWriter, r *http.Request, api bool) {
	c := &call{s: s, w: w, r: r, api: api}
	if r.TLS == nil && !(rt.path == "/policy" && r.Method == http.MethodGet) && !fromLoopback(r) {
		// Passwords, session cookies and pupils' names must not cross the
		// network in clear.
		s.fail(c, &httpError{http.StatusForbidden, "the admin UI answers over plain HTTP only on this server itself; set admin_ui.tls_cert and tls_key to use it from the network"})
		return
	}
	if rt.role != rolePublic {
		u, sess, err := s.authenticate(r)
		if err != nil {
			if api {
				s.fail(c, &httpError{http.StatusUnauthorized, "log in or send an API token (Authorization: Bearer hrt_...)"})
			} else {
				http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			}
			return
		}
		c.user, c.sess = u, sess
		if !hasRole(u, rt.role) {
			s.fail(c, &httpError{http.StatusForbidden, fmt.Sprintf("this needs the %s role, which %s does not have", roleName(rt.role), u.Name)})
			return
		}
	}
	changes := r.Method != http.MethodGet && r.Method != http.MethodHead
	if changes && c.sess != nil {
		// A session rides on a cookie the browser sends by itself, so a
		// change must prove it came from our own page.
		if !sameOrigin(r) {
			s.fail(c, &httpError{http.StatusForbidden, "this change did not come from a hedgerow page (Origin check failed)"})
			return
		}
	}
	if err := c.readInput(); err != nil {
		s.fail(c, err)
		return
	}
	if changes && c.sess != nil {
		tok := r.Header.Get("X-CSRF-Token")
		if tok == "" {
			tok = c.value("csrf")
		}
		if !tokensEqual(tok, c.sess.csrf) {
			s.fail(c, &httpError{http.StatusForbidden, "the form was out of date or did not come from hedgerow (CSRF token missing or wrong); reload the page and try again"})
			return
		}
	}
	rep, err := rt.h(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.answer(c, rt, rep)
}

func roleName(role string) string {
	if role == roleAny {
		return "staff (admin, dsl or viewer)"
	}
	return role
}

// Request body limits: forms and JSON, and list files uploaded to import.
const (
	maxInput  = 1 << 20
	maxUpload = 256 << 20
)

// readInput gathers the query, and for changes the form or JSON body, into
// one map, so one handler serves both pages and API.
func (c *call) readInput() error {
	c.in = map[string][]string{}
	for k, v := range c.r.URL.Query() {
		c.in[k] = v
	}
	if c.r.Method == http.MethodGet {
		return nil
	}
	ct, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var body map[string]any
		dec := json.NewDecoder(io.LimitReader(c.r.Body, maxInput))
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			return badRequest("request body: want a JSON object: %v", err)
		}
		for k, v := range body {
			switch x := v.(type) {
			case []any:
				for _, e := range x {
					c.in[k] = append(c.in[k], fmt.Sprint(e))
				}
			case nil:
			default:
				c.in[k] = []string{fmt.Sprint(x)}
			}
		}
	case "multipart/form-data":
		// A list upload: at most maxUpload in all, of which 32 MiB is held
		// in memory and the rest spills to a temporary file.
		c.r.Body = http.MaxBytesReader(c.w, c.r.Body, maxUpload)
		if err := c.r.ParseMultipartForm(32 << 20); err != nil {
			return badRequest("form: %v", err)
		}
		for k, v := range c.r.MultipartForm.Value {
			c.in[k] = v
		}
	default:
		c.r.Body = http.MaxBytesReader(c.w, c.r.Body, maxInput)
		if err := c.r.ParseForm(); err != nil {
			return badRequest("form: %v", err)
		}
		for k, v := range c.r.PostForm {
			c.in[k] = v
		}
	}
	return nil
}

func (s *Server) answer(c *call, rt route, rep reply) {
	w := c.w
	if rep.download != nil {
		rep.download(w)
		return
	}
	if c.api {
		w.Header().Set("Content-Type", "application/json")
		body := rep.data
		if rep.message != "" {
			body = map[string]any{"message": rep.message, "result": rep.data}
		}
		if body == nil {
			body = map[string]any{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(body)
		return
	}
	if rep.redirect != "" {
		if c.sess != nil && rep.message != "" {
			s.sessions.setFlash(c.sess, rep.message)
		}
		http.Redirect(w, c.r, rep.redirect, http.StatusSeeOther)
		return
	}
	if rep.status == 0 {
		rep.status = http.StatusOK
	}
	s.render(c, rep.status, rep.page, rep.title, rep.data, rep.errMsg)
}

// fail answers an error: JSON for the API, a page for people. Internal
// errors are logged and shown without detail.
func (s *Server) fail(c *call, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		switch {
		case errors.Is(err, store.ErrConflict):
			he = &httpError{http.StatusConflict, err.Error() + ": reload the page, check their change, and make yours again"}
		case errors.Is(err, store.ErrNoIncident), errors.Is(err, store.ErrNoUser), errors.Is(err, store.ErrNoReport):
			he = &httpError{http.StatusNotFound, err.Error()}
		case errors.Is(err, store.ErrLocked):
			he = &httpError{http.StatusServiceUnavailable, "the database is busy (another hedgerow command holds it); try again in a moment"}
		default:
			// Store validation errors name the bad input; they are the
			// caller's to fix. Anything else is logged for IT.
			s.d.Log.Warn("admin request failed", "path", c.r.URL.Path, "user", c.user.Name, "err", err)
			he = &httpError{http.StatusBadRequest, err.Error()}
		}
	}
	if c.api {
		c.w.Header().Set("Content-Type", "application/json")
		c.w.WriteHeader(he.status)
		_ = json.NewEncoder(c.w).Encode(map[string]string{"error": he.msg})
		return
	}
	s.render(c, he.status, "error.html", "Something went wrong", nil, he.msg)
}
