package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// deployDir is deploy/ beside this package.
func deployDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(filepath.Dir(file)), "deploy")
}

// TestDeployMetricNames: every hedgerow metric the Prometheus rules and the
// Grafana dashboard use exists in a running hedgerow's /metrics, so neither
// can silently watch nothing.
func TestDeployMetricNames(t *testing.T) {
	data := t.TempDir()
	up, _ := startUnbound(t, []string{"ready.test. 300 IN A 127.0.0.1"}, "ready.test")
	s := startServeAll(t, data, "--upstream", up)
	// Labelled series appear once something used them: a forwarded query,
	// a blocked one and a proxied request.
	dig(t, s.dns, "-b", "127.0.0.1", "ready.test")
	dig(t, s.dns, "-b", "127.0.0.1", "pornhub.com")
	waitProxy(t, s.proxy)
	if _, err := exec.LookPath("curl"); err == nil {
		curlVia(t, s.proxy, "127.0.0.1", "http://pornhub.com/")
	}
	resp, err := http.Get(s.metrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	exported := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			exported[strings.Fields(name)[0]] = true
		}
	}
	// A histogram's series are its name plus _bucket, _sum and _count.
	known := func(name string) bool {
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] {
				return true
			}
		}
		return false
	}
	metric := regexp.MustCompile(`\bhedgerow_[a-z0-9_]+`)
	for _, file := range []string{"prometheus/hedgerow-rules.yml", "grafana/hedgerow-dashboard.json"} {
		raw, err := os.ReadFile(filepath.Join(deployDir(), file))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(file, ".json") && !json.Valid(raw) {
			t.Errorf("%s is not valid JSON", file)
		}
		names := metric.FindAllString(string(raw), -1)
		if len(names) == 0 {
			t.Errorf("%s names no hedgerow metric", file)
		}
		for _, name := range names {
			if !known(name) {
				t.Errorf("%s uses %s, which hedgerow does not export", file, name)
			}
		}
	}
}
