// Package dnsfilter is hedgerow's DNS filter: a miekg/dns server that
// identifies each client by its source address, decides the query name for
// the client's group, answers blocked names itself and forwards the rest to
// the upstream resolvers through a cache. Every miekg/dns type stays inside
// this package.
package dnsfilter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"hedgerow/categories"
	"hedgerow/categories/identity"
	"hedgerow/store"
)

// Block answers: how a blocked name is answered.
const (
	BlockNXDomain  = "nxdomain"  // NXDOMAIN with an SOA (the default)
	BlockNull      = "null"      // 0.0.0.0 and ::
	BlockBlockPage = "blockpage" // the address of hedgerow's block page
)

// Config is the DNS filter's configuration.
type Config struct {
	Listen      []string      // listen addresses for UDP and TCP, e.g. 127.0.0.1:5353
	Upstreams   []Upstream    // resolvers for allowed names, tried in order
	Timeout     time.Duration // how long a client waits for upstreams before stale or SERVFAIL
	MaxInFlight int           // queries handled at once; more are dropped and counted
	RateLimit   int           // responses per second per client address; 0 is unlimited
	BlockTTL    uint32        // TTL of blocked answers (and of their SOA, for negative caching)

	BlockAnswer      string            // BlockNXDomain, BlockNull or BlockBlockPage
	GroupBlockAnswer map[string]string // per-group override of BlockAnswer
	BlockPageIPv4    netip.Addr        // for BlockBlockPage
	BlockPageIPv6    netip.Addr

	BlockPrivateRelay bool // answer Apple's Private Relay canaries NXDOMAIN

	Cache CacheConfig

	// Restrictions, if set, are devices a pattern of attempts has limited to
	// approved sites for a while (shared with the proxy).
	Restrictions *categories.Restrictions
	// Identity, if set, names the device and user behind an address; a
	// user's (or a named device's) group takes precedence over the range's.
	Identity *identity.Table
}

// DefaultConfig returns the defaults: an unprivileged port on loopback.
func DefaultConfig() Config {
	return Config{Listen: []string{"127.0.0.1:5353"}, Timeout: 1800 * time.Millisecond, MaxInFlight: 1024,
		RateLimit: 200, BlockTTL: 60, BlockAnswer: BlockNXDomain, BlockPrivateRelay: true}
}

func (c *Config) validate() error {
	var errs []error
	if len(c.Upstreams) == 0 {
		errs = append(errs, errors.New("no upstream resolvers configured"))
	}
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("no listen address configured"))
	}
	check := func(where, mode string) {
		switch mode {
		case BlockNXDomain, BlockNull:
		case BlockBlockPage:
			if !c.BlockPageIPv4.IsValid() && !c.BlockPageIPv6.IsValid() {
				errs = append(errs, fmt.Errorf("%s: %q needs the block page's address", where, mode))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: %q: want %s, %s or %s", where, mode, BlockNXDomain, BlockNull, BlockBlockPage))
		}
	}
	check("block answer", c.BlockAnswer)
	for g, mode := range c.GroupBlockAnswer {
		check("block answer of group "+g, mode)
	}
	if len(errs) > 0 {
		return fmt.Errorf("dns filter: %w", errors.Join(errs...))
	}
	return nil
}

// Server answers DNS for pupil devices.
type Server struct {
	cfg      Config
	filter   *categories.Filter
	log      *slog.Logger
	metrics  *Metrics
	recorder store.Recorder
	visits   store.VisitRecorder // nil unless the recorder keeps a context window
	fwd      *Forwarder
	cache    *Cache
	limiter  *rateLimiter
	inflight chan struct{}
	now      func() time.Time

	mu      sync.Mutex
	servers []*dns.Server
}

// New returns a server deciding with filter's current snapshot and handing
// every blocked attempt to recorder.
func New(cfg Config, filter *categories.Filter, metrics *Metrics, recorder store.Recorder, log *slog.Logger) (*Server, error) {
	def := DefaultConfig()
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = def.MaxInFlight
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = def.Timeout
	}
	if cfg.BlockAnswer == "" {
		cfg.BlockAnswer = def.BlockAnswer
	}
	if cfg.BlockTTL == 0 {
		cfg.BlockTTL = def.BlockTTL
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	fwd, err := NewForwarder(ForwarderConfig{Upstreams: cfg.Upstreams, Timeout: cfg.Timeout})
	if err != nil {
		return nil, fmt.Errorf("dns filter: %w", err)
	}
	fwd.SetObserver(metrics.observeUpstream)
	for _, u := range cfg.Upstreams {
		metrics.upstreamEr.WithLabelValues(u.String()) // an error rate starts from 0, not from absent
	}
	s := &Server{
		cfg:      cfg,
		filter:   filter,
		log:      log,
		metrics:  metrics,
		recorder: recorder,
		fwd:      fwd,
		cache:    NewCache(cfg.Cache, time.Now),
		inflight: make(chan struct{}, cfg.MaxInFlight),
		now:      time.Now,
	}
	if cfg.RateLimit > 0 {
		s.limiter = newRateLimiter(cfg.RateLimit, time.Now)
	}
	s.visits, _ = recorder.(store.VisitRecorder) // the incident writer keeps the context window
	metrics.watchCache(metrics.reg, s.cache)
	return s, nil
}

// ListenAndServe serves UDP and TCP on every listen address until ctx is
// done, then shuts them down. ready, if not nil, is called once all listen.
func (s *Server) ListenAndServe(ctx context.Context, ready func()) error {
	defer s.fwd.Close()
	var servers []*dns.Server
	closeAll := func() {
		for _, srv := range servers {
			if srv.PacketConn != nil {
				srv.PacketConn.Close()
			}
			if srv.Listener != nil {
				srv.Listener.Close()
			}
		}
	}
	for _, addr := range s.cfg.Listen {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("dns filter: listen udp %s: %w", addr, err)
		}
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: s, UDPSize: dns.MaxMsgSize})
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("dns filter: listen tcp %s: %w", addr, err)
		}
		servers = append(servers, &dns.Server{Listener: ln, Handler: s})
	}
	s.mu.Lock()
	s.servers = servers
	s.mu.Unlock()
	errc := make(chan error, len(servers))
	var started sync.WaitGroup
	started.Add(len(servers))
	for _, srv := range servers {
		srv.NotifyStartedFunc = started.Done
		go func() { errc <- srv.ActivateAndServe() }()
	}
	go func() {
		started.Wait()
		if ready != nil {
			ready()
		}
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.ShutdownContext(shutCtx)
	}
	if err != nil {
		return fmt.Errorf("dns filter: %w", err)
	}
	return nil
}

// ServeDNS handles one query, in one straight line: admit, identify the
// client, decide, answer.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		s.metrics.query("", ResultDropped) // overloaded: shed load rather than queue
		return
	}
	s.metrics.inflight.Inc()
	defer s.metrics.inflight.Dec()
	start := s.now()

	if len(r.Question) != 1 || r.Opcode != dns.OpcodeQuery {
		s.metrics.query("", ResultDropped)
		s.reply(w, r, fail(r, dns.RcodeFormatError, 0, ""))
		return
	}
	addr := clientAddr(w.RemoteAddr())
	if s.limiter != nil && !s.limiter.allow(addr) {
		s.metrics.query("", ResultDropped) // one device must not starve the rest
		return
	}
	snap := s.filter.Current()
	group, ok := snap.GroupFor(addr)
	if !ok {
		// Never an open resolver: addresses in no mapped range are refused.
		s.metrics.query("", ResultRefused)
		s.reply(w, r, fail(r, dns.RcodeRefused, dns.ExtendedErrorCodeProhibited, ""))
		return
	}
	var who identity.Who
	if s.cfg.Identity != nil {
		who = s.cfg.Identity.Lookup(addr, start)
		if who.Group != "" && snap.HasGroup(who.Group) {
			group = who.Group // the user's group, else the named device's, else the range's
		}
	}
	q := r.Question[0]
	if q.Qclass != dns.ClassINET {
		// CHAOS and friends would reveal the upstreams' versions: not ours to give.
		s.metrics.query(group, ResultRefused)
		s.reply(w, r, fail(r, dns.RcodeRefused, dns.ExtendedErrorCodeNotSupported, ""))
		return
	}
	if q.Name != "." {
		host, err := categories.NormalizeHost(q.Name)
		if err != nil {
			s.metrics.query(group, ResultDropped)
			s.reply(w, r, fail(r, dns.RcodeFormatError, 0, ""))
			return
		}
		if m, ok := s.canary(r, host); ok {
			s.metrics.query(group, ResultBlocked)
			s.reply(w, r, m)
			return
		}
		v := snap.DecideFor(s.cfg.Restrictions, addr, group, host, "", start)
		s.metrics.decision.Observe(s.now().Sub(start).Seconds())
		if v.Action == categories.Block {
			s.block(w, r, addr, who, group, host, v)
			return
		}
		safe, youtube := snap.SearchSettings(group)
		if target, ok := categories.SafeSearchName(host, safe, youtube); ok {
			resp := s.rewrite(r, target)
			s.metrics.query(group, resultOf(resp))
			s.reply(w, r, resp)
			return
		}
	}
	if q.Qtype == dns.TypeANY {
		s.metrics.query(group, ResultAllowed)
		s.reply(w, r, minimalANY(r))
		return
	}
	resp := s.resolve(r)
	if resp.Rcode == dns.RcodeServerFailure {
		s.metrics.query(group, ResultServFail)
		s.reply(w, r, resp)
		return
	}
	// CNAME cloaking: an allowed name whose answer leads to a blocked one.
	if v, blocked := s.checkAnswer(snap, group, resp, start); blocked {
		host, _ := categories.NormalizeHost(q.Name)
		s.block(w, r, addr, who, group, host, v)
		return
	}
	s.metrics.query(group, ResultAllowed)
	s.reply(w, r, resp)
	if s.visits != nil && q.Name != "." && snap.KeepsContext(group) {
		// Context for the DSL: the sites the device reached, not the
		// adverts and trackers its pages pulled in.
		if host, err := categories.NormalizeHost(q.Name); err == nil && !snap.IsNoise(host) {
			s.visits.Visited(addr, host, start)
		}
	}
}

// block answers a blocked query and hands the attempt to the recorder,
// which never makes the client wait.
func (s *Server) block(w dns.ResponseWriter, r *dns.Msg, addr netip.Addr, who identity.Who, group, host string, v categories.Verdict) {
	s.metrics.query(group, ResultBlocked)
	s.metrics.blocked(v)
	s.reply(w, r, s.blocked(r, group, v))
	a := store.Attempt{Time: s.now(), Channel: store.ChannelDNS, Client: addr, Group: group, Host: host,
		Rule: v.Rule.String(), Blocked: true, User: who.User, Device: who.Device, MAC: who.MAC, Identified: who.Sources()}
	if v.Category != nil {
		a.Category, a.Severity = v.Category.Slug, v.Category.Severity.String()
	}
	s.recorder.Record(a)
	s.metrics.recorded.Inc()
}

// canary answers the names browsers and devices use to ask the network
// whether they may bypass its resolver: the answer is always no.
func (s *Server) canary(r *dns.Msg, host string) (*dns.Msg, bool) {
	switch {
	case host == canaryFirefoxDoH || (s.cfg.BlockPrivateRelay && privateRelayCanaries[host]):
		m := fail(r, dns.RcodeNameError, dns.ExtendedErrorCodeFiltered, "hedgerow: use this network's resolver")
		return m, true
	case host == canaryDDR || strings.HasSuffix(host, "."+canaryDDR):
		return fail(r, dns.RcodeSuccess, dns.ExtendedErrorCodeFiltered, "hedgerow: no designated resolvers"), true
	}
	return nil, false
}

// rewrite answers a search engine or YouTube name with the provider's
// safe-search name (a CNAME), chased through the upstream for A and AAAA so
// no address is hard-coded; other types get the CNAME alone, so HTTPS
// records cannot hint at the unrestricted service.
func (s *Server) rewrite(r *dns.Msg, target string) *dns.Msg {
	q := r.Question[0]
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	m.Answer = []dns.RR{&dns.CNAME{
		Hdr:    dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 300},
		Target: target,
	}}
	if q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA {
		chase := r.Copy()
		chase.Question[0].Name = target
		resp := s.resolve(chase)
		if resp.Rcode != dns.RcodeSuccess {
			return fail(r, dns.RcodeServerFailure, dns.ExtendedErrorCodeNoReachableAuthority, "safe-search name did not resolve")
		}
		m.Answer = append(m.Answer, resp.Answer...)
	}
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(1232, o.Do())
	}
	return m
}

// resultOf classifies a forwarded reply for the metrics.
func resultOf(m *dns.Msg) Result {
	if m.Rcode == dns.RcodeServerFailure {
		return ResultServFail
	}
	return ResultAllowed
}

// resolve answers an allowed query from the cache or the upstreams; after
// the client-facing timeout it serves a stale answer (RFC 8767) or SERVFAIL
// with an Extended DNS Error, and it remembers failures briefly (RFC 9520).
func (s *Server) resolve(r *dns.Msg) *dns.Msg {
	key, cacheable := KeyOf(r)
	if cacheable {
		if m, fresh, failed, ok := s.cache.Get(key, r); ok && fresh {
			return m
		} else if failed {
			if ok {
				return m // stale beats a known failure
			}
			return fail(r, dns.RcodeServerFailure, dns.ExtendedErrorCodeCachedError, "upstream resolvers failed recently")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	q := r.Copy()
	if o := q.IsEdns0(); o != nil {
		o.Option = nil // the client's options are not the upstream's business
	}
	resp, err := s.fwd.Exchange(ctx, q)
	if err == nil && resp.Rcode != dns.RcodeServerFailure {
		if cacheable {
			s.cache.Put(key, resp)
		}
		resp.Id = r.Id
		return scrub(r, resp)
	}
	if cacheable {
		s.cache.PutFailure(key)
		if m, _, _, ok := s.cache.Get(key, r); ok {
			return m // stale (RFC 8767)
		}
	}
	s.log.Debug("upstreams failed", "name", r.Question[0].Name, "err", err)
	return fail(r, dns.RcodeServerFailure, dns.ExtendedErrorCodeNoReachableAuthority, "upstream resolvers did not answer")
}

// scrub fits an upstream reply to this client: OPT only if the client sent
// one (RFC 6891), with our own buffer size.
func scrub(r, resp *dns.Msg) *dns.Msg {
	extra := resp.Extra[:0]
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	resp.Extra = extra
	if o := r.IsEdns0(); o != nil {
		resp.SetEdns0(1232, o.Do())
	}
	return resp
}

// checkAnswer decides the owner names, CNAME targets and addresses in an
// answer, so a listed site cannot hide behind an allowed alias or a listed
// address behind an allowed name.
func (s *Server) checkAnswer(snap *categories.Snapshot, group string, resp *dns.Msg, now time.Time) (categories.Verdict, bool) {
	for _, rr := range resp.Answer {
		names := [2]string{rr.Header().Name, ""}
		switch rr := rr.(type) {
		case *dns.CNAME:
			names[1] = rr.Target
		case *dns.A:
			if ip, ok := netip.AddrFromSlice(rr.A); ok {
				names[1] = ip.Unmap().String()
			}
		case *dns.AAAA:
			if ip, ok := netip.AddrFromSlice(rr.AAAA); ok {
				names[1] = ip.String()
			}
		}
		for i, n := range names {
			if n == "" || n == "." {
				continue
			}
			host := n
			if i == 0 || rr.Header().Rrtype == dns.TypeCNAME {
				var err error
				if host, err = categories.NormalizeHost(n); err != nil {
					continue
				}
			}
			if v := snap.Decide(group, host, "", now); v.Action == categories.Block {
				return v, true
			}
		}
	}
	return categories.Verdict{}, false
}

// blocked answers a blocked name locally and at once, whatever the query
// type and whether or not any upstream is up, as the group's block answer
// says, with the Extended DNS Error "Blocked" naming the category when the
// client speaks EDNS.
func (s *Server) blocked(r *dns.Msg, group string, v categories.Verdict) *dns.Msg {
	q := r.Question[0]
	mode := s.cfg.BlockAnswer
	if m, ok := s.cfg.GroupBlockAnswer[group]; ok {
		mode = m
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: s.cfg.BlockTTL}
	var v4, v6 netip.Addr
	switch mode {
	case BlockNull:
		v4, v6 = netip.IPv4Unspecified(), netip.IPv6Unspecified()
	case BlockBlockPage:
		v4, v6 = s.cfg.BlockPageIPv4, s.cfg.BlockPageIPv6
	}
	switch {
	case mode == BlockNXDomain:
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA && v4.IsValid():
		hdr.Rrtype = dns.TypeA
		m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: v4.AsSlice()}}
	case q.Qtype == dns.TypeAAAA && v6.IsValid():
		hdr.Rrtype = dns.TypeAAAA
		m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: v6.AsSlice()}}
	}
	if len(m.Answer) == 0 {
		// NXDOMAIN, or NODATA for the other types: an SOA for negative caching (RFC 2308).
		m.Ns = []dns.RR{&dns.SOA{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.cfg.BlockTTL},
			Ns:  "blocked.hedgerow.invalid.", Mbox: "filter.hedgerow.invalid.",
			Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: s.cfg.BlockTTL,
		}}
	}
	text := "blocked by hedgerow"
	if v.Category != nil {
		text = v.Category.Slug
	}
	addEDE(r, m, dns.ExtendedErrorCodeBlocked, text)
	return m
}

// minimalANY answers ANY with a synthesized HINFO, as RFC 8482 allows,
// rather than a large reply that amplifies attacks.
func minimalANY(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	m.Answer = []dns.RR{&dns.HINFO{
		Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: 3600},
		Cpu: "RFC8482", Os: "",
	}}
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(1232, o.Do())
	}
	return m
}

// reply writes m, truncated to what the client can take.
func (s *Server) reply(w dns.ResponseWriter, r, m *dns.Msg) {
	size := dns.MinMsgSize
	if o := r.IsEdns0(); o != nil {
		size = max(int(o.UDPSize()), dns.MinMsgSize)
	}
	if _, isTCP := w.RemoteAddr().(*net.TCPAddr); isTCP {
		size = dns.MaxMsgSize
	}
	m.Truncate(size)
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("write reply", "err", err)
	}
}

// fail builds an error reply with an optional Extended DNS Error.
func fail(r *dns.Msg, rcode int, ede uint16, text string) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	m.RecursionAvailable = true
	if ede != 0 {
		addEDE(r, m, ede, text)
	}
	return m
}

// addEDE attaches an Extended DNS Error (RFC 8914) when the query had an
// OPT record; a reply must not carry OPT to a client that sent none.
func addEDE(r, m *dns.Msg, code uint16, text string) {
	o := r.IsEdns0()
	if o == nil {
		return
	}
	m.SetEdns0(1232, o.Do())
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: code, ExtraText: text})
}

// clientAddr extracts the source address of a query.
func clientAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// ParseUpstreams reads a comma-separated upstream list.
func ParseUpstreams(list string) ([]Upstream, error) {
	var out []Upstream
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		u, err := ParseUpstream(s)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// ProbeUpstreams asks each upstream whether it answers now (for /readyz).
func (s *Server) ProbeUpstreams(ctx context.Context) []UpstreamHealth { return s.fwd.Probe(ctx) }
