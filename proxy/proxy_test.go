package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/categories"
	"hedgerow/store"
)

// loopbackResolver answers every name with 127.0.0.1: the unit tests' origins
// listen there. The DNS path itself is tested with a real resolver in e2e.
type loopbackResolver struct{}

func (loopbackResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// testProxy runs a proxy on a loopback port for 127.0.0.0/8 clients (group
// ks2), with blocked.example listed as adult; it returns its address and
// the recorder.
func testProxy(t testing.TB, edit func(*Config)) (string, *store.MemoryRecorder) {
	t.Helper()
	return testProxyWith(t, edit, nil, nil)
}

// testProxyWith is testProxy with the policy edited and interception certs.
func testProxyWith(t testing.TB, edit func(*Config), editPolicy func(*categories.Policy), certs *LeafCache) (string, *store.MemoryRecorder) {
	t.Helper()
	tax := categories.Builtin()
	b := categories.NewIndexBuilder(0)
	adult, _ := tax.MaskOf("adult")
	_ = b.Add("blocked.example", adult)
	_ = b.Add("origin.example/secret", adult) // URL rules: a group that intercepts decrypts origin.example
	idx, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	pol := categories.DefaultPolicy(tax)
	pol.Clients = []categories.ClientRule{{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Group: "ks2"}}
	if editPolicy != nil {
		editPolicy(&pol)
	}
	snap, err := categories.NewSnapshot(tax, idx, pol)
	if err != nil {
		t.Fatal(err)
	}
	filter, err := categories.NewFilter(snap)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := DefaultConfig()
	cfg.Listen = []string{addr}
	cfg.AllowDest = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	if edit != nil {
		edit(&cfg)
	}
	rec := store.NewMemoryRecorder(1000, nil)
	s, err := New(cfg, Deps{Filter: filter, Resolver: loopbackResolver{}, Recorder: rec, Certs: certs,
		Metrics: NewMetrics(prometheus.NewRegistry()), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- s.ListenAndServe(ctx, func() { close(ready) }) }()
	<-ready
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy stopped with %v", err)
		}
	})
	return addr, rec
}

// testOrigin is a plain HTTP origin on loopback answering "ok <path>".
func testOrigin(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok "+r.URL.Path)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func proxyClient(proxyAddr string) *http.Client {
	u, _ := url.Parse("http://" + proxyAddr)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}, Timeout: 10 * time.Second}
}

func TestCheckHead(t *testing.T) {
	tests := []struct {
		name, head, uriHost string
		ok                  bool
	}{
		{"plain GET", "GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", "a.example", true},
		{"Host differs only in case and port", "GET http://a.example/ HTTP/1.1\r\nHost: A.Example:80\r\n\r\n", "a.example", true},
		{"origin form has no URI host", "GET / HTTP/1.1\r\nHost: anything.example\r\n\r\n", "", true},
		{"one length", "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n", "", true},
		{"chunked alone", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "", true},
		{"CL and TE", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "", false},
		{"CL and TE, odd case", "POST / HTTP/1.1\r\ncontent-LENGTH: 3\r\ntransfer-encoding: chunked\r\n\r\n", "", false},
		{"two lengths", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", "", false},
		{"Host disagrees", "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", "a.example", false},
		{"obs-fold", "GET / HTTP/1.1\r\nX-A: 1\r\n continued\r\n\r\n", "", false},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "", false},
		{"no colon", "GET / HTTP/1.1\r\nnonsense\r\n\r\n", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkHead([]byte(tc.head), tc.uriHost); (err == nil) != tc.ok {
				t.Errorf("checkHead = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func FuzzCheckHead(f *testing.F) {
	f.Add([]byte("GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n"), "a.example")
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), "")
	f.Fuzz(func(t *testing.T, head []byte, uriHost string) {
		err := checkHead(head, uriHost)
		// A head with both framing fields is never accepted, however written.
		lower := strings.ToLower(string(head))
		if err == nil && strings.Contains(lower, "\r\ncontent-length:") && strings.Contains(lower, "\r\ntransfer-encoding:") {
			t.Errorf("accepted CL and TE: %q", head)
		}
	})
}

func TestTakeHead(t *testing.T) {
	c := &clientConn{}
	c.captured = []byte("body bytes GET /x HTTP/1.1\r\nA: 1\r\n\r\nGET /y HTTP/1.1\r\nB: 2\r\n\r\ntail")
	head, ok := c.takeHead("GET /x HTTP/1.1")
	if ok {
		t.Fatalf("found a request line in the middle of a line: %q", head)
	}
	c.captured = []byte("GET /x HTTP/1.1\r\nA: 1\r\n\r\nGET /y HTTP/1.1\r\nB: 2\r\n\r\ntail")
	if head, ok := c.takeHead("GET /x "); !ok || string(head) != "GET /x HTTP/1.1\r\nA: 1\r\n\r\n" {
		t.Fatalf("first head = %q, %v", head, ok)
	}
	if head, ok := c.takeHead("GET /y "); !ok || string(head) != "GET /y HTTP/1.1\r\nB: 2\r\n\r\n" {
		t.Fatalf("second head = %q, %v", head, ok)
	}
	if string(c.captured) != "tail" {
		t.Errorf("left %q", c.captured)
	}
}

func TestDestAllowed(t *testing.T) {
	s := &Server{cfg: Config{AllowDest: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
	own, err := newOwnAddrs([]string{"127.0.0.1:3128", "0.0.0.0:9153"})
	if err != nil {
		t.Fatal(err)
	}
	s.own = own
	for addr, want := range map[string]bool{
		"127.0.0.1:8080":        true,  // allowed by AllowDest
		"127.0.0.1:3128":        false, // the proxy itself, whatever AllowDest says
		"127.0.0.1:9153":        false, // a wildcard listener's port on loopback
		"[::1]:80":              false,
		"169.254.169.254:80":    false, // cloud metadata
		"100.100.100.200:80":    false,
		"[fe80::1]:80":          false,
		"0.0.0.0:80":            false,
		"[::ffff:127.0.0.1]:80": true, // unmapped first
		"10.1.2.3:80":           true, // the school's intranet
		"192.168.1.1:443":       true,
		"93.184.216.34:443":     true,
		"224.0.0.1:80":          false,
	} {
		if got := s.destAllowed(netip.MustParseAddrPort(addr)); got != want {
			t.Errorf("destAllowed(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestRemoveHopByHop(t *testing.T) {
	h := http.Header{"Connection": {"close, X-Private"}, "X-Private": {"1"}, "Keep-Alive": {"5"}, "Proxy-Authorization": {"Basic x"},
		"Te": {"gzip"}, "Upgrade": {"h2c"}, "Accept": {"*/*"}}
	removeHopByHop(h, false)
	if len(h) != 1 || h.Get("Accept") != "*/*" {
		t.Errorf("left %v", h)
	}
	ws := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Te": {"trailers"}}
	removeHopByHop(ws, true)
	if ws.Get("Upgrade") != "websocket" || ws.Get("Connection") != "Upgrade" || ws.Get("Te") != "trailers" {
		t.Errorf("websocket upgrade lost its fields: %v", ws)
	}
}

func TestIntentOf(t *testing.T) {
	for _, tc := range []struct {
		mode, dest string
		search     bool
		want       string
	}{
		{"navigate", "document", false, store.IntentNavigate},
		{"", "document", false, store.IntentNavigate},
		{"no-cors", "image", false, store.IntentBackground},
		{"cors", "empty", true, store.IntentBackground}, // a suggestion fetch
		{"", "", true, store.IntentNavigate},
		{"", "", false, store.IntentUnknown},
	} {
		r := &http.Request{Header: http.Header{}}
		if tc.mode != "" {
			r.Header.Set("Sec-Fetch-Mode", tc.mode)
		}
		if tc.dest != "" {
			r.Header.Set("Sec-Fetch-Dest", tc.dest)
		}
		if got := intentOf(r, tc.search); got != tc.want {
			t.Errorf("intentOf(%q, %q, %v) = %q, want %q", tc.mode, tc.dest, tc.search, got, tc.want)
		}
	}
}

func TestProxyForwardsAndBlocks(t *testing.T) {
	origin := testOrigin(t)
	addr, rec := testProxy(t, nil)
	c := proxyClient(addr)
	for _, tc := range []struct {
		url  string
		want int
	}{
		{"http://" + origin + "/hello", 200},
		{"http://blocked.example/", 403},
		{"http://WWW.Blocked.Example./x", 403},
		{"http://origin.example:" + strings.Split(origin, ":")[1] + "/secret/a", 403},
		{"http://origin.example:" + strings.Split(origin, ":")[1] + "/public", 200},
	} {
		resp, err := c.Get(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.url, resp.StatusCode, body, tc.want)
		}
	}
	got := rec.Recent(10)
	if len(got) != 3 || got[0].Channel != store.ChannelHTTP || !got[0].Blocked || got[0].Category != "adult" || got[0].URL == "" {
		t.Errorf("recorded %+v", got)
	}
}

// TestProxyLimits: every limit answers with a clear status, and nothing is
// left running afterwards.
func TestProxyLimits(t *testing.T) {
	origin := testOrigin(t)
	before := runtime.NumGoroutine()
	addr, _ := testProxy(t, func(c *Config) {
		c.ReadHeaderTimeout = 300 * time.Millisecond
		c.MaxHeaderBytes = 4096
	})

	t.Run("header size", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+origin+"/", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 8192))
		client := proxyClient(addr)
		defer client.CloseIdleConnections()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("got %d, want 431", resp.StatusCode)
		}
	})

	t.Run("slow headers (slowloris) are cut off", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET http://"+origin+"/ HTTP/1.1\r\n")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); isTimeout(err) {
			t.Errorf("connection not closed by the proxy: %v", err)
		}
	})

	t.Run("idle tunnels close", func(t *testing.T) {
		// A CONNECT to a non-TLS peer never sends a ClientHello; the proxy
		// gives up on it rather than holding it open.
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", "127.0.0.1:443", "127.0.0.1:443")
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		if !strings.Contains(line, "200") {
			t.Fatalf("CONNECT got %q", line)
		}
		_, _ = io.WriteString(c, "not tls at all\r\n")
		if _, err := io.ReadAll(br); isTimeout(err) {
			t.Errorf("tunnel without a ClientHello not closed: %v", err) // a reset is a close too
		}
	})

	// Goroutines of closed connections wind down; allow the test's own.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+12 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+12 {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines left (%d before):\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestProxySearchTerms: a monitored group's searches are recorded with their
// terms, a blocked search carries its term, and suggestion keystrokes are
// told apart from searches.
func TestProxySearchTerms(t *testing.T) {
	origin := testOrigin(t)
	port := strings.Split(origin, ":")[1]
	addr, rec := testProxyWith(t, nil, func(p *categories.Policy) {
		for i := range p.Groups {
			if p.Groups[i].Name == "ks2" {
				p.Groups[i].MonitorSearches = true
				p.Groups[i].Deny = append(p.Groups[i].Deny, "www.bing.com")
			}
		}
	}, nil)
	c := proxyClient(addr)
	get := func(u string, header ...string) int {
		req, _ := http.NewRequest("GET", u, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("http://www.google.co.uk:"+port+"/search?q=how+to+be+safe+online", "Sec-Fetch-Mode", "navigate"); code != 200 {
		t.Fatalf("monitored search: %d", code)
	}
	if code := get("http://www.bing.com:" + port + "/search?q=blocked+words"); code != 403 {
		t.Fatalf("search on a denied engine: %d", code)
	}
	got := rec.Recent(10)
	if len(got) != 2 {
		t.Fatalf("recorded %+v", got)
	}
	blocked, monitored := got[0], got[1]
	if !blocked.Blocked || blocked.SearchTerm != "blocked words" || blocked.Intent != store.IntentNavigate {
		t.Errorf("blocked search recorded as %+v", blocked)
	}
	if monitored.Blocked || monitored.SearchTerm != "how to be safe online" || monitored.Intent != store.IntentNavigate ||
		!strings.Contains(monitored.URL, "/search?q=how") {
		t.Errorf("monitored search recorded as %+v", monitored)
	}
}

// TestProxyInterceptVerifiesOrigins: an intercepted request goes upstream
// only to an origin whose certificate verifies.
func TestProxyInterceptVerifiesOrigins(t *testing.T) {
	dir := t.TempDir()
	ca, err := CreateCA(dir+"/ca.crt", dir+"/ca.key", "test school CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// An HTTPS origin with a certificate from another CA, listed by URL so
	// the proxy intercepts it.
	originCA, err := CreateCA(dir+"/o.crt", dir+"/o.key", "origin CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := NewLeafCache(originCA, 0, 0).Get("origin.example")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "secret origin") }),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{*leaf}}, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)} // the proxy's refused handshakes are expected
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	port := strings.Split(ln.Addr().String(), ":")[1]
	pn, _ := strconv.Atoi(port)

	for _, trusted := range []bool{false, true} {
		addr, _ := testProxyWith(t, func(c *Config) {
			c.ConnectPorts = []int{pn}
			if trusted {
				c.UpstreamCAs = x509.NewCertPool()
				c.UpstreamCAs.AddCert(originCA.Certificate())
			}
		}, func(p *categories.Policy) {
			for i := range p.Groups {
				p.Groups[i].Intercept = true
			}
		}, NewLeafCache(ca, 0, 0))
		roots := x509.NewCertPool()
		roots.AddCert(ca.Certificate())
		u, _ := url.Parse("http://" + addr)
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), TLSClientConfig: &tls.Config{RootCAs: roots}}}
		resp, err := c.Get("https://origin.example:" + port + "/public")
		if err != nil {
			t.Fatalf("trusted %v: %v", trusted, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := map[bool]int{false: 502, true: 200}[trusted]; resp.StatusCode != want || (trusted && string(body) != "secret origin") {
			t.Errorf("origin CA trusted %v: got %d %q, want %d", trusted, resp.StatusCode, body, want)
		}
		// The page itself was served under the school CA: the client verified it.
		if resp.TLS == nil || resp.TLS.PeerCertificates[0].Issuer.CommonName != "test school CA" {
			t.Errorf("intercepted page not under the school CA: %+v", resp.TLS)
		}
	}
}

// TestProxyConnLimit: a device over its connection limit gets 429 at once.
func TestProxyConnLimit(t *testing.T) {
	addr, _ := testProxy(t, func(c *Config) { c.MaxConnsPerClient = 3 })
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	time.Sleep(50 * time.Millisecond) // let the proxy accept them
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if !strings.Contains(line, "429") {
		t.Errorf("fourth connection got %q (%v), want 429", line, err)
	}
}

// BenchmarkProxyPlainHTTP measures a keep-alive GET through the proxy to a
// loopback origin: the proxy's whole request path, client to verdict to
// answer.
func BenchmarkProxyPlainHTTP(b *testing.B) {
	origin := testOrigin(b)
	addr, _ := testProxy(b, nil)
	c := proxyClient(addr)
	url := "http://" + origin + "/bench"
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkProxyBlocked measures answering a blocked URL with the block page.
func BenchmarkProxyBlocked(b *testing.B) {
	addr, _ := testProxy(b, nil)
	c := proxyClient(addr)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get("http://blocked.example/page")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func BenchmarkCheckHead(b *testing.B) {
	head := []byte("GET http://www.example.com/path HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		_ = checkHead(head, "www.example.com")
	}
}
