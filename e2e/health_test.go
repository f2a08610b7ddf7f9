package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestHealth: /healthz says the process is up; /readyz and hedgerow status
// say whether the filter can serve (lists loaded, database readable, an
// upstream answering), and stop saying so when the upstream dies.
func TestHealth(t *testing.T) {
	data := t.TempDir()
	up, stop := startUnbound(t, []string{"ready.test. 300 IN A 127.0.0.1"}, "ready.test")
	s := startServeAll(t, data, "--upstream", up)
	get := func(path string) (int, string) {
		resp, err := http.Get(s.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	code, body := get("/readyz")
	var rd struct {
		Ready bool `json:"ready"`
		Lists struct {
			Entries int `json:"entries"`
		} `json:"lists"`
		Upstreams []struct {
			OK bool `json:"ok"`
		} `json:"upstreams"`
	}
	if err := json.Unmarshal([]byte(body), &rd); err != nil || code != 200 || !rd.Ready || rd.Lists.Entries == 0 ||
		len(rd.Upstreams) != 1 || !rd.Upstreams[0].OK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	admin := strings.TrimPrefix(s.admin, "http://")
	if out, errs, code := run(t, "", "status", "--admin", admin); code != 0 || !strings.Contains(out, "ready") {
		t.Errorf("status: %d %s %s", code, out, errs)
	}

	stop() // the only upstream goes away
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "no upstream resolver answers") {
		t.Errorf("/readyz without an upstream: %d %s", code, body)
	}
	if out, _, code := run(t, "", "status", "--admin", admin); code != 1 || !strings.Contains(out, "NOT READY") {
		t.Errorf("status without an upstream: exit %d\n%s", code, out)
	}
	if _, errs, code := run(t, "", "status", "--admin", "127.0.0.1:1"); code != 2 || !strings.Contains(errs, "does not answer") {
		t.Errorf("status with no serve: exit %d %s", code, errs)
	}
}
