package admin

import (
	"fmt"
	"net/http"
	"net/netip"

	"hedgerow/categories"
	"hedgerow/store"
)

// restrictions lists the devices a pattern of attempts has restricted to
// approved sites, until when. They are the DSL's to see (an address is who)
// and to lift early, for example once they have spoken to the pupil.
func (s *Server) restrictions(c *call) (reply, error) {
	var list []categories.Restriction
	if s.d.Restrictions != nil {
		list = s.d.Restrictions.List(s.d.Now())
	}
	if list == nil {
		list = []categories.Restriction{}
	}
	if len(list) > 0 {
		if err := s.d.Write(func(st *store.Store) error {
			return st.RecordView(c.actor(), "restrictions-view", fmt.Sprintf("%d restricted devices from %s", len(list), c.from()))
		}); err != nil {
			return reply{}, err
		}
	}
	if c.api {
		return reply{data: list}, nil
	}
	return reply{page: "restrictions.html", title: "Restricted devices", data: struct {
		List    []categories.Restriction
		Enabled bool
	}{list, s.d.Restrictions != nil}}, nil
}

func (s *Server) liftRestriction(c *call) (reply, error) {
	addr, err := netip.ParseAddr(c.r.PathValue("addr"))
	if err != nil {
		return reply{}, notFound("device %q: want an IP address", c.r.PathValue("addr"))
	}
	reason := c.value("reason")
	if reason == "" {
		return reply{}, badRequest("a reason is required: say why the restriction ends early")
	}
	if s.d.Restrictions == nil || !s.d.Restrictions.Active(addr, s.d.Now()) {
		return reply{}, notFound("device %s is not restricted", addr)
	}
	if err := s.d.Write(func(st *store.Store) error {
		return st.RecordAction(c.actor(), "restrictions-lift", "device "+addr.String(), reason)
	}); err != nil {
		return reply{}, err
	}
	s.d.Restrictions.Lift(addr)
	return reply{redirect: "/restrictions", message: fmt.Sprintf("The restriction on %s is lifted.", addr)}, nil
}

func (s *Server) restrictionRoutes() []route {
	return []route{
		{http.MethodGet, "/restrictions", roleDSL, true, true, s.restrictions},
		{http.MethodPost, "/restrictions/{addr}/lift", roleDSL, true, true, s.liftRestriction},
	}
}
