package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/elazarl/goproxy"

	"hedgerow/categories"
	"hedgerow/store"
)

// ReportPath is where the block page's forms post, on the blocked site's own
// origin, so the form works over plain HTTP and inside intercepted HTTPS
// alike; the proxy answers it and never forwards it.
const ReportPath = "/.well-known/hedgerow/report"

// reqInfo travels with a forwarded request to the transport: the group
// picks the resolver path (safe-search names) and the connection pool.
type reqInfo struct {
	cl      client
	channel string
	intent  string
	term    string
}

type infoKey struct{}

// forward decides a request on its host and full URL and forwards what is
// allowed: a plain HTTP request, or one inside an intercepted session whose
// URL already names the CONNECT target.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, cl client) {
	channel := store.ChannelHTTP
	switch r.URL.Scheme {
	case "http":
	case "https":
		channel = store.ChannelHTTPS
	default:
		s.d.Metrics.request(resultBadRequest, cl.group)
		s.plainError(w, http.StatusBadRequest, "hedgerow: only http and https URLs can go through this proxy.")
		return
	}
	host, err := categories.NormalizeHost(r.URL.Hostname())
	if err != nil {
		s.d.Metrics.request(resultBadRequest, cl.group)
		s.plainError(w, http.StatusBadRequest, "hedgerow: "+err.Error())
		return
	}
	port := r.URL.Port()
	// Only the canonical host is ever dialled: "http://3232235777/" goes to
	// 192.168.1.1, decided as 192.168.1.1.
	r.URL.Host = joinHostPort(host, port)
	r.Host = r.URL.Host
	if isIPLiteral(host) {
		p := port
		if p == "" {
			p = map[string]string{"http": "80", "https": "443"}[r.URL.Scheme]
		}
		pn, _ := strconv.ParseUint(p, 10, 16)
		if ip, err := netip.ParseAddr(host); err == nil && !s.destAllowed(netip.AddrPortFrom(ip, uint16(pn))) {
			s.d.Metrics.request(resultForbidden, cl.group)
			s.plainError(w, http.StatusForbidden, "hedgerow: this address cannot be reached through the proxy.")
			return
		}
	}
	path := categories.NormalizePath(r.URL.EscapedPath())
	if path == ReportPath {
		s.report(w, r, cl, host)
		return
	}
	snap := s.d.Filter.Current()
	now := s.now()
	engine, term, isSearch := SearchTerm(host, r.URL.Path, r.URL.RawQuery)
	intent := intentOf(r, isSearch || isSuggestion(host, r.URL.Path))
	v := snap.DecideFor(s.d.Restrictions, cl.addr, cl.group, host, path, now)
	if v.Action == categories.Block {
		s.block(w, r, cl, channel, host, v, term, intent)
		return
	}
	if intent != store.IntentBackground && snap.KeepsContext(cl.group) && !snap.IsNoise(host) {
		if vr, ok := s.d.Recorder.(store.VisitRecorder); ok {
			vr.Visited(cl.addr, host, now)
		}
	}
	if isSearch {
		s.d.Metrics.searches.Inc()
		if snap.ProxySettings(cl.group).MonitorSearches && term != "" {
			s.record(store.Attempt{Time: now, Channel: channel, Client: cl.addr, User: cl.user, Group: cl.group, Host: host,
				URL: r.URL.String(), SearchTerm: term, Rule: "monitored search (" + engine + ")", Intent: intent,
				Device: cl.who.Device, MAC: cl.who.MAC, Identified: cl.who.Sources()})
		}
	}
	safe, youtube := snap.SearchSettings(cl.group)
	EnforceSafeSearch(r, host, SafeSearchSettings{SafeSearch: safe, YouTube: youtube})
	removeHopByHop(r.Header, isWebSocket(r.Header))
	if s.cfg.ForwardedFor {
		r.Header.Add("X-Forwarded-For", cl.addr.String())
	}
	info := &reqInfo{cl: cl, channel: channel, intent: intent, term: term}
	s.gp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), infoKey{}, info)))
}

// intentOf tells a page the pupil asked for from the requests a page makes
// by itself, using the browser's Fetch metadata: only the former count
// towards patterns and the review queue.
func intentOf(r *http.Request, search bool) string {
	mode, dest := r.Header.Get("Sec-Fetch-Mode"), r.Header.Get("Sec-Fetch-Dest")
	switch {
	case mode == "navigate" || dest == "document":
		return store.IntentNavigate
	case mode != "" || dest != "":
		return store.IntentBackground // fetch, image, script, iframe, suggestion keystrokes
	case search:
		return store.IntentNavigate // no Fetch metadata, but a search URL is typed
	}
	return store.IntentUnknown
}

// block answers a blocked request with the block page and hands the attempt
// to the recorder.
func (s *Server) block(w http.ResponseWriter, r *http.Request, cl client, channel, host string, v categories.Verdict, term, intent string) {
	s.d.Metrics.request(resultBlocked, cl.group)
	s.d.Metrics.blocked(v, channel)
	now := s.now()
	info := BlockInfo{URL: r.URL.String(), Host: host, Reason: v.Reason(), Group: cl.group, Device: cl.addr.String(),
		User: cl.user, Time: now, SchoolName: s.cfg.SchoolName, ReportPath: ReportPath, CSRF: s.token(cl.addr, host, now)}
	if v.Category != nil {
		info.Category, info.CategoryDescription, info.Severity = v.Category.Name, v.Category.Description, v.Category.Severity.String()
	}
	// Recorded before answering: Record never waits, and the attempt then
	// exists by the time the pupil sees the page.
	s.recordBlock(v, cl, channel, host, info.URL, term, intent, now)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusForbidden)
	if err := renderBlockPage(w, info); err != nil {
		s.d.Log.Debug("block page not written", "err", err)
	}
}

func (s *Server) recordBlock(v categories.Verdict, cl client, channel, host, url, term, intent string, now time.Time) {
	a := store.Attempt{Time: now, Channel: channel, Client: cl.addr, User: cl.user, Group: cl.group, Host: host, URL: url,
		SearchTerm: term, Rule: v.Rule.String(), Blocked: true, Intent: intent,
		Device: cl.who.Device, MAC: cl.who.MAC, Identified: cl.who.Sources()}
	if v.Category != nil {
		a.Category, a.Severity = v.Category.Slug, v.Category.Severity.String()
	}
	s.record(a)
}

func (s *Server) record(a store.Attempt) {
	s.d.Recorder.Record(a)
	s.d.Metrics.recorded.Inc()
}

// token is the block page forms' CSRF token: tied to the device, the site
// and the day, so another page cannot file reports in a pupil's name.
func (s *Server) token(addr netip.Addr, host string, t time.Time) string {
	mac := hmac.New(sha256.New, s.tokenKey)
	mac.Write([]byte(addr.String() + "|" + host + "|" + t.UTC().Format("2006-01-02")))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// report files a report made from the block page.
func (s *Server) report(w http.ResponseWriter, r *http.Request, cl client, host string) {
	rep, err := parseReport(r)
	if err != nil {
		s.d.Metrics.request(resultBadRequest, cl.group)
		status := http.StatusBadRequest
		if r.Method != http.MethodPost {
			status = http.StatusMethodNotAllowed
		}
		s.plainError(w, status, "hedgerow: the report could not be read: "+err.Error())
		return
	}
	now := s.now()
	ok := false
	for _, day := range []time.Time{now, now.Add(-24 * time.Hour)} {
		ok = ok || hmac.Equal([]byte(rep.Token), []byte(s.token(cl.addr, host, day)))
	}
	if !ok {
		s.d.Metrics.request(resultBadRequest, cl.group)
		s.plainError(w, http.StatusForbidden, "hedgerow: this report did not come from the block page; please use the form on the page again.")
		return
	}
	if s.d.Reports == nil {
		s.plainError(w, http.StatusServiceUnavailable, "hedgerow: reports are not being taken; please tell a teacher.")
		return
	}
	_, err = s.d.Reports.AddReport(store.Report{Kind: rep.Kind, Time: now, Client: cl.addr.String(), User: cl.user,
		Group: cl.group, URL: rep.URL, Host: host, Category: rep.Category, Message: rep.Message})
	if err != nil {
		s.d.Log.Error("report from the block page not saved", "kind", rep.Kind, "group", cl.group, "err", err)
		s.plainError(w, http.StatusServiceUnavailable, "hedgerow: your report could not be saved just now; please try again, or tell a teacher.")
		return
	}
	s.d.Log.Info("report filed from the block page", "kind", rep.Kind, "host", host, "group", cl.group)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = renderReportThanks(w, rep.Kind, s.cfg.SchoolName)
}

// roundTrip forwards an allowed request with its group's transport.
func (s *Server) roundTrip(r *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
	info, _ := r.Context().Value(infoKey{}).(*reqInfo)
	if info == nil {
		return nil, errors.New("request reached the transport without a decision") // never forward undecided
	}
	start := time.Now()
	resp, err := s.transport(info.cl.group).RoundTrip(r)
	s.d.Metrics.upstream.Observe(time.Since(start).Seconds())
	return resp, err
}

// transport returns the group's transport. Groups get their own connection
// pools because a name can lead to different servers per group (the
// safe-search names): a pool shared with staff would hand a pupil's request
// to unrestricted YouTube.
func (s *Server) transport(group string) *http.Transport {
	if t, ok := s.transports.Load(group); ok {
		return t.(*http.Transport)
	}
	t := &http.Transport{
		Proxy: nil, // never the environment's HTTP(S)_PROXY
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return s.dial(ctx, group, addr)
		},
		TLSClientConfig:       &tls.Config{RootCAs: s.cfg.UpstreamCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: s.cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // the client's own Accept-Encoding goes through
	}
	actual, _ := s.transports.LoadOrStore(group, t)
	return actual.(*http.Transport)
}

// errForbiddenDest is a destination the proxy will not connect to.
var errForbiddenDest = errors.New("destination not allowed through the proxy")

// dial connects to host:port for a client of group: names through the
// filter's own resolver path, only to permitted destinations, only the
// canonical address.
func (s *Server) dial(ctx context.Context, group, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip.Unmap()}
	} else if addrs, err = s.d.Resolver.LookupNetIP(ctx, group, host); err != nil {
		return nil, err
	}
	lastErr := errForbiddenDest
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, uint16(pn))
		if !s.destAllowed(ap) {
			continue
		}
		c, err := s.dialer.DialContext(ctx, "tcp", ap.String())
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// blockedAnswer is what the resolver returns for an answer that leads to a
// blocked name (dnsfilter.BlockedError), without importing the DNS filter.
type blockedAnswer interface{ BlockVerdict() categories.Verdict }

// onResponse strips hop-by-hop headers from an origin's answer, and turns a
// failure to reach the origin into a page that says what happened (never
// goproxy's error text, and a block page when the answer was blocked).
func (s *Server) onResponse(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
	r := ctx.Req
	info, _ := r.Context().Value(infoKey{}).(*reqInfo)
	if resp != nil {
		if info != nil {
			s.d.Metrics.request(resultAllowed, info.cl.group)
		}
		removeHopByHop(resp.Header, resp.StatusCode == http.StatusSwitchingProtocols)
		return resp
	}
	status, msg, result := http.StatusBadGateway, "hedgerow: the website could not be reached.", resultUpstreamErr
	var ba blockedAnswer
	var dnsErr *net.DNSError
	switch err := ctx.Error; {
	case errors.As(err, &ba) && info != nil:
		v := ba.BlockVerdict()
		s.d.Metrics.blocked(v, info.channel)
		s.recordBlock(v, info.cl, info.channel, r.URL.Hostname(), r.URL.String(), info.term, info.intent, s.now())
		status, msg, result = http.StatusForbidden, "hedgerow: blocked. "+v.Reason(), resultBlocked
	case errors.Is(err, errForbiddenDest):
		status, msg, result = http.StatusForbidden, "hedgerow: this address cannot be reached through the proxy.", resultForbidden
	case errors.Is(err, context.Canceled):
		result = resultCancelled // the client went away first: not the origin's fault
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		msg = "hedgerow: there is no website called " + r.URL.Hostname() + "."
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		status, msg = http.StatusGatewayTimeout, "hedgerow: the website took too long to answer."
	}
	if info != nil {
		s.d.Metrics.request(result, info.cl.group)
	}
	s.d.Log.Debug("proxy: upstream failed", "url", r.URL.String(), "err", ctx.Error)
	resp = goproxy.NewResponse(r, goproxy.ContentTypeText+"; charset=utf-8", status, msg+"\n")
	resp.Header.Set("Cache-Control", "no-store")
	return resp
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hopByHop are the fields that describe one connection, not the message
// (RFC 9110 §7.6.1): a proxy never passes them on.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// removeHopByHop deletes the hop-by-hop fields and those the Connection
// field names; a WebSocket upgrade keeps its Connection and Upgrade.
func removeHopByHop(h http.Header, upgrade bool) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			name = textproto.TrimString(name)
			if upgrade && strings.EqualFold(name, "upgrade") {
				continue
			}
			if name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		if upgrade && (name == "Connection" || name == "Upgrade") {
			continue
		}
		if name == "Te" && h.Get("Te") == "trailers" {
			continue // the one TE value that is end to end in practice (gRPC)
		}
		h.Del(name)
	}
}

func isWebSocket(h http.Header) bool {
	return strings.EqualFold(h.Get("Upgrade"), "websocket")
}

// joinHostPort joins a canonical host and an optional port, bracketing IPv6.
func joinHostPort(host, port string) string {
	if port == "" {
		if strings.IndexByte(host, ':') >= 0 {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}

// isIPLiteral reports whether a canonical host is an IP address.
func isIPLiteral(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}
