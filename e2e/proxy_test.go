package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// seen is what the test origin reports about the request that reached it.
type seen struct {
	Host    string      `json:"host"`
	Path    string      `json:"path"`
	Query   string      `json:"query"`
	TLS     bool        `json:"tls"`
	Headers http.Header `json:"headers"`
}

// testOrigin is a real web server on loopback, over HTTP and HTTPS (with a
// certificate from its own test CA), answering every request with what it saw.
type testOrigin struct {
	httpPort, tlsPort int
	caFile            string
	pool              *x509.CertPool
}

func startOrigin(t *testing.T, names ...string) testOrigin {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hedgerow test origin CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	o := testOrigin{caFile: filepath.Join(t.TempDir(), "origin-ca.pem"), pool: x509.NewCertPool()}
	o.pool.AddCert(caCert)
	if err := os.WriteFile(o.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery, TLS: r.TLS != nil, Headers: r.Header})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	tsrv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}}
	go func() { _ = srv.Serve(ln) }()
	go func() { _ = tsrv.ServeTLS(tln, "", "") }()
	t.Cleanup(func() { _ = srv.Close(); _ = tsrv.Close() })
	o.httpPort, o.tlsPort = ln.Addr().(*net.TCPAddr).Port, tln.Addr().(*net.TCPAddr).Port
	return o
}

// curlResult is a curl run through the proxy.
type curlResult struct {
	code   int    // HTTP status of the final response, 0 when none
	body   string // response body
	stderr string
	exit   int
}

// curlVia runs curl through the proxy from a loopback source address (the
// source decides the group).
func curlVia(t *testing.T, proxy, src string, args ...string) curlResult {
	t.Helper()
	base := []string{"-sS", "--max-time", "10", "--noproxy", "", "-x", "http://" + proxy, "--interface", src,
		"-w", "\n%{http_code}"}
	cmd := exec.Command("curl", append(base, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no http_proxy from the environment
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := curlResult{stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.exit = ee.ExitCode()
	}
	s := out.String()
	i := strings.LastIndexByte(s, '\n')
	r.code, _ = strconv.Atoi(s[i+1:])
	r.body = s[:max(i, 0)]
	return r
}

func (r curlResult) seen(t *testing.T) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal([]byte(r.body), &s); err != nil {
		t.Fatalf("origin answer not JSON (%v): %q %s", err, r.body, r.stderr)
	}
	return s
}

// rawProxy sends a request head to the proxy as written and returns the
// status line of the answer.
func rawProxy(t *testing.T, proxy, src, req string) string {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// tlsThroughConnect opens a CONNECT tunnel to target and starts TLS in it
// with serverName as the SNI, returning the handshake's error.
func tlsThroughConnect(t *testing.T, proxy, src, target, serverName string, roots *x509.CertPool) error {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CONNECT answered %s", resp.Status)
	}
	tc := tls.Client(c, &tls.Config{ServerName: serverName, RootCAs: roots, InsecureSkipVerify: serverName != strings.Split(target, ":")[0]})
	return tc.Handshake()
}

// TestProxy runs `hedgerow serve` with its proxy on loopback and drives it
// with curl from loopback sources mapped to different groups: 127.0.0.1 a
// ks2 pupil (safe search, strict YouTube), 127.0.0.2 staff, 127.0.0.3 in no
// range, 127.0.0.4 ks3-ks4 with HTTPS interception, 127.0.0.5 sixth-form
// with proxy login.
func TestProxy(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed (apt-get install curl; .ci/run does): skipping the proxy test")
	}
	origin := startOrigin(t, "tls.origin.test", "origin.test")
	data := t.TempDir()
	reason := []string{"--data", data, "--reason", "test"}
	do := func(args ...string) { t.Helper(); mustRun(t, "", append(args, reason...)...) }
	do("clients", "remove", "127.0.0.0/8")
	do("clients", "add", "127.0.0.1", "ks2")
	do("clients", "add", "127.0.0.2", "staff")
	do("clients", "add", "127.0.0.4", "ks3-ks4")
	do("clients", "add", "127.0.0.5", "sixth-form")
	do("lists", "add", "origin.test/secret", "--category", "gambling")
	do("lists", "add", "tls.origin.test/secret", "--category", "gambling")
	do("groups", "proxy", "ks3-ks4", "--intercept", "on")
	do("groups", "proxy", "sixth-form", "--login", "on")
	mustRun(t, "", "ca", "init", "--data", data)
	mustRun(t, "correct-horse-battery\n", "users", "add", "pupil1", "--group", "sixth-form", "--data", data, "--reason", "test")

	up, _ := startUnbound(t, []string{
		"origin.test. 300 IN A 127.0.0.1", "tls.origin.test. 300 IN A 127.0.0.1", "ready.test. 300 IN A 127.0.0.1",
		// Safe search: pupils are sent to the safe-search names (127.0.0.1,
		// where the origin listens), staff to the real ones (127.0.0.2: nothing).
		"www.google.co.uk. 300 IN A 127.0.0.2", "forcesafesearch.google.com. 300 IN A 127.0.0.1",
		"www.youtube.com. 300 IN A 127.0.0.2", "restrict.youtube.com. 300 IN A 127.0.0.1",
		"cloak.test. 300 IN CNAME pornhub.com.", "pornhub.com. 300 IN A 127.0.0.1",
	}, "ready.test")
	cfg := filepath.Join(t.TempDir(), "hedgerow.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "proxy:\n  connect_ports: [443, %d]\n  upstream_ca: %s\n  school_name: Hedgerow Primary\n",
		origin.tlsPort, origin.caFile), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServeAll(t, data, "--upstream", up, "--config", cfg, "--proxy-allow-dest", "127.0.0.0/8")
	waitProxy(t, s.proxy)

	plain := func(host, path string) string { return fmt.Sprintf("http://%s:%d%s", host, origin.httpPort, path) }
	secure := func(host, path string) string { return fmt.Sprintf("https://%s:%d%s", host, origin.tlsPort, path) }
	caFile := filepath.Join(data, "ca.crt")

	t.Run("allowed plain HTTP is forwarded without leaking the client", func(t *testing.T) {
		r := curlVia(t, s.proxy, "127.0.0.1", plain("origin.test", "/hello?x=1"))
		if r.code != 200 {
			t.Fatalf("got %d %s", r.code, r.stderr)
		}
		got := r.seen(t)
		if got.Path != "/hello" || got.Query != "x=1" || got.Host != fmt.Sprintf("origin.test:%d", origin.httpPort) {
			t.Errorf("origin saw %+v", got)
		}
		for _, h := range []string{"X-Forwarded-For", "Proxy-Connection", "Proxy-Authorization", "Forwarded"} {
			if v := got.Headers.Get(h); v != "" {
				t.Errorf("origin saw %s: %s", h, v)
			}
		}
	})

	var blockPage string
	t.Run("blocked plain HTTP gets the block page", func(t *testing.T) {
		r := curlVia(t, s.proxy, "127.0.0.1", "http://pornhub.com/some/page")
		if r.code != 403 || !strings.Contains(r.body, "This page is blocked") || !strings.Contains(r.body, "Hedgerow Primary") {
			t.Fatalf("got %d %.300s", r.code, r.body)
		}
		blockPage = r.body
	})

	t.Run("URL entries block a path, not the host", func(t *testing.T) {
		for path, want := range map[string]int{"/secret/x": 403, "/SECRET/%78": 403, "/secretary": 200, "/public": 200} {
			if r := curlVia(t, s.proxy, "127.0.0.1", plain("origin.test", path)); r.code != want {
				t.Errorf("%s: got %d, want %d", path, r.code, want)
			}
		}
	})

	t.Run("numeric hosts are decided and dialled in canonical form", func(t *testing.T) {
		r := curlVia(t, s.proxy, "127.0.0.1", fmt.Sprintf("http://2130706433:%d/n", origin.httpPort))
		if r.code != 200 || r.seen(t).Host != fmt.Sprintf("127.0.0.1:%d", origin.httpPort) {
			t.Errorf("got %d %s", r.code, r.body)
		}
	})

	t.Run("hedgerow's own listeners and cloud metadata are not destinations", func(t *testing.T) {
		for _, u := range []string{s.metrics, "http://" + s.proxy + "/", "http://169.254.169.254/latest/meta-data/"} {
			if r := curlVia(t, s.proxy, "127.0.0.1", u); r.code != 403 {
				t.Errorf("%s: got %d, want 403", u, r.code)
			}
		}
	})

	t.Run("unmapped sources are refused", func(t *testing.T) {
		if r := curlVia(t, s.proxy, "127.0.0.3", plain("origin.test", "/")); r.code != 403 {
			t.Errorf("got %d, want 403", r.code)
		}
	})

	t.Run("CONNECT only to allowed ports", func(t *testing.T) {
		r := curlVia(t, s.proxy, "127.0.0.1", "--cacert", origin.caFile, fmt.Sprintf("https://origin.test:%d/", origin.httpPort))
		if r.code != 403 && !strings.Contains(r.stderr, "403") {
			t.Errorf("got %d %s", r.code, r.stderr)
		}
	})

	t.Run("CONNECT to a blocked host is refused before any tunnel", func(t *testing.T) {
		r := curlVia(t, s.proxy, "127.0.0.1", "https://pornhub.com/")
		if !strings.Contains(r.stderr, "403") {
			t.Errorf("got %d %s", r.code, r.stderr)
		}
	})

	t.Run("an allowed CONNECT is tunnelled end to end", func(t *testing.T) {
		r := curlVia(t, s.proxy, "127.0.0.1", "--cacert", origin.caFile, secure("tls.origin.test", "/t"))
		if r.code != 200 || !r.seen(t).TLS {
			t.Errorf("got %d %s %s", r.code, r.body, r.stderr)
		}
	})

	t.Run("a ClientHello for another site than the CONNECT target is refused", func(t *testing.T) {
		target := fmt.Sprintf("tls.origin.test:%d", origin.tlsPort)
		if err := tlsThroughConnect(t, s.proxy, "127.0.0.1", target, "tls.origin.test", origin.pool); err != nil {
			t.Fatalf("matching SNI: %v", err)
		}
		for _, sni := range []string{"pornhub.com", "origin.test"} {
			if err := tlsThroughConnect(t, s.proxy, "127.0.0.1", target, sni, origin.pool); err == nil {
				t.Errorf("SNI %s through a CONNECT to %s was spliced", sni, target)
			}
		}
	})

	t.Run("answers that lead to a blocked name are blocked", func(t *testing.T) {
		if r := curlVia(t, s.proxy, "127.0.0.1", plain("cloak.test", "/")); r.code != 403 {
			t.Errorf("got %d %s", r.code, r.body)
		}
	})

	t.Run("safe search follows the group through the proxy's resolver", func(t *testing.T) {
		r := curlVia(t, s.proxy, "127.0.0.1", plain("www.google.co.uk", "/search?q=cats&safe=off"))
		if r.code != 200 {
			t.Fatalf("pupil: got %d %s", r.code, r.body)
		}
		if q, _ := url.ParseQuery(r.seen(t).Query); q.Get("safe") != "active" || len(q["safe"]) != 1 || q.Get("q") != "cats" {
			t.Errorf("pupil's search reached Google as %q", r.seen(t).Query)
		}
		// Staff have no safe search: their request goes to the real name,
		// where nothing listens in this test.
		if r := curlVia(t, s.proxy, "127.0.0.2", plain("www.google.co.uk", "/search?q=cats")); r.code != 502 {
			t.Errorf("staff: got %d, want 502 from the unrestricted address", r.code)
		}
		r = curlVia(t, s.proxy, "127.0.0.1", plain("www.youtube.com", "/watch?v=x"))
		if r.code != 200 || r.seen(t).Headers.Get("YouTube-Restrict") != "Strict" {
			t.Errorf("pupil's YouTube: got %d %s", r.code, r.body)
		}
	})

	t.Run("interception serves the block page over TLS and decides every inner request", func(t *testing.T) {
		r := curlVia(t, s.proxy, "127.0.0.4", "--cacert", caFile, "https://pornhub.com/")
		if r.code != 403 || !strings.Contains(r.body, "This page is blocked") {
			t.Fatalf("blocked host: got %d %.200s %s", r.code, r.body, r.stderr)
		}
		r = curlVia(t, s.proxy, "127.0.0.4", "--cacert", caFile, secure("tls.origin.test", "/secret/y"))
		if r.code != 403 {
			t.Errorf("URL entry under interception: got %d %s", r.code, r.stderr)
		}
		r = curlVia(t, s.proxy, "127.0.0.4", "--cacert", caFile, secure("tls.origin.test", "/public"))
		if r.code != 200 || !r.seen(t).TLS {
			t.Errorf("allowed URL under interception: got %d %s %s", r.code, r.body, r.stderr)
		}
		r = curlVia(t, s.proxy, "127.0.0.4", "--cacert", caFile, "-H", "Host: origin.test", secure("tls.origin.test", "/public"))
		if r.code != 421 {
			t.Errorf("inner request for another host: got %d, want 421", r.code)
		}
		// Without the school CA the device cannot be intercepted silently.
		if r := curlVia(t, s.proxy, "127.0.0.4", "https://pornhub.com/"); r.exit == 0 {
			t.Errorf("a device without the school CA accepted the intercepted certificate")
		}
	})

	t.Run("proxy login decides the group and fails closed", func(t *testing.T) {
		if r := curlVia(t, s.proxy, "127.0.0.5", plain("origin.test", "/")); r.code != 407 {
			t.Errorf("no login: got %d, want 407", r.code)
		}
		if r := curlVia(t, s.proxy, "127.0.0.5", "-U", "pupil1:wrong-password", plain("origin.test", "/")); r.code != 407 {
			t.Errorf("wrong password: got %d, want 407", r.code)
		}
		if r := curlVia(t, s.proxy, "127.0.0.5", "-U", "pupil1:correct-horse-battery", plain("origin.test", "/")); r.code != 200 {
			t.Errorf("good login: got %d %s", r.code, r.body)
		}
	})

	t.Run("request smuggling shapes are refused", func(t *testing.T) {
		hostPort := fmt.Sprintf("origin.test:%d", origin.httpPort)
		for name, req := range map[string]string{
			"CL and TE":          "POST http://" + hostPort + "/ HTTP/1.1\r\nHost: " + hostPort + "\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			"two lengths":        "POST http://" + hostPort + "/ HTTP/1.1\r\nHost: " + hostPort + "\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
			"Host disagrees":     "GET http://" + hostPort + "/ HTTP/1.1\r\nHost: pornhub.com\r\n\r\n",
			"unknown encoding":   "POST http://" + hostPort + "/ HTTP/1.1\r\nHost: " + hostPort + "\r\nTransfer-Encoding: gzip\r\n\r\n",
			"space before colon": "GET http://" + hostPort + "/ HTTP/1.1\r\nHost: " + hostPort + "\r\nX-A : b\r\n\r\n",
		} {
			if got := rawProxy(t, s.proxy, "127.0.0.1", req); !strings.Contains(got, " 400 ") && !strings.Contains(got, " 501 ") {
				t.Errorf("%s: got %q, want 400", name, got)
			}
		}
		if got := rawProxy(t, s.proxy, "127.0.0.1", "GET http://"+hostPort+"/ok HTTP/1.1\r\nHost: "+hostPort+"\r\n\r\n"); !strings.Contains(got, " 200 ") {
			t.Errorf("a well-formed request: got %q", got)
		}
	})

	t.Run("the block page's report form files a report", func(t *testing.T) {
		m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(blockPage)
		if m == nil {
			t.Fatalf("no token in the block page")
		}
		form := url.Values{"kind": {"unblock"}, "url": {"http://pornhub.com/some/page"}, "host": {"pornhub.com"},
			"category": {"adult"}, "token": {m[1]}, "message": {"needed for a lesson"}}
		r := curlVia(t, s.proxy, "127.0.0.1", "--data", form.Encode(), "http://pornhub.com/.well-known/hedgerow/report")
		if r.code != 200 {
			t.Fatalf("report: got %d %s", r.code, r.body)
		}
		form.Set("token", "forged")
		if r := curlVia(t, s.proxy, "127.0.0.1", "--data", form.Encode(), "http://pornhub.com/.well-known/hedgerow/report"); r.code != 403 {
			t.Errorf("forged token: got %d", r.code)
		}
		out := mustRun(t, "", "reports", "--json", "--data", data)
		if !strings.Contains(out, "needed for a lesson") || !strings.Contains(out, "pornhub.com") {
			t.Errorf("reports: %s", out)
		}
	})

	t.Run("the PAC file points at the proxy", func(t *testing.T) {
		resp, err := http.Get(s.admin + "/proxy.pac")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "PROXY "+s.proxy) || !strings.Contains(string(body), "FindProxyForURL") {
			t.Errorf("got %d %s", resp.StatusCode, body)
		}
	})

	t.Run("metrics count requests, blocks and recorded attempts", func(t *testing.T) {
		resp, err := http.Get(s.metrics)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`hedgerow_proxy_requests_total{group="ks2",result="blocked"}`,
			`hedgerow_proxy_requests_total{group="none",result="refused"}`, `hedgerow_proxy_blocked_total{category="adult",channel="https"}`,
			`hedgerow_proxy_connects_total{mode="intercepted"}`, `hedgerow_proxy_connects_total{mode="tunnelled"}`,
			"hedgerow_proxy_attempts_recorded_total", "hedgerow_proxy_certificates_minted_total"} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// waitProxy waits until the proxy accepts connections.
func waitProxy(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy at %s did not listen within 10s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
