package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestContextAndPatternRestrict: for a group with incident context on, a
// high-severity incident carries the sites the device reached just before
// (adverts left out); with incidents.pattern_restrict set, a pattern limits
// that device, and only that device, to approved sites on the DNS filter.
func TestContextAndPatternRestrict(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not installed (apt-get install bind9-dnsutils; .ci/run does): skipping")
	}
	data := t.TempDir()
	for _, args := range [][]string{
		{"clients", "add", "127.3.0.0/16", "sixth-form"},
		{"groups", "proxy", "sixth-form", "--context", "on"},
		{"lists", "add", "ads.tracker.test", "--category", "advertising"},
		{"lists", "add", "learn.test", "--category", "education"},
	} {
		mustRun(t, "", append(args, "--data", data, "--reason", "test")...)
	}
	for i := range 3 {
		mustRun(t, "", "lists", "add", fmt.Sprintf("bad%d.test", i), "--category", "self-harm", "--data", data, "--reason", "test")
	}
	up, _ := startUnbound(t, []string{"ready.test. 300 IN A 127.0.0.1", "homework.test. 300 IN A 127.0.0.1",
		"ads.tracker.test. 300 IN A 127.0.0.1", "news.test. 300 IN A 127.0.0.1", "learn.test. 300 IN A 127.0.0.1"}, "ready.test")
	cfg := filepath.Join(t.TempDir(), "hedgerow.yaml")
	if err := os.WriteFile(cfg, []byte("incidents:\n  pattern_count: 3\n  pattern_restrict: 1h\n  batch_interval: 100ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServeAll(t, data, "--upstream", up, "--config", cfg)
	const pupil, other = "127.3.0.7", "127.3.0.8"
	for _, name := range []string{"homework.test", "ads.tracker.test", "news.test"} {
		if r := dig(t, s.dns, "-b", pupil, name); r.status != "NOERROR" {
			t.Fatalf("%s before the pattern: %s", name, r.status)
		}
	}
	for i := range 3 {
		if r := dig(t, s.dns, "-b", pupil, fmt.Sprintf("bad%d.test", i)); r.status != "NXDOMAIN" {
			t.Fatalf("bad%d.test: %s", i, r.status)
		}
	}
	// The pattern commits within a batch interval; then the device is restricted.
	deadline := time.Now().Add(10 * time.Second)
	for dig(t, s.dns, "-b", pupil, "news.test").status != "NXDOMAIN" {
		if time.Now().After(deadline) {
			t.Fatalf("the device was not restricted after a pattern (serve's log follows)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := dig(t, s.dns, "-b", pupil, "learn.test"); r.status != "NOERROR" {
		t.Errorf("an education site for the restricted device: %s, want NOERROR", r.status)
	}
	if r := dig(t, s.dns, "-b", other, "news.test"); r.status != "NOERROR" {
		t.Errorf("another device: %s, want NOERROR", r.status)
	}
	out := mustRun(t, "", "incidents", "list", "--client", pupil, "--json", "--data", data)
	var incs []struct {
		Host    string `json:"host"`
		Rule    string `json:"rule"`
		Context []struct {
			Host string `json:"host"`
		} `json:"context"`
	}
	if err := json.Unmarshal([]byte(out), &incs); err != nil {
		t.Fatalf("incidents list: %v\n%s", err, out)
	}
	var first []string
	for _, in := range incs {
		if in.Host == "bad0.test" {
			for _, v := range in.Context {
				first = append(first, v.Host)
			}
		}
	}
	if !slices.Equal(first, []string{"homework.test", "news.test"}) {
		t.Errorf("context of the first incident %v, want the sites before it without the tracker", first)
	}
	// The log is read once serve has stopped: it is written until then.
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = s.cmd.Wait()
	if !strings.Contains(s.logs.String(), "device restricted to approved sites after a pattern") ||
		strings.Contains(s.logs.String(), pupil) {
		t.Errorf("the restriction should be logged without the device's address:\n%s", s.logs.String())
	}
}
