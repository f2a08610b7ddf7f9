package admin

import (
	"fmt"
	"net/http"
	"strings"

	"hedgerow/store"
)

// The login form is protected against login CSRF (a page logging a staff
// browser into an attacker's account) by a double-submit token: a random
// value in a cookie that must come back in the form.

func (s *Server) loginPage(c *call) (reply, error) {
	tok := randomToken()
	setCookie(c.w, c.r, loginCookieName(c.r), tok, 3600)
	return reply{page: "login.html", title: "Log in", data: map[string]string{"Token": tok, "Next": localPath(c.value("next"))}}, nil
}

// login checks a login form. A failure shows the form again with the
// reason (the API answers with the status alone).
func (s *Server) login(c *call) (reply, error) {
	rep, err := s.tryLogin(c)
	if err == nil || c.api {
		return rep, err
	}
	he, ok := err.(*httpError)
	if !ok {
		return rep, err
	}
	form, _ := s.loginPage(c)
	form.status, form.errMsg = he.status, he.msg
	return form, nil
}

func (s *Server) tryLogin(c *call) (reply, error) {
	ck, err := c.r.Cookie(loginCookieName(c.r))
	if err != nil || !tokensEqual(ck.Value, c.value("token")) || !sameOrigin(c.r) {
		return reply{}, &httpError{http.StatusForbidden, "the login form was out of date or did not come from hedgerow; reload it and try again"}
	}
	name := strings.ToLower(strings.TrimSpace(c.value("name")))
	ip := clientIP(c.r)
	if limited, wait := s.limiter.blocked("addr:"+ip, "user:"+name); limited {
		s.logins.WithLabelValues("limited").Inc()
		s.d.Log.Warn("admin login refused: too many failures", "user", name, "from", ip)
		c.w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		return reply{}, &httpError{http.StatusTooManyRequests, fmt.Sprintf("too many failed logins; try again in %d minutes", int(wait.Minutes())+1)}
	}
	var u store.User
	err = s.d.Read(func(st *store.Store) error {
		var err error
		u, err = st.User(name)
		return err
	})
	// The password is always checked, even for a missing user, so timing
	// does not tell which names exist.
	ok := store.CheckPassword(u, c.value("password")) && err == nil && !u.Disabled && len(u.Roles) > 0
	if !ok {
		s.limiter.fail("addr:"+ip, "user:"+name)
		s.logins.WithLabelValues("failed").Inc()
		s.d.Log.Warn("admin login failed", "user", name, "from", ip)
		return reply{}, &httpError{http.StatusUnauthorized, "wrong user name or password (accounts without a staff role cannot log in here)"}
	}
	s.limiter.succeed("user:" + name)
	s.logins.WithLabelValues("ok").Inc()
	if old, err := c.r.Cookie(sessionCookieName(c.r)); err == nil {
		s.sessions.end(old.Value)
	}
	sess := s.sessions.start(u.Name)
	setCookie(c.w, c.r, sessionCookieName(c.r), sess.id, 0)
	setCookie(c.w, c.r, loginCookieName(c.r), "", -1)
	s.d.Log.Info("admin login", "user", u.Name, "from", ip)
	return reply{redirect: localPath(c.value("next"))}, nil
}

func (s *Server) logout(c *call) (reply, error) {
	s.sessions.end(c.sess.id)
	setCookie(c.w, c.r, sessionCookieName(c.r), "", -1)
	return reply{redirect: "/login"}, nil
}
