package admin

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestOpenAPIDescribesEveryRoute keeps admin/openapi.yaml honest: every API
// route is described with the role it really needs, and nothing described
// is missing from the server.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Role string `yaml:"x-role"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	e := newTestEnv(t)
	roleWord := map[string]string{rolePublic: "public", roleAny: "staff", roleAdmin: "admin", roleDSL: "dsl"}
	seen := map[string]bool{}
	for _, rt := range e.srv.routes() {
		if !rt.api {
			continue
		}
		path := strings.TrimSuffix(rt.path, "/")
		op, ok := doc.Paths[path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("%s %s is served but not described in openapi.yaml", rt.method, path)
			continue
		}
		seen[rt.method+" "+path] = true
		if op.Role != roleWord[rt.role] {
			t.Errorf("%s %s: x-role %q, but the route needs %q", rt.method, path, op.Role, roleWord[rt.role])
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if !seen[strings.ToUpper(method)+" "+path] {
				t.Errorf("openapi.yaml describes %s %s, which the server does not serve", strings.ToUpper(method), path)
			}
		}
	}
}
