package dnsfilter

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Helpers are prefixed "ut" so they cannot collide with other test files of
// the package.

// utBound is the upper bound for any single Exchange in these tests.
const utBound = 5 * time.Second

func utQuery(name string, id uint16, edns bool) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	q.Id = id
	if edns {
		q.SetEdns0(4096, false)
	}
	return q
}

// utAnswer answers r with one A record.
func utAnswer(r *dns.Msg, ip string) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	m.Answer = append(m.Answer, &dns.A{
		Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
		A:   net.ParseIP(ip).To4(),
	})
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(1232, o.Do())
	}
	return m
}

func utFirstA(t testing.TB, m *dns.Msg) string {
	t.Helper()
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	t.Fatalf("no A record in %v", m)
	return ""
}

// utHandler answers every query with ip and counts queries per transport.
type utHandler struct {
	ip       string
	udp, tcp atomic.Int64
	ports    sync.Map // remote addr string -> struct{}
}

func (h *utHandler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
		h.udp.Add(1)
	} else {
		h.tcp.Add(1)
	}
	h.ports.Store(w.RemoteAddr().String(), struct{}{})
	_ = w.WriteMsg(utAnswer(r, h.ip))
}

func (h *utHandler) total() int64 { return h.udp.Load() + h.tcp.Load() }

// utStart runs a miekg/dns server on pc or ln until the test ends.
func utStart(t testing.TB, srv *dns.Server) {
	t.Helper()
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	errc := make(chan error, 1)
	go func() { errc <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-errc:
		t.Fatalf("dns server: %v", err)
	case <-time.After(utBound):
		t.Fatal("dns server did not start")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), utBound)
		defer cancel()
		_ = srv.ShutdownContext(ctx)
	})
}

// utServeUDP serves h over UDP on 127.0.0.1:0 and returns the address.
func utServeUDP(t testing.TB, h dns.Handler) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	utStart(t, &dns.Server{PacketConn: pc, Handler: h})
	return pc.LocalAddr().String()
}

// utCountingListener counts accepted connections and reports when the
// server side of one is closed.
type utCountingListener struct {
	net.Listener
	accepted atomic.Int64
	closed   chan struct{} // one token per closed connection
}

func utListen(t testing.TB, addr string) *utCountingListener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return &utCountingListener{Listener: ln, closed: make(chan struct{}, 1024)}
}

func (l *utCountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	return &utConn{Conn: c, closed: l.closed}, nil
}

type utConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *utConn) Close() error {
	c.once.Do(func() { c.closed <- struct{}{} })
	return c.Conn.Close()
}

// utServeTCP serves h over TCP (tlsCfg nil) or TLS and returns the listener.
func utServeTCP(t testing.TB, addr string, h dns.Handler, tlsCfg *tls.Config, maxQueries int) *utCountingListener {
	t.Helper()
	cl := utListen(t, addr)
	srv := &dns.Server{Listener: cl, Net: "tcp", Handler: h, MaxTCPQueries: maxQueries}
	if tlsCfg != nil {
		srv.Listener, srv.Net = tls.NewListener(cl, tlsCfg), "tcp-tls"
	}
	utStart(t, srv)
	return cl
}

// utServeBoth serves h over UDP and TCP on the same port.
func utServeBoth(t testing.TB, h dns.Handler) string {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue // the TCP port is taken: try another
		}
		utStart(t, &dns.Server{PacketConn: pc, Handler: h})
		utStart(t, &dns.Server{Listener: ln, Handler: h})
		return pc.LocalAddr().String()
	}
	t.Fatal("no port free for both UDP and TCP")
	return ""
}

// utRawUDP runs fn for every datagram received on 127.0.0.1:0.
func utRawUDP(t testing.TB, fn func(pc net.PacketConn, from net.Addr, q *dns.Msg)) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil {
				continue
			}
			fn(pc, from, q)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().String()
}

func utSend(pc net.PacketConn, to net.Addr, m *dns.Msg) {
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	_, _ = pc.WriteTo(b, to)
}

// utClosedPort returns an address on which nothing listens.
func utClosedPort(t testing.TB, network string) string {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		pc.Close()
		return addr
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// utSilent returns a UDP address that reads queries and never answers.
func utSilent(t testing.TB) string {
	return utRawUDP(t, func(net.PacketConn, net.Addr, *dns.Msg) {})
}

// utCert makes a self-signed certificate for names (DNS names or IPs) and a
// pool trusting it.
func utCert(t testing.TB, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hedgerow test resolver"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func utForwarder(t testing.TB, cfg ForwarderConfig) *Forwarder {
	t.Helper()
	f, err := NewForwarder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func utExchange(t testing.TB, f *Forwarder, q *dns.Msg) (*dns.Msg, error, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), utBound)
	defer cancel()
	start := time.Now()
	m, err := f.Exchange(ctx, q)
	return m, err, time.Since(start)
}

func TestForwarderAnswersWithClientID(t *testing.T) {
	h := &utHandler{ip: "192.0.2.7"}
	both := utServeBoth(t, h)
	cert, roots := utCert(t, "dns.hedgerow.test")
	tlsLn := utServeTCP(t, "127.0.0.1:0", h, &tls.Config{Certificates: []tls.Certificate{cert}}, 0)
	tests := []struct {
		name string
		up   Upstream
		edns bool
	}{
		{"udp", Upstream{Addr: both, Proto: "udp"}, true},
		{"udp without EDNS", Upstream{Addr: both}, false},
		{"tcp", Upstream{Addr: both, Proto: "tcp"}, true},
		{"tls", Upstream{Addr: tlsLn.Addr().String(), Proto: "tls", ServerName: "dns.hedgerow.test"}, true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{tc.up}, TLSConfig: &tls.Config{RootCAs: roots}})
			q := utQuery("WwW.Example.ORG.", uint16(4242+i), tc.edns)
			before := q.String()
			m, err, _ := utExchange(t, f, q)
			if err != nil {
				t.Fatal(err)
			}
			if m.Id != q.Id {
				t.Errorf("reply ID %d, want the client's %d", m.Id, q.Id)
			}
			if got := utFirstA(t, m); got != "192.0.2.7" {
				t.Errorf("answer %s", got)
			}
			if m.Question[0].Name != "WwW.Example.ORG." {
				t.Errorf("question %q: the client's spelling should come back", m.Question[0].Name)
			}
			if (m.IsEdns0() != nil) != tc.edns {
				t.Errorf("reply OPT present = %v, client sent one = %v", m.IsEdns0() != nil, tc.edns)
			}
			if q.String() != before {
				t.Errorf("Exchange modified the query:\n%s\nwas\n%s", q, before)
			}
			st := f.Stats()
			if len(st) != 1 || st[0].Queries != 1 || st[0].Errors != 0 || st[0].Upstream != tc.up.String() {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestForwarderFailover(t *testing.T) {
	good := &utHandler{ip: "192.0.2.53"}
	goodAddr := utServeUDP(t, good)
	tests := []struct {
		name     string
		first    Upstream
		timesOut bool
	}{
		{"udp port closed", Upstream{Addr: utClosedPort(t, "udp")}, false},
		{"tcp port closed", Upstream{Addr: utClosedPort(t, "tcp"), Proto: "tcp"}, false},
		{"udp never answers", Upstream{Addr: utSilent(t)}, true},
	}
	const timeout = 300 * time.Millisecond
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{tc.first, {Addr: goodAddr}}, Timeout: timeout})
			var mu sync.Mutex
			var seen []string
			f.SetObserver(func(up string, d time.Duration, err error) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, fmt.Sprintf("%s err=%v", up, err != nil))
			})
			m, err, took := utExchange(t, f, utQuery("failover.test.", 7, true))
			if err != nil {
				t.Fatal(err)
			}
			if m.Id != 7 || utFirstA(t, m) != "192.0.2.53" {
				t.Fatalf("reply %v", m)
			}
			if tc.timesOut && took < timeout {
				t.Errorf("took %v, less than the %v timeout of the silent upstream", took, timeout)
			}
			if !tc.timesOut && took >= timeout {
				t.Errorf("took %v: a refused port should fail over at once", took)
			}
			st := f.Stats()
			if st[0].Queries != 1 || st[0].Errors != 1 || st[1].Queries != 1 || st[1].Errors != 0 {
				t.Errorf("stats %+v", st)
			}
			mu.Lock()
			want := []string{tc.first.String() + " err=true", goodAddr + " err=false"}
			if fmt.Sprint(seen) != fmt.Sprint(want) {
				t.Errorf("observer saw %v, want %v", seen, want)
			}
			mu.Unlock()
		})
	}
	t.Run("all down", func(t *testing.T) {
		f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{{Addr: utClosedPort(t, "udp")}, {Addr: utSilent(t)}}, Timeout: timeout})
		m, err, _ := utExchange(t, f, utQuery("down.test.", 8, true))
		if err == nil || m != nil {
			t.Fatalf("got %v, %v; want an error", m, err)
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("error %v should wrap the second upstream's timeout", err)
		}
	})
}

func TestForwarderTruncatedUDPRetriesOverTCP(t *testing.T) {
	var udpQ, tcpQ atomic.Int64
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
			udpQ.Add(1)
			m.Truncated = true
			_ = w.WriteMsg(m)
			return
		}
		tcpQ.Add(1)
		for i := range 40 {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(198, 51, 100, byte(i)).To4(),
			})
		}
		_ = w.WriteMsg(m)
	})
	f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{{Addr: utServeBoth(t, h)}}})
	m, err, _ := utExchange(t, f, utQuery("big.test.", 99, false))
	if err != nil {
		t.Fatal(err)
	}
	if m.Truncated || len(m.Answer) != 40 || m.Id != 99 {
		t.Errorf("truncated=%v answers=%d id=%d; want the full TCP answer", m.Truncated, len(m.Answer), m.Id)
	}
	if udpQ.Load() != 1 || tcpQ.Load() != 1 {
		t.Errorf("udp queries %d, tcp queries %d; want 1 and 1", udpQ.Load(), tcpQ.Load())
	}

	t.Run("no TCP: the truncated reply", func(t *testing.T) {
		udpOnly := utRawUDP(t, func(pc net.PacketConn, to net.Addr, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(q)
			m.Truncated = true
			utSend(pc, to, m)
		})
		f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{{Addr: udpOnly}}, Timeout: 300 * time.Millisecond})
		m, err, _ := utExchange(t, f, utQuery("big.test.", 98, false))
		if err != nil {
			t.Fatal(err)
		}
		if !m.Truncated || m.Id != 98 {
			t.Errorf("truncated=%v id=%d; want the TC reply, so the client retries over TCP", m.Truncated, m.Id)
		}
	})
}

// TestForwarderReplyMatching: replies with another ID or question, and
// garbage, are skipped, never returned.
func TestForwarderReplyMatching(t *testing.T) {
	wrongID := func(q *dns.Msg) *dns.Msg { m := utAnswer(q, "203.0.113.66"); m.Id ^= 0x5a5a; return m }
	right := func(q *dns.Msg) *dns.Msg { return utAnswer(q, "192.0.2.1") }
	tests := []struct {
		name  string
		serve func(pc net.PacketConn, to net.Addr, q *dns.Msg)
		want  string // "" = an error after the timeout
	}{
		{"wrong ID then right", func(pc net.PacketConn, to net.Addr, q *dns.Msg) {
			utSend(pc, to, wrongID(q))
			utSend(pc, to, right(q))
		}, "192.0.2.1"},
		{"garbage then right", func(pc net.PacketConn, to net.Addr, q *dns.Msg) {
			_, _ = pc.WriteTo([]byte("\x01\x02"), to)                                // too short
			_, _ = pc.WriteTo([]byte("this is not a DNS message at all, sorry"), to) // another ID
			g := make([]byte, 40)                                                    // the right ID, then nonsense
			binary.BigEndian.PutUint16(g, q.Id)
			copy(g[2:], "\x81\x80\x00\x01\x00\x05\x00\x00\x00\x00\xffgarbage")
			_, _ = pc.WriteTo(g, to)
			utSend(pc, to, right(q))
		}, "192.0.2.1"},
		{"other question then right", func(pc net.PacketConn, to net.Addr, q *dns.Msg) {
			other := q.Copy()
			other.Question[0].Name = "evil.test."
			utSend(pc, to, utAnswer(other, "203.0.113.66"))
			other = q.Copy()
			other.Question[0].Qtype = dns.TypeAAAA
			utSend(pc, to, utAnswer(other, "203.0.113.67"))
			utSend(pc, to, right(q))
		}, "192.0.2.1"},
		{"echoed query then right", func(pc net.PacketConn, to net.Addr, q *dns.Msg) {
			utSend(pc, to, q) // QR not set
			utSend(pc, to, right(q))
		}, "192.0.2.1"},
		{"only wrong IDs", func(pc net.PacketConn, to net.Addr, q *dns.Msg) {
			for range 3 {
				utSend(pc, to, wrongID(q))
			}
		}, ""},
	}
	const timeout = 300 * time.Millisecond
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{{Addr: utRawUDP(t, tc.serve)}}, Timeout: timeout})
			m, err, took := utExchange(t, f, utQuery("match.test.", 1000, true))
			if tc.want == "" {
				if err == nil || m != nil {
					t.Fatalf("got %v, %v; want no reply and an error", m, err)
				}
				if took < timeout || !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("after %v: %v; want a timeout after %v", took, err, timeout)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := utFirstA(t, m); got != tc.want || m.Id != 1000 {
				t.Errorf("answer %s id %d, want %s id 1000", got, m.Id, tc.want)
			}
		})
	}

	t.Run("tcp wrong ID then right", func(t *testing.T) {
		ln := utListen(t, "127.0.0.1:0")
		t.Cleanup(func() { ln.Close() })
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			co := &dns.Conn{Conn: c}
			q, err := co.ReadMsg()
			if err != nil {
				return
			}
			_ = co.WriteMsg(wrongID(q))
			_ = co.WriteMsg(right(q))
			_, _ = io.Copy(io.Discard, c)
		}()
		f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{{Addr: ln.Addr().String(), Proto: "tcp"}}, Timeout: timeout})
		m, err, _ := utExchange(t, f, utQuery("match.test.", 1001, true))
		if err != nil {
			t.Fatal(err)
		}
		if got := utFirstA(t, m); got != "192.0.2.1" || m.Id != 1001 {
			t.Errorf("answer %s id %d", got, m.Id)
		}
	})

	t.Run("FORMERR without question fails over", func(t *testing.T) {
		formerr := utRawUDP(t, func(pc net.PacketConn, to net.Addr, q *dns.Msg) {
			m := new(dns.Msg)
			m.Id, m.Response, m.Rcode = q.Id, true, dns.RcodeFormatError
			utSend(pc, to, m)
		})
		good := utServeUDP(t, &utHandler{ip: "192.0.2.2"})
		f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{{Addr: formerr}, {Addr: good}}, Timeout: 2 * time.Second})
		m, err, took := utExchange(t, f, utQuery("formerr.test.", 5, true))
		if err != nil {
			t.Fatal(err)
		}
		if utFirstA(t, m) != "192.0.2.2" || took > time.Second {
			t.Errorf("answer %v after %v; want the second upstream at once", m, took)
		}
	})
}

func TestForwarderDoTUpstream(t *testing.T) {
	h := &utHandler{ip: "192.0.2.85"}
	cert, roots := utCert(t, "dns.hedgerow.test", "127.0.0.1")
	ln := utServeTCP(t, "127.0.0.1:0", h, &tls.Config{Certificates: []tls.Certificate{cert}}, 0)
	addr := ln.Addr().String()
	tests := []struct {
		name       string
		upstream   string
		roots      *x509.CertPool
		verifyFail bool
	}{
		{"right server name", "tls://" + addr + "#dns.hedgerow.test", roots, false},
		{"IP SAN without a name", "tls://" + addr, roots, false},
		{"wrong server name", "tls://" + addr + "#dns.other.test", roots, true},
		{"untrusted certificate", "tls://" + addr + "#dns.hedgerow.test", x509.NewCertPool(), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up, err := ParseUpstream(tc.upstream)
			if err != nil {
				t.Fatal(err)
			}
			f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{up}, TLSConfig: &tls.Config{RootCAs: tc.roots}})
			before := h.total()
			m, err, _ := utExchange(t, f, utQuery("dot.test.", 853, true))
			if tc.verifyFail {
				var cv *tls.CertificateVerificationError
				if err == nil || !errors.As(err, &cv) {
					t.Fatalf("got %v, %v; want a certificate verification error", m, err)
				}
				if h.total() != before {
					t.Error("the query was sent to an unverified server")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if utFirstA(t, m) != "192.0.2.85" || m.Id != 853 {
				t.Errorf("reply %v", m)
			}
		})
	}
}

func TestForwarderConnectionReuse(t *testing.T) {
	cert, roots := utCert(t, "dns.hedgerow.test")
	h := &utHandler{ip: "192.0.2.9"}
	tcpLn := utServeTCP(t, "127.0.0.1:0", h, nil, 0)
	tlsLn := utServeTCP(t, "127.0.0.1:0", h, &tls.Config{Certificates: []tls.Certificate{cert}}, 0)
	tests := []struct {
		name string
		up   Upstream
		ln   *utCountingListener
	}{
		{"tcp", Upstream{Addr: tcpLn.Addr().String(), Proto: "tcp"}, tcpLn},
		{"tls", Upstream{Addr: tlsLn.Addr().String(), Proto: "tls", ServerName: "dns.hedgerow.test"}, tlsLn},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{tc.up}, TLSConfig: &tls.Config{RootCAs: roots}})
			for i := range 20 {
				m, err, _ := utExchange(t, f, utQuery(fmt.Sprintf("q%d.reuse.test.", i), uint16(i), true))
				if err != nil {
					t.Fatal(err)
				}
				if m.Id != uint16(i) {
					t.Fatalf("query %d: reply ID %d", i, m.Id)
				}
			}
			if n := tc.ln.accepted.Load(); n > 2 {
				t.Errorf("%d connections accepted for 20 sequential queries; want ≤ 2", n)
			}
		})
	}
	t.Run("udp", func(t *testing.T) {
		uh := &utHandler{ip: "192.0.2.9"}
		f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{{Addr: utServeUDP(t, uh)}}})
		for i := range 20 {
			if _, err, _ := utExchange(t, f, utQuery(fmt.Sprintf("q%d.reuse.test.", i), uint16(i), true)); err != nil {
				t.Fatal(err)
			}
		}
		ports := 0
		uh.ports.Range(func(any, any) bool { ports++; return true })
		if ports > 2 {
			t.Errorf("20 sequential queries came from %d sockets; want ≤ 2", ports)
		}
	})
}

// TestForwarderStalePooledConnRetried: the server closes each TCP
// connection after one query, so every pooled connection is stale; each
// query still succeeds with one retry on a fresh connection.
func TestForwarderStalePooledConnRetried(t *testing.T) {
	h := &utHandler{ip: "192.0.2.10"}
	ln := utServeTCP(t, "127.0.0.1:0", h, nil, 1)
	f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{{Addr: ln.Addr().String(), Proto: "tcp"}}})
	for i := range 5 {
		m, err, _ := utExchange(t, f, utQuery("stale.test.", uint16(i), true))
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if m.Id != uint16(i) {
			t.Fatalf("query %d: reply ID %d", i, m.Id)
		}
		// Let the server's close reach us so the next query meets a dead conn.
		select {
		case <-ln.closed:
		case <-time.After(utBound):
			t.Fatal("server did not close the connection")
		}
	}
	if st := f.Stats()[0]; st.Errors != 0 || st.Queries != 5 {
		t.Errorf("stats %+v; the stale connections should have been retried", st)
	}
	if n := ln.accepted.Load(); n != 5 {
		t.Errorf("%d connections accepted, want 5", n)
	}
}

func TestForwarderSingleflight(t *testing.T) {
	var queries atomic.Int64
	release := make(chan struct{})
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		queries.Add(1)
		select {
		case <-release:
		case <-time.After(utBound):
		}
		_ = w.WriteMsg(utAnswer(r, "192.0.2.50"))
	})
	f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{{Addr: utServeUDP(t, h)}}, Timeout: utBound})
	const n = 50
	replies := make([]*dns.Msg, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "same.test."
			if i%2 == 1 {
				name = "SAME.Test." // case does not matter
			}
			replies[i], errs[i], _ = utExchange(t, f, utQuery(name, uint16(100+i), true))
		}()
	}
	// Release the upstream once all 50 wait on one flight.
	deadline := time.Now().Add(utBound)
	for {
		f.mu.Lock()
		flights, waiting := len(f.flights), 0
		for _, fl := range f.flights {
			waiting = fl.waiters
		}
		f.mu.Unlock()
		if flights == 1 && waiting == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d flights, %d waiting", flights, waiting)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if q := queries.Load(); q != 1 {
		t.Errorf("%d upstream queries for %d identical ones, want 1", q, n)
	}
	seen := map[*dns.Msg]bool{}
	for i, m := range replies {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if m.Id != uint16(100+i) {
			t.Errorf("caller %d got ID %d, want %d", i, m.Id, 100+i)
		}
		if want := []string{"same.test.", "SAME.Test."}[i%2]; m.Question[0].Name != want {
			t.Errorf("caller %d got question %q, want %q", i, m.Question[0].Name, want)
		}
		if utFirstA(t, m) != "192.0.2.50" {
			t.Errorf("caller %d: answer %v", i, m.Answer)
		}
		if seen[m] {
			t.Errorf("caller %d shares its reply with another caller", i)
		}
		seen[m] = true
	}

	t.Run("DO bit separates flights", func(t *testing.T) {
		before := queries.Load()
		q1, q2 := utQuery("do.test.", 1, true), utQuery("do.test.", 2, false)
		q1.IsEdns0().SetDo()
		var wg sync.WaitGroup
		for _, q := range []*dns.Msg{q1, q2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err, _ := utExchange(t, f, q); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if got := queries.Load() - before; got != 2 {
			t.Errorf("%d upstream queries, want 2", got)
		}
	})
}

func TestForwarderContextCancellation(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{{Addr: utSilent(t)}}, Timeout: 10 * time.Second})
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			m, err := f.Exchange(ctx, utQuery("slow.test.", 1, true))
			if took := time.Since(start); took > time.Second {
				t.Errorf("returned after %v", took)
			}
			if m != nil || !errors.Is(err, tc.want) {
				t.Errorf("got %v, %v; want %v", m, err, tc.want)
			}
			// The abandoned upstream exchange stops too, and its socket is
			// closed rather than pooled.
			deadline := time.Now().Add(utBound)
			for {
				f.mu.Lock()
				n := len(f.flights)
				f.mu.Unlock()
				if n == 0 && f.ups[0].udp.idleCount() == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d flights still running", n)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	t.Run("already cancelled", func(t *testing.T) {
		f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{{Addr: utSilent(t)}}})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := f.Exchange(ctx, utQuery("x.test.", 1, false)); !errors.Is(err, context.Canceled) {
			t.Errorf("err %v", err)
		}
	})
}

func TestForwarderCloseClosesIdleConns(t *testing.T) {
	h := &utHandler{ip: "192.0.2.11"}
	ln := utServeTCP(t, "127.0.0.1:0", h, nil, -1)
	f, err := NewForwarder(ForwarderConfig{Upstreams: []Upstream{{Addr: ln.Addr().String(), Proto: "tcp"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err, _ := utExchange(t, f, utQuery("close.test.", 1, true)); err != nil {
		t.Fatal(err)
	}
	if n := f.ups[0].tcp.idleCount(); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if n := f.ups[0].tcp.idleCount(); n != 0 {
		t.Errorf("%d idle connections after Close", n)
	}
	select {
	case <-ln.closed: // the server saw our side close
	case <-time.After(utBound):
		t.Fatal("the idle connection was not closed")
	}
	if _, err := f.Exchange(context.Background(), utQuery("close.test.", 2, true)); !errors.Is(err, ErrForwarderClosed) {
		t.Errorf("Exchange after Close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestForwarderCloseAbortsExchanges(t *testing.T) {
	f, err := NewForwarder(ForwarderConfig{Upstreams: []Upstream{{Addr: utSilent(t)}}, Timeout: utBound})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err, _ := utExchange(t, f, utQuery("closing.test.", 1, true))
		errc <- err
	}()
	for { // wait until the exchange is in flight
		f.mu.Lock()
		n := len(f.flights)
		f.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	f.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrForwarderClosed) {
			t.Errorf("err %v, want ErrForwarderClosed", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("returned %v after Close", took)
		}
	case <-time.After(utBound):
		t.Fatal("Exchange still running after Close")
	}
}

func TestForwarderIdleTTL(t *testing.T) {
	h := &utHandler{ip: "192.0.2.12"}
	ln := utServeTCP(t, "127.0.0.1:0", h, nil, -1)
	f := utForwarder(t, ForwarderConfig{Upstreams: []Upstream{{Addr: ln.Addr().String(), Proto: "tcp"}}, IdleTTL: 50 * time.Millisecond})
	if _, err, _ := utExchange(t, f, utQuery("ttl.test.", 1, true)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ln.closed:
	case <-time.After(utBound):
		t.Fatal("the idle connection was not closed after IdleTTL")
	}
	if n := f.ups[0].tcp.idleCount(); n != 0 {
		t.Errorf("%d idle connections", n)
	}
}

func TestNewForwarderRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  ForwarderConfig
		want string
	}{
		{"no upstreams", ForwarderConfig{}, "no upstreams"},
		{"host name", ForwarderConfig{Upstreams: []Upstream{{Addr: "dns.example:53"}}}, "want IP:port"},
		{"no port", ForwarderConfig{Upstreams: []Upstream{{Addr: "192.0.2.1"}}}, "want IP:port"},
		{"protocol", ForwarderConfig{Upstreams: []Upstream{{Addr: "192.0.2.1:53", Proto: "doh"}}}, `protocol "doh"`},
		{"server name on udp", ForwarderConfig{Upstreams: []Upstream{{Addr: "192.0.2.1:53", ServerName: "x.example"}}}, "only for tls"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewForwarder(tc.cfg)
			if err == nil {
				f.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestParseUpstream(t *testing.T) {
	tests := []struct {
		in      string
		want    Upstream
		wantErr string // substring of the error; "" = no error
	}{
		{"192.0.2.1", Upstream{Addr: "192.0.2.1:53", Proto: "udp"}, ""},
		{" 192.0.2.1:5353 ", Upstream{Addr: "192.0.2.1:5353", Proto: "udp"}, ""},
		{"udp://192.0.2.1", Upstream{Addr: "192.0.2.1:53", Proto: "udp"}, ""},
		{"[2001:db8::1]:53", Upstream{Addr: "[2001:db8::1]:53", Proto: "udp"}, ""},
		{"[2001:db8::1]", Upstream{Addr: "[2001:db8::1]:53", Proto: "udp"}, ""},
		{"2001:DB8::1", Upstream{Addr: "[2001:db8::1]:53", Proto: "udp"}, ""},
		{"::ffff:192.0.2.1", Upstream{Addr: "192.0.2.1:53", Proto: "udp"}, ""},
		{"tcp://192.0.2.1", Upstream{Addr: "192.0.2.1:53", Proto: "tcp"}, ""},
		{"TCP://192.0.2.1:5353", Upstream{Addr: "192.0.2.1:5353", Proto: "tcp"}, ""},
		{"tls://192.0.2.1#dns.example", Upstream{Addr: "192.0.2.1:853", Proto: "tls", ServerName: "dns.example"}, ""},
		{"tls://192.0.2.1:8853#DNS.Example.", Upstream{Addr: "192.0.2.1:8853", Proto: "tls", ServerName: "dns.example"}, ""},
		{"tls://[2001:db8::1]#dns.example", Upstream{Addr: "[2001:db8::1]:853", Proto: "tls", ServerName: "dns.example"}, ""},
		{"tls://192.0.2.1", Upstream{Addr: "192.0.2.1:853", Proto: "tls", ServerName: "192.0.2.1"}, ""},

		{"", Upstream{}, "empty"},
		{"   ", Upstream{}, "empty"},
		{"dns.example", Upstream{}, "not an IP address"},
		{"dns.example:53", Upstream{}, "not an IP address"},
		{"tls://dns.example#dns.example", Upstream{}, "not an IP address"},
		{"https://192.0.2.1/dns-query", Upstream{}, `unknown scheme "https"`},
		{"192.0.2.1:0", Upstream{}, "port 0"},
		{"192.0.2.1:65536", Upstream{}, "bad address"},
		{"192.0.2.1:dns", Upstream{}, "bad address"},
		{"192.0.2.256", Upstream{}, "bad address"},
		{"0.0.0.0", Upstream{}, "not a unicast address"},
		{"[ff02::1]:53", Upstream{}, "not a unicast address"},
		{"[fe80::1%eth0]:53", Upstream{}, "zones"},
		{"[192.0.2.1]", Upstream{}, "not an IPv6 address"},
		{"192.0.2.1#dns.example", Upstream{}, "only for tls"},
		{"tcp://192.0.2.1#dns.example", Upstream{}, "only for tls"},
		{"tls://192.0.2.1#", Upstream{}, "empty server name"},
		{"tls://192.0.2.1#bad name", Upstream{}, "bad character"},
		{"tls://192.0.2.1#-bad.example", Upstream{}, "bad label"},
		{"tls://192.0.2.1#a..example", Upstream{}, "bad label"},
		{"tls://192.0.2.1/path", Upstream{}, "not an IP address"},
		{"192.0.2.1:53:53", Upstream{}, "bad address"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseUpstream(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				msg := err.Error()
				for _, want := range []string{tc.wantErr, fmt.Sprintf("%q", tc.in), "tls://IP[:port]"} {
					if !strings.Contains(msg, want) {
						t.Errorf("error %q does not contain %q", msg, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if again, err := ParseUpstream(got.String()); err != nil || again != got {
				t.Errorf("String %q parses back to %+v, %v", got.String(), again, err)
			}
		})
	}
}

func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{
		"192.0.2.1", "192.0.2.1:5353", "[2001:db8::1]:53", "2001:db8::1", "tls://192.0.2.1#dns.example",
		"tcp://192.0.2.1", "udp://[::1]", "tls://[2001:db8::1]:853#a.b", "tls://192.0.2.1", "dns.example",
		"[fe80::1%eth0]:53", "tls://1.2.3.4#", "x://", "#", "[", "::ffff:1.2.3.4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUpstream(s)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Fatalf("error %q does not name the input", err)
			}
			return
		}
		ap, perr := netip.ParseAddrPort(u.Addr)
		if perr != nil || ap.Port() == 0 || ap.Addr().Zone() != "" || ap.Addr().Is4In6() || ap.String() != u.Addr {
			t.Fatalf("%q: bad Addr %q (%v)", s, u.Addr, perr)
		}
		switch u.Proto {
		case "udp", "tcp":
			if u.ServerName != "" {
				t.Fatalf("%q: ServerName on %s", s, u.Proto)
			}
		case "tls":
			if u.ServerName == "" {
				t.Fatalf("%q: tls without ServerName", s)
			}
		default:
			t.Fatalf("%q: Proto %q", s, u.Proto)
		}
		again, err := ParseUpstream(u.String())
		if err != nil || again != u {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, u, u.String(), again, err)
		}
		fw, err := NewForwarder(ForwarderConfig{Upstreams: []Upstream{u}})
		if err != nil {
			t.Fatalf("%q: parsed upstream %+v rejected by NewForwarder: %v", s, u, err)
		}
		fw.Close()
	})
}

func BenchmarkForwarderUDP(b *testing.B) {
	addr := utServeUDP(b, &utHandler{ip: "192.0.2.1"})
	f := utForwarder(b, ForwarderConfig{Upstreams: []Upstream{{Addr: addr}}})
	q := utQuery("bench.example.", 1, true)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		m, err := f.Exchange(ctx, q)
		if err != nil || m.Id != 1 {
			b.Fatal(m, err)
		}
	}
}

// BenchmarkForwarderUDPParallel: distinct names, so no coalescing.
func BenchmarkForwarderUDPParallel(b *testing.B) {
	addr := utServeUDP(b, &utHandler{ip: "192.0.2.1"})
	f := utForwarder(b, ForwarderConfig{Upstreams: []Upstream{{Addr: addr}}})
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		q := utQuery(fmt.Sprintf("p%d.bench.example.", n.Add(1)), 1, true)
		for pb.Next() {
			if _, err := f.Exchange(context.Background(), q); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkForwarderBaselineDNSClient is the comparison: a new dns.Client
// exchange (a new socket) per query, as Server.forward does.
func BenchmarkForwarderBaselineDNSClient(b *testing.B) {
	addr := utServeUDP(b, &utHandler{ip: "192.0.2.1"})
	c := &dns.Client{Net: "udp", UDPSize: 1232, Timeout: 1500 * time.Millisecond}
	q := utQuery("bench.example.", 1, true)
	b.ReportAllocs()
	for b.Loop() {
		q.Id = dns.Id()
		if _, _, err := c.Exchange(q, addr); err != nil {
			b.Fatal(err)
		}
	}
}
