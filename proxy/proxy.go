// Package proxy is hedgerow's HTTP(S) forward proxy, built on goproxy: it
// identifies each client by its source address (or its proxy login), decides
// every request on its host and full URL for the client's group, answers
// blocked requests with the block page, tunnels or (where the group allows)
// intercepts HTTPS, enforces safe search, and forwards the rest through its
// own resolver path and a verifying transport.
//
// goproxy's defaults are for demos, so none of them reach a school: clients,
// ports and destinations are checked before goproxy runs, CONNECT is handled
// here (SNI checked before splicing, intercepted sessions served by an
// http.Server with the same limits as the proxy's own), and goproxy only
// forwards requests that have already been decided.
package proxy

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elazarl/goproxy"

	"hedgerow/categories"
	"hedgerow/categories/identity"
	"hedgerow/store"
)

// Config is the proxy's configuration.
type Config struct {
	Listen       []string       // listen addresses, e.g. 127.0.0.1:3128
	ConnectPorts []int          // ports CONNECT may reach; 443 by default
	AllowDest    []netip.Prefix // loopback or link-local destinations permitted anyway (tests, a local origin)

	MaxHeaderBytes        int           // request head limit, 64 KiB by default (Squid's)
	ReadHeaderTimeout     time.Duration // slowloris guard
	IdleTimeout           time.Duration // keep-alive and tunnel idle limit
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration // how long an origin may take to answer
	MaxConnsPerClient     int           // connections open at once per source address

	ForwardedFor bool // add X-Forwarded-For with the client's address (off: pupils' addresses stay inside)

	// Hosts never decrypted, even for a group that intercepts: domains (and
	// their subdomains) and categories. Banking, health and government by default.
	DoNotIntercept           []string
	DoNotInterceptCategories []string

	SchoolName  string         // shown on the block page
	UpstreamCAs *x509.CertPool // roots for origin certificates; nil = the system's
}

// DefaultConfig returns the defaults: an unprivileged port on loopback.
func DefaultConfig() Config {
	return Config{
		Listen:                []string{"127.0.0.1:3128"},
		ConnectPorts:          []int{443},
		MaxHeaderBytes:        64 << 10,
		ReadHeaderTimeout:     10 * time.Second,
		IdleTimeout:           120 * time.Second,
		DialTimeout:           10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxConnsPerClient:     256,
		DoNotIntercept: []string{"gov.uk", "nhs.uk", "nhs.net", "police.uk", "hmrc.gov.uk", "gov.scot", "gov.wales",
			"nidirect.gov.uk", "childline.org.uk", "samaritans.org"},
		DoNotInterceptCategories: []string{"banking"},
	}
}

// Resolver resolves destination names the way the DNS filter answers the
// client's group (upstreams, cache, safe-search names, answer checks).
type Resolver interface {
	LookupNetIP(ctx context.Context, group, host string) ([]netip.Addr, error)
}

// ErrBadLogin is what an Authenticator returns for a wrong user name or password.
var ErrBadLogin = errors.New("wrong user name or password")

// Authenticator checks proxy logins. It returns the user's group ("" when the
// device's group should decide), ErrBadLogin, or another error when the
// accounts cannot be checked (the proxy then fails closed with 503).
type Authenticator interface {
	Authenticate(ctx context.Context, user, password string) (group string, err error)
}

// Reporter files the reports made from the block page.
type Reporter interface {
	AddReport(store.Report) (uint64, error)
}

// Deps are the parts the proxy works with, passed in by the program.
type Deps struct {
	Filter   *categories.Filter
	Resolver Resolver
	Certs    *LeafCache    // nil: no interception
	Auth     Authenticator // nil: proxy logins are refused
	Reports  Reporter
	Recorder store.Recorder
	Metrics  *Metrics
	Log      *slog.Logger
	OwnAddrs []string // hedgerow's other listeners (DNS, admin): never destinations
	// Restrictions, if set, are devices limited to approved sites for a
	// while after a pattern of attempts (shared with the DNS filter).
	Restrictions *categories.Restrictions
	// Identity, if set, names the device and user behind an address.
	Identity *identity.Table
}

// Server is the forward proxy.
type Server struct {
	cfg          Config
	d            Deps
	gp           *goproxy.ProxyHttpServer
	dialer       net.Dialer
	connectPorts map[string]bool
	own          ownAddrs
	noIntercept  categories.Mask
	tokenKey     []byte
	logins       *loginCache
	now          func() time.Time

	transports sync.Map // group -> *http.Transport

	mu       sync.Mutex
	servers  []*http.Server
	hijacked map[net.Conn]struct{}
	closing  bool
}

// New returns a proxy deciding with d.Filter's current snapshot.
func New(cfg Config, d Deps) (*Server, error) {
	def := DefaultConfig()
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = def.MaxHeaderBytes
	}
	orDefault(&cfg.ReadHeaderTimeout, def.ReadHeaderTimeout)
	orDefault(&cfg.IdleTimeout, def.IdleTimeout)
	orDefault(&cfg.DialTimeout, def.DialTimeout)
	orDefault(&cfg.ResponseHeaderTimeout, def.ResponseHeaderTimeout)
	if len(cfg.ConnectPorts) == 0 {
		cfg.ConnectPorts = def.ConnectPorts
	}
	if len(cfg.Listen) == 0 {
		return nil, errors.New("proxy: no listen address configured")
	}
	if d.Filter == nil || d.Resolver == nil || d.Recorder == nil || d.Metrics == nil || d.Log == nil {
		return nil, errors.New("proxy: filter, resolver, recorder, metrics and log are required")
	}
	s := &Server{cfg: cfg, d: d, connectPorts: map[string]bool{}, hijacked: map[net.Conn]struct{}{}, now: time.Now,
		dialer: net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}}
	for _, p := range cfg.ConnectPorts {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("proxy: connect port %d: want 1-65535", p)
		}
		s.connectPorts[strconv.Itoa(p)] = true
	}
	for _, dom := range cfg.DoNotIntercept {
		if _, err := categories.NormalizeHost(dom); err != nil {
			return nil, fmt.Errorf("proxy: do-not-intercept %q: %w", dom, err)
		}
	}
	m, err := d.Filter.Current().Taxonomy().MaskOf(cfg.DoNotInterceptCategories...)
	if err != nil {
		return nil, fmt.Errorf("proxy: do-not-intercept categories: %w", err)
	}
	s.noIntercept = m
	own, err := newOwnAddrs(append(append([]string{}, cfg.Listen...), d.OwnAddrs...))
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	s.own = own
	s.tokenKey = make([]byte, 32)
	_, _ = rand.Read(s.tokenKey)
	s.logins = newLoginCache(d.Auth)
	if d.Certs != nil {
		d.Metrics.watchCerts(d.Certs)
	}

	gp := goproxy.NewProxyHttpServer()
	gp.Logger = slog.NewLogLogger(d.Log.Handler(), slog.LevelDebug)
	gp.Tr = nil                  // never goproxy's transport (environment proxy); each group's is set per request
	gp.ConnectDial = nil         // CONNECT never reaches goproxy
	gp.KeepAcceptEncoding = true // pass the client's encodings through rather than decompress in the middle
	gp.OnRequest().DoFunc(func(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		ctx.RoundTripper = goproxy.RoundTripperFunc(s.roundTrip)
		return r, nil
	})
	gp.OnResponse().DoFunc(s.onResponse)
	s.gp = gp
	return s, nil
}

func orDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// ListenAndServe serves on every listen address until ctx is done, then
// shuts down, closing tunnels and intercepted sessions too. ready, if not
// nil, is called once all listen.
func (s *Server) ListenAndServe(ctx context.Context, ready func()) error {
	var lns []net.Listener
	for _, addr := range s.cfg.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return fmt.Errorf("proxy: listen %s: %w", addr, err)
		}
		lns = append(lns, ln)
	}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		srv := s.newHTTPServer(http.HandlerFunc(s.ServeHTTP))
		s.mu.Lock()
		s.servers = append(s.servers, srv)
		s.mu.Unlock()
		limited := newLimitListener(ln, s.cfg.MaxConnsPerClient, func() { s.d.Metrics.limited.WithLabelValues("connections").Inc() })
		go func() { errc <- srv.Serve(limited) }()
	}
	if ready != nil {
		ready()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.shutdown()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Addrs returns the configured listen addresses.
func (s *Server) Addrs() []string { return s.cfg.Listen }

func (s *Server) shutdown() {
	s.mu.Lock()
	s.closing = true
	servers := s.servers
	for c := range s.hijacked {
		_ = c.Close() // tunnels and intercepted sessions are outside http.Server's reach
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(ctx)
	}
}

// newHTTPServer applies the proxy's limits to a server: the outer listener's
// and every intercepted session's.
func (s *Server) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ErrorLog: slog.NewLogLogger(s.d.Log.Handler(), slog.LevelDebug),
	}
}

// connKey finds the client connection in a request's context.
type connKey struct{}

func connOf(r *http.Request) *clientConn {
	c, _ := r.Context().Value(connKey{}).(*clientConn)
	return c
}

// track remembers a hijacked connection so shutdown can close it; it returns
// false when the proxy is already shutting down.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.hijacked[c] = struct{}{}
	s.d.Metrics.tunnels.Inc()
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.hijacked, c)
	s.mu.Unlock()
	s.d.Metrics.tunnels.Dec()
	_ = c.Close()
}

// client is who is asking: the source address, the group that decides for
// it and the proxy login, if any.
type client struct {
	addr  netip.Addr
	group string
	user  string
	who   identity.Who // device and user as the network knows them
}

// ServeHTTP handles one request to the proxy, in one straight line: identify
// the client, check the request's shape, then tunnel, answer locally, or
// decide and forward.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cl, ok := s.identify(w, r)
	if !ok {
		return
	}
	uriHost := ""
	if r.URL.IsAbs() {
		uriHost = r.URL.Host
	}
	if !s.checkShape(w, r, cl, uriHost) {
		return
	}
	switch {
	case r.Method == http.MethodConnect:
		s.connect(w, r, cl)
	case !r.URL.IsAbs():
		s.local(w, r, cl)
	default:
		s.forward(w, r, cl)
	}
}

// identify maps the source address to a group, and a proxy login (required
// by the group, or offered by the client) to a user whose group then
// decides. Sources in no mapped range are refused: never an open proxy.
func (s *Server) identify(w http.ResponseWriter, r *http.Request) (client, bool) {
	var cl client
	if c := connOf(r); c != nil {
		cl.addr = c.addr
	} else if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		cl.addr = ap.Addr().Unmap()
	}
	snap := s.d.Filter.Current()
	group, ok := snap.GroupFor(cl.addr)
	if !ok {
		s.d.Metrics.request(resultRefused, "")
		s.plainError(w, http.StatusForbidden, "hedgerow: this device is not allowed to use this proxy.")
		return cl, false
	}
	cl.group = group
	if s.d.Identity != nil {
		// Precedence: the user's group (proxy login, else RADIUS), else
		// the named device's, else the address range's.
		cl.who = s.d.Identity.Lookup(cl.addr, s.now())
		cl.user = cl.who.User
		if g := cl.who.Group; g != "" && snap.HasGroup(g) {
			cl.group = g
		}
	}
	auth := r.Header.Get("Proxy-Authorization")
	if !snap.ProxySettings(group).Login && auth == "" {
		return cl, true
	}
	user, pass, ok := parseBasic(auth)
	if !ok {
		s.d.Metrics.request(resultAuth, group)
		s.askLogin(w, "hedgerow: please log in to use the internet.")
		return cl, false
	}
	userGroup, err := s.logins.check(r.Context(), user, pass)
	switch {
	case errors.Is(err, ErrBadLogin):
		s.d.Metrics.request(resultAuth, group)
		s.askLogin(w, "hedgerow: that user name or password is not right.")
		return cl, false
	case err != nil:
		// The accounts could not be checked: fail closed, never unfiltered.
		s.d.Log.Error("proxy login could not be checked", "group", group, "err", err)
		s.d.Metrics.request(resultUnavailable, group)
		s.plainError(w, http.StatusServiceUnavailable, "hedgerow: logins cannot be checked just now; please try again in a minute.")
		return cl, false
	}
	cl.user = user
	cl.who = cl.who.WithProxyLogin(user, userGroup)
	if userGroup != "" && snap.HasGroup(userGroup) {
		cl.group = userGroup
	}
	return cl, true
}

// checkShape refuses the request heads that smuggle requests or disagree
// about their target (see checkHead).
func (s *Server) checkShape(w http.ResponseWriter, r *http.Request, cl client, uriHost string) bool {
	c := connOf(r)
	if c == nil || r.ProtoMajor != 1 {
		return true // not from our listener (tests calling ServeHTTP), or HTTP/2 framing
	}
	head, ok := c.takeHead(r.Method + " " + r.RequestURI + " ")
	err := errors.New("the request head could not be read back")
	if ok {
		err = checkHead(head, uriHost)
	}
	if err != nil {
		s.d.Metrics.request(resultBadRequest, cl.group)
		s.d.Log.Info("proxy: malformed request refused", "group", cl.group, "err", err)
		s.plainError(w, http.StatusBadRequest, "hedgerow: malformed request: "+err.Error())
		return false
	}
	return true
}

// local answers requests made to the proxy itself (origin form): the
// school's CA certificate for devices to install; anything else is a
// mistake, since this is a proxy.
func (s *Server) local(w http.ResponseWriter, r *http.Request, cl client) {
	if r.URL.Path == "/ca.crt" && s.d.Certs != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "application/x-x509-ca-cert")
		w.Header().Set("Content-Disposition", `attachment; filename="hedgerow-school-ca.crt"`)
		_, _ = w.Write(s.d.Certs.CA().CertPEM())
		return
	}
	s.d.Metrics.request(resultBadRequest, cl.group)
	s.plainError(w, http.StatusBadRequest, "hedgerow: this is a web proxy; set it as your browser's proxy rather than visiting it.")
}

// plainError writes a short text answer for a request hedgerow refuses.
func (s *Server) plainError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, msg)
}

func (s *Server) askLogin(w http.ResponseWriter, msg string) {
	w.Header().Set("Proxy-Authenticate", `Basic realm="hedgerow", charset="UTF-8"`)
	s.plainError(w, http.StatusProxyAuthRequired, msg)
}

// ownAddrs are hedgerow's own listeners: the proxy never connects to them,
// whatever AllowDest says, so it cannot be turned on itself or its admin UI.
type ownAddrs struct {
	exact map[netip.AddrPort]bool
	ports map[uint16]bool // wildcard listeners: the port on any local address
	local map[netip.Addr]bool
}

func newOwnAddrs(listeners []string) (ownAddrs, error) {
	o := ownAddrs{exact: map[netip.AddrPort]bool{}, ports: map[uint16]bool{}, local: map[netip.Addr]bool{}}
	for _, l := range listeners {
		host, port, err := net.SplitHostPort(l)
		if err != nil {
			return o, fmt.Errorf("listen address %q: %w", l, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return o, fmt.Errorf("listen address %q: port: %w", l, err)
		}
		ip, err := netip.ParseAddr(host)
		if host == "" || (err == nil && ip.IsUnspecified()) {
			o.ports[uint16(p)] = true
			continue
		}
		if err != nil {
			continue // a name: resolved by the listener, not ours to guess
		}
		o.exact[netip.AddrPortFrom(ip.Unmap(), uint16(p))] = true
	}
	if len(o.ports) > 0 {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
						o.local[ip.Unmap()] = true
					}
				}
			}
		}
	}
	return o, nil
}

func (o ownAddrs) has(ap netip.AddrPort) bool {
	if o.exact[ap] {
		return true
	}
	return o.ports[ap.Port()] && (o.local[ap.Addr()] || ap.Addr().IsLoopback() || ap.Addr().IsUnspecified())
}

// cloudMetadata are instance-metadata services outside the link-local range.
var cloudMetadata = []netip.Prefix{
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS over IPv6
}

// destAllowed reports whether the proxy may connect to ap: never its own
// listeners; loopback, link-local, unspecified, multicast and cloud metadata
// only when AllowDest names them; everything else (the school's private
// ranges included, for its intranet) yes.
func (s *Server) destAllowed(ap netip.AddrPort) bool {
	a := ap.Addr().Unmap()
	ap = netip.AddrPortFrom(a, ap.Port())
	if s.own.has(ap) {
		return false
	}
	special := a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified() ||
		a.IsMulticast() || a.IsInterfaceLocalMulticast() || (a.Is4() && a.As4()[0] == 0)
	for _, p := range cloudMetadata {
		special = special || p.Contains(a)
	}
	if !special {
		return true
	}
	for _, p := range s.cfg.AllowDest {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseBasic reads "Basic base64(user:password)".
func parseBasic(h string) (user, pass string, ok bool) {
	const prefix = "Basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	r := &http.Request{Header: http.Header{"Authorization": {h}}}
	return r.BasicAuth()
}
