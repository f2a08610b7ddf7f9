package admin

import "net/http"

// routes is every page and API call with the role it needs. The
// authorization test walks this table, so a route cannot be added without
// its role being checked.
func (s *Server) routes() []route {
	const get, post = http.MethodGet, http.MethodPost
	routes := []route{
		{get, "/login", rolePublic, true, false, s.loginPage},
		{post, "/login", rolePublic, true, false, s.login},
		{post, "/logout", roleAny, true, false, s.logout},
		{get, "/policy", rolePublic, true, true, s.policyPage},

		{get, "/{$}", roleAny, true, false, s.dashboard},
		{get, "/dashboard", roleAny, false, true, s.dashboard},
		{get, "/incidents", roleAny, true, true, s.incidents},
		{get, "/incidents/export", roleDSL, true, true, s.exportIncidents},
		{get, "/incidents/{id}", roleAny, true, true, s.incident},
		{post, "/incidents/{id}/review", roleDSL, true, true, s.reviewIncident},
		{get, "/test", roleAny, true, true, s.testURL},

		{get, "/account", roleAny, true, true, s.account},
		{post, "/account/tokens", roleAny, true, true, s.createToken},
		{post, "/account/tokens/{id}/revoke", roleAny, true, true, s.revokeToken},
		{post, "/account/password", roleAny, true, true, s.changePassword},
	}
	// Each page file adds its own routes here.
	routes = append(routes, s.listRoutes()...)
	routes = append(routes, s.policyRoutes()...)
	routes = append(routes, s.reviewRoutes()...)
	routes = append(routes, s.restrictionRoutes()...)
	return routes
}
