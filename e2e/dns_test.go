package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePort returns a port that was free on 127.0.0.1 for both UDP and TCP.
func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// upstream starts Unbound, a real resolver, on a loopback port, serving a
// local zone: every name the tests ask about answers A 192.0.2.1 and AAAA
// 2001:db8::1 (cname.example is a CNAME to pornhub.com), anything else is
// NXDOMAIN, and nothing is ever looked up on the internet.
func upstream(t *testing.T) string {
	addr, _ := upstreamWithStop(t)
	return addr
}

var upstreamNames = []string{"www.example.org", "facebook.com", "www.youtube.com", "restrict.youtube.com",
	"restrictmoderate.youtube.com", "forcesafesearch.google.com", "strict.bing.com", "safe.duckduckgo.com",
	"live.example", "www.live.example", "ready.example"}

func upstreamWithStop(t *testing.T) (string, func()) {
	t.Helper()
	data := []string{
		"cname.example. 300 IN CNAME pornhub.com.",
		"short.example. 1 IN A 192.0.2.7",      // expires at once: for serve-stale
		"ipcloak.example. 300 IN A 192.0.2.99", // a listed address behind an allowed name
	}
	for i := 1; i <= 40; i++ { // big.example: more than fits in 512 bytes
		data = append(data, fmt.Sprintf("big.example. 300 IN A 192.0.2.%d", i))
	}
	for _, n := range upstreamNames {
		data = append(data, n+". 300 IN A 192.0.2.1", n+". 300 IN AAAA 2001:db8::1")
	}
	return startUnbound(t, data, "www.example.org")
}

// startUnbound runs Unbound on a loopback port answering only from
// localData (records in zone-file form); ready is a name it answers, to
// know when it is up.
func startUnbound(t *testing.T, localData []string, ready string) (string, func()) {
	t.Helper()
	bin, err := exec.LookPath("unbound")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/unbound"); err != nil {
			t.Skip("unbound not installed (apt-get install unbound; .ci/run does): skipping the DNS test")
		}
		bin = "/usr/sbin/unbound"
	}
	dir := t.TempDir()
	port := freePort(t)
	var conf strings.Builder
	fmt.Fprintf(&conf, `server:
  interface: 127.0.0.1@%d
  port: %d
  do-daemonize: no
  use-syslog: no
  logfile: ""
  username: ""
  chroot: ""
  directory: %q
  pidfile: ""
  access-control: 127.0.0.0/8 allow
  do-ip6: no
  module-config: "iterator"
  local-zone: "." static
`, port, port, dir)
	for _, rr := range localData {
		fmt.Fprintf(&conf, "  local-data: %q\n", rr)
	}
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-c", path)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting unbound: %v", err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for dig(t, port, ready).status != "NOERROR" {
		if time.Now().After(deadline) {
			t.Fatalf("unbound did not answer within 10s:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "127.0.0.1:" + strconv.Itoa(port), stop
}

// startServe runs `hedgerow serve` on free loopback ports and waits until it
// answers; it returns the DNS port and the metrics URL.
func startServe(t *testing.T, data string, extra ...string) (int, string) {
	t.Helper()
	s := startServeAll(t, data, extra...)
	return s.dns, s.metrics
}

// served is a running hedgerow serve.
type served struct {
	dns     int    // DNS port
	proxy   string // proxy address, 127.0.0.1:port
	admin   string // admin base URL
	metrics string // metrics URL
	cmd     *exec.Cmd
	logs    *strings.Builder // read only after cmd has exited
}

// startServeAll is startServe with every listener: DNS, the proxy and the
// admin listener, each on a free loopback port.
func startServeAll(t *testing.T, data string, extra ...string) served {
	t.Helper()
	port, adminPort, proxyPort := freePort(t), freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"serve", "--data", data, "--dns", "127.0.0.1:" + strconv.Itoa(port),
		"--admin", "127.0.0.1:" + strconv.Itoa(adminPort), "--proxy", "127.0.0.1:" + strconv.Itoa(proxyPort)}, extra...)
	cmd := exec.CommandContext(ctx, hedgerowBinary(t), args...)
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("hedgerow serve logs:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for dig(t, port, "-b", "127.0.0.1", "pornhub.com").status == "" {
		if time.Now().After(deadline) {
			t.Fatalf("hedgerow serve did not answer within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	admin := "http://127.0.0.1:" + strconv.Itoa(adminPort)
	return served{dns: port, proxy: "127.0.0.1:" + strconv.Itoa(proxyPort), admin: admin, metrics: admin + "/metrics",
		cmd: cmd, logs: &logs}
}

// digResult is what the tests read from dig's output.
type digResult struct {
	status string
	answer []string
	ede    string
	raw    string
}

func dig(t *testing.T, port int, args ...string) digResult {
	t.Helper()
	base := []string{"@127.0.0.1", "-p", strconv.Itoa(port), "+time=3", "+tries=1", "+nocookie"}
	out, _ := exec.Command("dig", append(base, args...)...).CombinedOutput()
	r := digResult{raw: string(out)}
	inAnswer := false
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.Contains(line, "->>HEADER<<-"):
			if i := strings.Index(line, "status: "); i >= 0 {
				r.status = strings.TrimSuffix(strings.Fields(line[i+8:])[0], ",")
			}
		case strings.HasPrefix(line, "; EDE:"):
			r.ede = strings.TrimSpace(strings.TrimPrefix(line, "; EDE:"))
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			inAnswer = true
		case inAnswer && line == "":
			inAnswer = false
		case inAnswer:
			r.answer = append(r.answer, line)
		}
	}
	return r
}

// TestDNSFilter runs `hedgerow serve` on loopback and queries it with dig
// from different loopback source addresses mapped to different groups.
func TestDNSFilter(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not installed (apt-get install bind9-dnsutils; .ci/run does): skipping the DNS test")
	}
	data := t.TempDir()
	// 127.0.0.1 is a ks2 pupil, 127.0.0.2 staff, 127.0.0.3 in no range.
	mustRun(t, "", "clients", "remove", "127.0.0.0/8", "--data", data, "--reason", "test")
	mustRun(t, "", "clients", "add", "127.0.0.1", "ks2", "--data", data, "--reason", "test")
	mustRun(t, "", "clients", "add", "127.0.0.2", "staff", "--data", data, "--reason", "test")
	mustRun(t, "", "lists", "add", "badsite.example", "--category", "adult", "--data", data, "--reason", "test")
	mustRun(t, "", "lists", "add", "192.0.2.99", "--category", "malware", "--data", data, "--reason", "test")

	up, stopUpstream := upstreamWithStop(t)
	port, metricsURL := startServe(t, data, "--upstream", up)

	tests := []struct {
		name       string
		args       []string
		wantStatus string
		wantAnswer string // substring of the answer section; "" for none
		wantEDE    string
	}{
		{"allowed name is forwarded", []string{"-b", "127.0.0.1", "www.example.org", "A"}, "NOERROR", "192.0.2.1", ""},
		{"allowed AAAA", []string{"-b", "127.0.0.1", "www.example.org", "AAAA"}, "NOERROR", "2001:db8::1", ""},
		{"starter list blocks adult", []string{"-b", "127.0.0.1", "pornhub.com"}, "NXDOMAIN", "", "15 (Blocked): (adult)"},
		{"subdomain and upper case", []string{"-b", "127.0.0.1", "WWW.PornHub.COM."}, "NXDOMAIN", "", "15 (Blocked): (adult)"},
		{"hand-added entry", []string{"-b", "127.0.0.1", "cdn.badsite.example"}, "NXDOMAIN", "", "15 (Blocked): (adult)"},
		{"blocked for every type: AAAA", []string{"-b", "127.0.0.1", "pornhub.com", "AAAA"}, "NXDOMAIN", "", "15 (Blocked)"},
		{"blocked for every type: HTTPS", []string{"-b", "127.0.0.1", "pornhub.com", "TYPE65"}, "NXDOMAIN", "", "15 (Blocked)"},
		{"blocked for every type: MX", []string{"-b", "127.0.0.1", "pornhub.com", "MX"}, "NXDOMAIN", "", "15 (Blocked)"},
		{"social networks blocked for ks2", []string{"-b", "127.0.0.1", "facebook.com"}, "NXDOMAIN", "", "social-networks"},
		{"social networks allowed for staff", []string{"-b", "127.0.0.2", "facebook.com"}, "NOERROR", "192.0.2.1", ""},
		{"adult blocked for staff too", []string{"-b", "127.0.0.2", "pornhub.com"}, "NXDOMAIN", "", "adult"},
		{"unmapped source refused", []string{"-b", "127.0.0.3", "www.example.org"}, "REFUSED", "", "18 (Prohibited)"},
		{"over TCP", []string{"-b", "127.0.0.1", "+tcp", "pornhub.com"}, "NXDOMAIN", "", "15 (Blocked)"},
		{"allowed over TCP", []string{"-b", "127.0.0.1", "+tcp", "www.example.org"}, "NOERROR", "192.0.2.1", ""},
		{"CNAME to a blocked name", []string{"-b", "127.0.0.1", "cname.example"}, "NXDOMAIN", "", "15 (Blocked): (adult)"},
		{"a listed address behind an allowed name", []string{"-b", "127.0.0.1", "ipcloak.example"}, "NXDOMAIN", "", "15 (Blocked): (malware)"},
		{"ANY answered minimally", []string{"-b", "127.0.0.1", "www.example.org", "ANY"}, "NOERROR", "RFC8482", ""},
		{"CHAOS version.bind refused", []string{"-b", "127.0.0.1", "-c", "CH", "version.bind", "TXT"}, "REFUSED", "", ""},
		{"YouTube restricted (strict) for ks2", []string{"-b", "127.0.0.1", "www.youtube.com"}, "NOERROR", "CNAME\trestrict.youtube.com.", ""},
		{"the restricted name is chased", []string{"-b", "127.0.0.1", "www.youtube.com"}, "NOERROR", "restrict.youtube.com.\t300\tIN\tA\t192.0.2.1", ""},
		{"Google safe search for ks2", []string{"-b", "127.0.0.1", "www.google.co.uk", "AAAA"}, "NOERROR", "forcesafesearch.google.com.", ""},
		{"Bing strict for ks2", []string{"-b", "127.0.0.1", "www.bing.com"}, "NOERROR", "strict.bing.com.", ""},
		{"staff YouTube unrestricted", []string{"-b", "127.0.0.2", "www.youtube.com"}, "NOERROR", "www.youtube.com.\t300\tIN\tA\t192.0.2.1", ""},
		{"Firefox DoH canary", []string{"-b", "127.0.0.1", "use-application-dns.net"}, "NXDOMAIN", "", "Filtered"},
		{"Private Relay canary", []string{"-b", "127.0.0.1", "mask.icloud.com", "AAAA"}, "NXDOMAIN", "", "Filtered"},
		{"no designated resolvers", []string{"-b", "127.0.0.1", "_dns.resolver.arpa", "TYPE64"}, "NOERROR", "", "Filtered"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := dig(t, port, tc.args...)
			if r.status != tc.wantStatus {
				t.Fatalf("status %q, want %q\n%s", r.status, tc.wantStatus, r.raw)
			}
			if tc.wantAnswer == "" && len(r.answer) > 0 {
				t.Errorf("unexpected answer %v", r.answer)
			}
			if tc.wantAnswer != "" && !strings.Contains(strings.Join(r.answer, "\n"), tc.wantAnswer) {
				t.Errorf("answer %v, want %q", r.answer, tc.wantAnswer)
			}
			if !strings.Contains(r.ede, tc.wantEDE) {
				t.Errorf("EDE %q, want %q", r.ede, tc.wantEDE)
			}
		})
	}

	// Truncation: a client without EDNS gets TC over UDP, then everything over TCP.
	if r := dig(t, port, "-b", "127.0.0.1", "+noedns", "+ignore", "big.example"); r.status != "NOERROR" || !strings.Contains(r.raw, " tc ") && !strings.Contains(r.raw, " tc;") {
		t.Errorf("big answer over UDP without EDNS: %s, want the TC flag\n%s", r.status, r.raw)
	}
	if r := dig(t, port, "-b", "127.0.0.1", "+tcp", "big.example"); r.status != "NOERROR" || len(r.answer) != 40 {
		t.Errorf("big answer over TCP: %s with %d records, want 40", r.status, len(r.answer))
	}

	if r := dig(t, port, "-b", "127.0.0.1", "short.example"); r.status != "NOERROR" {
		t.Fatalf("short.example: %s", r.status)
	}

	// With the upstream gone, an answer seen before still comes from the cache.
	stopUpstream()
	if r := dig(t, port, "-b", "127.0.0.1", "www.example.org", "A"); r.status != "NOERROR" || !strings.Contains(strings.Join(r.answer, " "), "192.0.2.1") {
		t.Errorf("cached answer after the upstream stopped: %s %v", r.status, r.answer)
	}

	// Once its TTL has run out, an answer is served stale (RFC 8767, TTL 30)
	// rather than SERVFAIL.
	time.Sleep(2100 * time.Millisecond)
	if r := dig(t, port, "-b", "127.0.0.1", "short.example"); r.status != "NOERROR" || !strings.Contains(strings.Join(r.answer, " "), "30\tIN\tA\t192.0.2.7") {
		t.Errorf("stale answer after the upstream stopped: %s %v", r.status, r.answer)
	}

	// Metrics: queries by result and group, blocks by category.
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`hedgerow_dns_queries_total{group="ks2",result="blocked"}`,
		`hedgerow_dns_queries_total{group="staff",result="allowed"}`,
		`hedgerow_dns_queries_total{group="none",result="refused"} 1`,
		`hedgerow_dns_blocks_total{category="adult",severity="high"}`,
		`hedgerow_dns_upstream_seconds_bucket`,
		`hedgerow_dns_attempts_recorded_total`,
		`hedgerow_incidents_dropped_total 0`,
		`hedgerow_dns_cache_hits_total`,
		`hedgerow_dns_cache_entries`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestDNSFilterBlockAnswers: a config file sets how blocks are answered, per
// group: 0.0.0.0 for staff, the block page's address for ks2.
func TestDNSFilterBlockAnswers(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not installed: skipping the DNS test")
	}
	data := t.TempDir()
	mustRun(t, "", "clients", "remove", "127.0.0.0/8", "--data", data, "--reason", "test")
	mustRun(t, "", "clients", "add", "127.0.0.1", "ks2", "--data", data, "--reason", "test")
	mustRun(t, "", "clients", "add", "127.0.0.2", "staff", "--data", data, "--reason", "test")
	conf := filepath.Join(data, "hedgerow.yaml")
	if err := os.WriteFile(conf, []byte("dns:\n  block_answer: blockpage\n  block_page_ipv4: 192.0.2.80\n  group_block_answer:\n    staff: \"null\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port, _ := startServe(t, data, "--config", conf, "--upstream", upstream(t))
	if r := dig(t, port, "-b", "127.0.0.1", "pornhub.com", "A"); r.status != "NOERROR" || !strings.Contains(strings.Join(r.answer, " "), "192.0.2.80") {
		t.Errorf("ks2 block page answer: %s %v", r.status, r.answer)
	}
	if r := dig(t, port, "-b", "127.0.0.2", "pornhub.com", "A"); r.status != "NOERROR" || !strings.Contains(strings.Join(r.answer, " "), "0.0.0.0") {
		t.Errorf("staff null answer: %s %v", r.status, r.answer)
	}
	if r := dig(t, port, "-b", "127.0.0.2", "pornhub.com", "AAAA"); r.status != "NOERROR" || !strings.Contains(strings.Join(r.answer, " "), "::") {
		t.Errorf("staff null AAAA answer: %s %v", r.status, r.answer)
	}
	if r := dig(t, port, "-b", "127.0.0.1", "pornhub.com", "MX"); r.status != "NOERROR" || len(r.answer) != 0 || !strings.Contains(r.ede, "Blocked") {
		t.Errorf("ks2 blocked MX: %s %v %s, want NODATA with EDE", r.status, r.answer, r.ede)
	}
	// A config file with a mistake is refused with the line number.
	bad := filepath.Join(data, "bad.yaml")
	if err := os.WriteFile(bad, []byte("dns:\n  tiemout: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := run(t, "", "serve", "--data", data, "--config", bad); code == 0 || !strings.Contains(errs, "line 2") || !strings.Contains(errs, "tiemout") {
		t.Errorf("bad config: exit %d, %s", code, errs)
	}
}

// TestDNSFilterLiveEdit: an edit made with the CLI while serve runs takes
// effect without a restart.
func TestDNSFilterLiveEdit(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not installed: skipping the DNS test")
	}
	data := t.TempDir()
	port, _ := startServe(t, data, "--upstream", upstream(t))
	deadline := time.Now().Add(20 * time.Second)
	for dig(t, port, "live.example").status != "NOERROR" {
		if time.Now().After(deadline) {
			t.Fatalf("hedgerow serve did not answer live.example within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Reading commands share the database with serve.
	if out := mustRun(t, "", "check", "--data", data, "--group", "ks2", "live.example"); !strings.Contains(out, "allow") {
		t.Errorf("check while serving: %s", out)
	}
	mustRun(t, "", "lists", "add", "live.example", "--category", "gambling", "--data", data, "--reason", "test")
	deadline = time.Now().Add(20 * time.Second)
	for {
		r := dig(t, port, "www.live.example")
		if r.status == "NXDOMAIN" && strings.Contains(r.ede, "gambling") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CLI edit did not take effect within 20s: %s %s", r.status, r.ede)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDNSFilterUpstreamDown: blocked names are still answered at once, and
// allowed names get SERVFAIL with an Extended DNS Error.
func TestDNSFilterUpstreamDown(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not installed: skipping the DNS test")
	}
	data := t.TempDir()
	deadPort := freePort(t) // nothing listens there
	port, _ := startServe(t, data, "--upstream", "127.0.0.1:"+strconv.Itoa(deadPort))
	if r := dig(t, port, "pornhub.com"); r.status != "NXDOMAIN" {
		t.Errorf("blocked name with upstream down: %q, want NXDOMAIN", r.status)
	}
	if r := dig(t, port, "www.example.org"); r.status != "SERVFAIL" || !strings.Contains(r.ede, "22") {
		t.Errorf("allowed name with upstream down: %q %q, want SERVFAIL with EDE 22", r.status, r.ede)
	}
}
