package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"hedgerow/categories"
	"hedgerow/store"
)

// helloTimeout bounds the wait for a ClientHello or a TLS handshake.
const helloTimeout = 10 * time.Second

// connect handles CONNECT: the port and the host are decided before any
// tunnel exists; a blocked host is refused with 403, or, for a group that
// intercepts, decrypted so the pupil sees the block page instead of a
// browser error. An allowed host is tunnelled after its ClientHello's SNI
// has been decided too, or intercepted when its URLs matter.
func (s *Server) connect(w http.ResponseWriter, r *http.Request, cl client) {
	rawHost, port := splitHostPort(r.URL.Host)
	if port == "" || !s.connectPorts[port] {
		s.refuseConnect(w, cl, resultForbidden, http.StatusForbidden, fmt.Sprintf("hedgerow: connections to port %q are not allowed.", port))
		return
	}
	host, err := categories.NormalizeHost(rawHost)
	if err != nil {
		s.refuseConnect(w, cl, resultBadRequest, http.StatusBadRequest, "hedgerow: "+err.Error())
		return
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		pn, _ := strconv.ParseUint(port, 10, 16)
		if !s.destAllowed(netip.AddrPortFrom(ip, uint16(pn))) {
			s.refuseConnect(w, cl, resultForbidden, http.StatusForbidden, "hedgerow: this address cannot be reached through the proxy.")
			return
		}
	}
	snap := s.d.Filter.Current()
	now := s.now()
	v := snap.DecideFor(s.d.Restrictions, cl.addr, cl.group, host, "", now)
	intercept := s.shouldIntercept(snap, cl, host, v)
	if v.Action == categories.Block && !intercept {
		s.d.Metrics.blocked(v, store.ChannelHTTPS)
		s.recordBlock(v, cl, store.ChannelHTTPS, host, "https://"+joinHostPort(host, portIfNot(port, "443"))+"/", "", store.IntentUnknown, now)
		s.refuseConnect(w, cl, resultBlocked, http.StatusForbidden, "hedgerow: blocked. "+v.Reason())
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.d.Log.Debug("proxy: CONNECT not hijacked", "err", err)
		return
	}
	if !s.track(conn) {
		_ = conn.Close()
		return
	}
	defer s.untrack(conn)
	if cc, ok := conn.(*clientConn); ok {
		cc.stopCapture()
	}
	var tunnelConn net.Conn = conn
	if n := brw.Reader.Buffered(); n > 0 {
		// The client did not wait for our answer: its first bytes are
		// already in the server's buffer.
		tunnelConn = &prefixConn{Conn: conn, r: io.MultiReader(io.LimitReader(brw.Reader, int64(n)), conn)}
	}
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		return
	}
	if intercept {
		s.d.Metrics.connects.WithLabelValues("intercepted").Inc()
		s.d.Metrics.request(resultAllowed, cl.group)
		s.intercept(tunnelConn, cl, host, port)
		return
	}
	s.tunnel(tunnelConn, cl, host, port)
}

func portIfNot(port, def string) string {
	if port == def {
		return ""
	}
	return port
}

func (s *Server) refuseConnect(w http.ResponseWriter, cl client, result string, status int, msg string) {
	s.d.Metrics.connects.WithLabelValues("refused").Inc()
	s.d.Metrics.request(result, cl.group)
	w.Header().Set("Connection", "close")
	s.plainError(w, status, msg)
}

// shouldIntercept: a group that intercepts has decrypted at least every host
// that will be blocked (so the pupil sees the block page), that has URL
// rules, and the search engines when its searches are monitored; never a
// do-not-intercept host (banking, health, government).
func (s *Server) shouldIntercept(snap *categories.Snapshot, cl client, host string, v categories.Verdict) bool {
	if s.d.Certs == nil {
		return false
	}
	ps := snap.ProxySettings(cl.group)
	if !ps.Intercept || s.doNotIntercept(host, v) {
		return false
	}
	return v.Action == categories.Block || snap.HasPathRules(cl.group, host) ||
		(ps.MonitorSearches && isSearchHost(host))
}

func (s *Server) doNotIntercept(host string, v categories.Verdict) bool {
	if v.Cats&s.noIntercept != 0 {
		return true
	}
	for _, d := range s.cfg.DoNotIntercept {
		if host == d || (len(host) > len(d) && host[len(host)-len(d)-1] == '.' && host[len(host)-len(d):] == d) {
			return true
		}
	}
	return false
}

// tunnel splices an allowed CONNECT after deciding the ClientHello's SNI: a
// hello for another site than the CONNECT target (domain fronting) or for a
// blocked one is refused by closing the tunnel.
func (s *Server) tunnel(conn net.Conn, cl client, host, port string) {
	_ = conn.SetReadDeadline(time.Now().Add(helloTimeout))
	raw, sni, err := readClientHello(conn)
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		s.d.Metrics.connects.WithLabelValues("refused").Inc()
		s.d.Log.Debug("proxy: tunnel without a TLS ClientHello refused", "client", cl.addr, "host", host, "err", err)
		return
	}
	if sni != "" {
		sniHost, err := categories.NormalizeHost(sni)
		if err != nil || sniHost != host {
			s.d.Metrics.connects.WithLabelValues("refused").Inc()
			s.d.Log.Info("proxy: TLS server name differs from the CONNECT target (domain fronting) refused",
				"group", cl.group, "connect", host, "sni", sni)
			if err == nil {
				if v := s.d.Filter.Current().DecideFor(s.d.Restrictions, cl.addr, cl.group, sniHost, "", s.now()); v.Action == categories.Block {
					s.d.Metrics.blocked(v, store.ChannelHTTPS)
					s.recordBlock(v, cl, store.ChannelHTTPS, sniHost, "https://"+sniHost+"/", "", store.IntentUnknown, s.now())
				}
			}
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
	upstream, err := s.dial(ctx, cl.group, net.JoinHostPort(host, port))
	cancel()
	if err != nil {
		s.d.Metrics.connects.WithLabelValues("refused").Inc()
		var ba blockedAnswer
		if errors.As(err, &ba) {
			v := ba.BlockVerdict()
			s.d.Metrics.blocked(v, store.ChannelHTTPS)
			s.recordBlock(v, cl, store.ChannelHTTPS, host, "https://"+host+"/", "", store.IntentUnknown, s.now())
		}
		s.d.Log.Debug("proxy: tunnel destination not reached", "host", host, "err", err)
		return
	}
	defer upstream.Close()
	if _, err := upstream.Write(raw); err != nil {
		return
	}
	s.d.Metrics.connects.WithLabelValues("tunnelled").Inc()
	s.d.Metrics.request(resultAllowed, cl.group)
	splice(conn, upstream, s.cfg.IdleTimeout)
}

// intercept decrypts a CONNECT with a leaf certificate from the school CA
// and serves the requests inside with an http.Server of its own: each is
// decided on its full URL, and one whose authority is not the CONNECT
// target is answered 421 (goproxy would route it by its Host header).
func (s *Server) intercept(conn net.Conn, cl client, host, port string) {
	cert, err := s.d.Certs.Get(host)
	if err != nil {
		s.d.Log.Error("proxy: no certificate for an intercepted host", "host", host, "err", err)
		return
	}
	tlsConn := tls.Server(conn, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if hello.ServerName != "" {
				if n, err := categories.NormalizeHost(hello.ServerName); err != nil || n != host {
					return nil, fmt.Errorf("TLS server name %q differs from the CONNECT target %q", hello.ServerName, host)
				}
			}
			return cert, nil
		},
	})
	_ = conn.SetDeadline(time.Now().Add(helloTimeout))
	if err := tlsConn.Handshake(); err != nil {
		s.d.Log.Debug("proxy: intercepted handshake failed", "client", cl.addr, "host", host, "err", err)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	authority := joinHostPort(host, portIfNot(port, "443"))
	srv := s.newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveIntercepted(w, r, cl, host, port, authority)
	}))
	_ = srv.Serve(newOneConnListener(tlsConn, cl.addr))
}

// serveIntercepted handles one request inside an intercepted session.
func (s *Server) serveIntercepted(w http.ResponseWriter, r *http.Request, cl client, host, port, authority string) {
	uriHost := ""
	if r.URL.IsAbs() {
		uriHost = r.URL.Host
	}
	if !s.checkShape(w, r, cl, uriHost) {
		return
	}
	if r.Method == http.MethodConnect {
		s.d.Metrics.request(resultBadRequest, cl.group)
		s.plainError(w, http.StatusBadRequest, "hedgerow: CONNECT inside a tunnel is not allowed.")
		return
	}
	for _, a := range []string{uriHost, r.Host} {
		if a == "" {
			continue
		}
		h, p := splitHostPort(a)
		if p == "" {
			p = "443"
		}
		if n, err := categories.NormalizeHost(h); err != nil || n != host || p != port {
			s.d.Metrics.request(resultBadRequest, cl.group)
			s.plainError(w, http.StatusMisdirectedRequest, "hedgerow: this connection is for "+authority+" only.")
			return
		}
	}
	r.URL.Scheme = "https"
	r.URL.Host = authority
	s.forward(w, r, cl)
}

// splice copies both ways until both sides finish, closing a tunnel that has
// been idle in both directions for idle.
func splice(a, b net.Conn, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		buf := bufPool.Get().(*[]byte)
		defer bufPool.Put(buf)
		for {
			_ = src.SetReadDeadline(time.Now().Add(idle))
			n, err := src.Read(*buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				if _, werr := dst.Write((*buf)[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) && time.Since(time.Unix(0, last.Load())) < idle {
					continue // the other direction is busy: the tunnel is not idle
				}
				break
			}
		}
		// Half-close: the other direction may still have data to finish.
		if cw, ok := unwrapTCP(dst); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.SetReadDeadline(time.Now())
		}
	}
	go pipe(b, a)
	pipe(a, b)
	wg.Wait()
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func unwrapTCP(c net.Conn) (*net.TCPConn, bool) {
	for {
		switch x := c.(type) {
		case *net.TCPConn:
			return x, true
		case *clientConn:
			c = x.Conn
		case *prefixConn:
			c = x.Conn
		default:
			return nil, false
		}
	}
}

// prefixConn reads first what the HTTP server had already buffered.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// isSearchHost reports whether host serves a search engine's results pages,
// whatever the path: CONNECT shows the host alone.
func isSearchHost(host string) bool {
	for _, path := range []string{"/search", "/", "/results", "/s", "/do/search"} {
		if e, _, _ := searchEngine(host, path); e != "" {
			return true
		}
	}
	return false
}
