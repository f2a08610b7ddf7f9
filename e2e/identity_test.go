package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestIdentityFromLeases: hedgerow serve follows a dnsmasq lease file; an
// address whose lease moves from one laptop to another mid-test has its
// incidents before the move on the first laptop and after it on the second,
// and a device IT staff named with a group gets that group's policy.
func TestIdentityFromLeases(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not installed (apt-get install bind9-dnsutils; .ci/run does): skipping")
	}
	data := t.TempDir()
	mustRun(t, "", "clients", "add", "127.4.0.0/16", "ks3-ks4", "--data", data, "--reason", "test")
	mustRun(t, "", "lists", "add", "bad.test", "--category", "adult", "--data", data, "--reason", "test")
	mustRun(t, "", "lists", "add", "games.test", "--category", "games", "--data", data, "--reason", "test")
	leases := filepath.Join(t.TempDir(), "dnsmasq.leases")
	writeLeases := func(mac, name string) {
		t.Helper()
		line := fmt.Sprintf("%d %s 127.4.0.5 %s 01:%s\n", time.Now().Add(time.Hour).Unix(), mac, name, mac)
		tmp := leases + ".tmp"
		if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, leases); err != nil { // as dnsmasq does: readers never see half a file
			t.Fatal(err)
		}
	}
	writeLeases("aa:bb:cc:00:00:01", "laptop-a")
	cfg := filepath.Join(t.TempDir(), "hedgerow.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `incidents:
  batch_interval: 100ms
identity:
  poll: 100ms
  leases:
    - file: %s
      format: dnsmasq
  devices:
    - addr: 127.4.0.9
      name: staffroom-pc
      group: staff
`, leases), 0o600); err != nil {
		t.Fatal(err)
	}
	up, _ := startUnbound(t, []string{"ready.test. 300 IN A 127.0.0.1", "games.test. 300 IN A 127.0.0.1"}, "ready.test")
	s := startServeAll(t, data, "--upstream", up, "--config", cfg)

	type inc struct {
		Host, Device, MAC, Identified, Group string
	}
	incidents := func() map[string]inc {
		out := mustRun(t, "", "incidents", "list", "--limit", "0", "--json", "--data", data)
		var list []inc
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("incidents list: %v\n%s", err, out)
		}
		m := map[string]inc{}
		for _, in := range list {
			m[in.Host] = in
		}
		return m
	}
	// waitIncident digs name from src until its incident is stored, and
	// returns it (bounded).
	waitIncident := func(src, name string) inc {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			dig(t, s.dns, "-b", src, name)
			if in, ok := incidents()[name]; ok {
				return in
			}
			if time.Now().After(deadline) {
				t.Fatalf("no incident for %s (serve's log follows)", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The follower has read the file once serve answers; the first attempt
	// is laptop A's.
	deadline := time.Now().Add(15 * time.Second)
	var before inc
	for i := 0; ; i++ {
		before = waitIncident("127.4.0.5", fmt.Sprintf("a%d.bad.test", i))
		if before.Device == "laptop-a" || time.Now().After(deadline) {
			break
		}
	}
	if before.Device != "laptop-a" || before.MAC != "aa:bb:cc:00:00:01" || before.Identified != "device: lease, mac: lease" {
		t.Fatalf("before the move: %+v, want laptop-a from the lease", before)
	}
	// The lease moves to laptop B; attempts after the move are B's.
	writeLeases("aa:bb:cc:00:00:02", "laptop-b")
	var after inc
	for i := 0; ; i++ {
		after = waitIncident("127.4.0.5", fmt.Sprintf("b%d.bad.test", i))
		if after.Device == "laptop-b" {
			break
		}
		if after.Device != "laptop-a" || time.Now().After(deadline.Add(15*time.Second)) {
			t.Fatalf("after the move: %+v, want laptop-a until the file is read again, then laptop-b", after)
		}
	}
	if after.MAC != "aa:bb:cc:00:00:02" {
		t.Errorf("after the move: MAC %s, want laptop B's", after.MAC)
	}
	// The incidents from before the move still name laptop A.
	if got := incidents()[before.Host]; got.Device != "laptop-a" {
		t.Errorf("the incident before the move now names %q", got.Device)
	}
	// A named device with a group: staff, whose policy allows games.
	if r := dig(t, s.dns, "-b", "127.4.0.9", "games.test"); r.status != "NOERROR" {
		t.Errorf("games.test from the staff-room PC: %s, want NOERROR (its group is staff)", r.status)
	}
	if r := dig(t, s.dns, "-b", "127.4.0.5", "games.test"); r.status != "NXDOMAIN" {
		t.Errorf("games.test from the ks3-ks4 laptop: %s, want NXDOMAIN", r.status)
	}
	staff := waitIncident("127.4.0.9", "pc.bad.test")
	if staff.Device != "staffroom-pc" || staff.Group != "staff" || staff.Identified != "device: static, group: static" {
		t.Errorf("staff-room incident %+v", staff)
	}
}
