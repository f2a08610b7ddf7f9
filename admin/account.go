package admin

import (
	"hedgerow/store"
)

type accountPage struct {
	User     store.User    `json:"user"`
	Tokens   []store.Token `json:"tokens"`
	NewToken string        `json:"token,omitempty"` // shown once, right after it is made
}

func (s *Server) account(c *call) (reply, error) {
	var p accountPage
	p.User = c.user
	p.User.Hash = nil
	err := s.d.Read(func(st *store.Store) error {
		var err error
		p.Tokens, err = st.Tokens(c.user.Name)
		return err
	})
	if err != nil {
		return reply{}, err
	}
	if c.api {
		return reply{data: p}, nil
	}
	return reply{page: "account.html", title: "My account", data: p}, nil
}

// createToken makes an API token for the caller. The page shows it once,
// rendered straight from this answer, never stored anywhere readable.
func (s *Server) createToken(c *call) (reply, error) {
	var tok string
	var info store.Token
	err := s.d.Write(func(st *store.Store) error {
		var err error
		tok, info, err = st.CreateToken(c.actor(), c.user.Name, c.value("name"))
		return err
	})
	if err != nil {
		return reply{}, err
	}
	if c.api {
		return reply{data: map[string]any{"token": tok, "info": info}, message: "Token created: copy it now, it is not shown again."}, nil
	}
	p, err := s.account(c)
	if err != nil {
		return reply{}, err
	}
	ap := p.data.(accountPage)
	ap.NewToken = tok
	p.data = ap
	return p, nil
}

func (s *Server) revokeToken(c *call) (reply, error) {
	owner := c.user.Name
	if hasRole(c.user, roleAdmin) && c.value("user") != "" {
		owner = "" // administrators may revoke anyone's
	}
	id := c.r.PathValue("id")
	if err := s.d.Write(func(st *store.Store) error { return st.RevokeToken(c.actor(), owner, id) }); err != nil {
		return reply{}, err
	}
	return reply{redirect: "/account", message: "Token " + id + " revoked."}, nil
}

func (s *Server) changePassword(c *call) (reply, error) {
	if !store.CheckPassword(c.user, c.value("current")) {
		return reply{}, badRequest("the current password is wrong")
	}
	if c.value("password") != c.value("confirm") && !c.api {
		return reply{}, badRequest("the new passwords do not match")
	}
	if err := s.d.Write(func(st *store.Store) error {
		return st.SetPassword(c.actor(), "changed by the user in the admin UI", c.user.Name, c.value("password"))
	}); err != nil {
		return reply{}, err
	}
	// Every other session of this user ends; this one gets a new ID.
	s.sessions.endUser(c.user.Name)
	if c.sess != nil {
		sess := s.sessions.start(c.user.Name)
		setCookie(c.w, c.r, sessionCookieName(c.r), sess.id, 0)
		s.sessions.setFlash(sess, "Password changed; other sessions were logged out.")
	}
	return reply{redirect: "/account", message: "Password changed."}, nil
}
