// Package dnsfilter is hedgerow's DNS filter: a miekg/dns server that
// identifies each client by its source address, decides the query name for
// the client's group, answers blocked names itself and forwards the rest to
// the upstream resolvers. Every miekg/dns type stays inside this package.
package dnsfilter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"hedgerow/categories"
)

// Config is the DNS filter's configuration.
type Config struct {
	Addr        string        // listen address for UDP and TCP, e.g. 127.0.0.1:5353
	Upstreams   []string      // resolvers for allowed names, host:port, tried in order
	Timeout     time.Duration // how long a client waits for upstreams before SERVFAIL
	MaxInFlight int           // queries handled at once; more are answered SERVFAIL
	BlockTTL    uint32        // TTL of the SOA in blocked answers (negative caching)
}

// DefaultConfig returns the defaults: an unprivileged port on loopback.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:5353", Timeout: 1800 * time.Millisecond, MaxInFlight: 1024, BlockTTL: 60}
}

// Counters are the filter's running totals; later issues export them as
// Prometheus metrics.
type Counters struct {
	Allowed, Blocked, Refused, ServFail, Overload, Malformed atomic.Uint64
}

// Server answers DNS for pupil devices.
type Server struct {
	cfg      Config
	filter   *categories.Filter
	log      *slog.Logger
	udp, tcp *dns.Client
	inflight chan struct{}
	now      func() time.Time
	Counters Counters

	mu      sync.Mutex
	servers []*dns.Server
}

// New returns a server deciding with filter's current snapshot.
func New(cfg Config, filter *categories.Filter, log *slog.Logger) (*Server, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("dns filter: no upstream resolvers configured")
	}
	for _, u := range cfg.Upstreams {
		if _, err := netip.ParseAddrPort(u); err != nil {
			return nil, fmt.Errorf("dns filter: upstream %q: want IP:port: %v", u, err)
		}
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultConfig().MaxInFlight
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultConfig().Timeout
	}
	return &Server{
		cfg:      cfg,
		filter:   filter,
		log:      log,
		udp:      &dns.Client{Net: "udp", UDPSize: 1232, Timeout: cfg.Timeout},
		tcp:      &dns.Client{Net: "tcp", Timeout: cfg.Timeout},
		inflight: make(chan struct{}, cfg.MaxInFlight),
		now:      time.Now,
	}, nil
}

// ListenAndServe serves UDP and TCP on cfg.Addr until ctx is done, then
// shuts both down. ready, if not nil, is called once both listen.
func (s *Server) ListenAndServe(ctx context.Context, ready func()) error {
	pc, err := net.ListenPacket("udp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dns filter: listen udp %s: %w", s.cfg.Addr, err)
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("dns filter: listen tcp %s: %w", s.cfg.Addr, err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: s, UDPSize: dns.MaxMsgSize}
	tcp := &dns.Server{Listener: ln, Handler: s}
	s.mu.Lock()
	s.servers = []*dns.Server{udp, tcp}
	s.mu.Unlock()
	errc := make(chan error, 2)
	var started sync.WaitGroup
	started.Add(2)
	for _, srv := range s.servers {
		srv.NotifyStartedFunc = started.Done
		go func() { errc <- srv.ActivateAndServe() }()
	}
	go func() {
		started.Wait()
		if ready != nil {
			ready()
		}
	}()
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range s.servers {
		_ = srv.ShutdownContext(shutCtx)
	}
	if err != nil {
		return fmt.Errorf("dns filter: %w", err)
	}
	return nil
}

// LocalAddr returns the UDP address the server listens on (for tests that
// listen on port 0).
func (s *Server) LocalAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.servers) == 0 || s.servers[0].PacketConn == nil {
		return nil
	}
	return s.servers[0].PacketConn.LocalAddr()
}

// ServeDNS handles one query: client, verdict, answer.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		s.Counters.Overload.Add(1)
		s.reply(w, r, fail(r, dns.RcodeServerFailure, dns.ExtendedErrorCodeOther, "overloaded"))
		return
	}
	if len(r.Question) != 1 {
		s.Counters.Malformed.Add(1)
		s.reply(w, r, fail(r, dns.RcodeFormatError, 0, ""))
		return
	}
	snap := s.filter.Current()
	group, ok := snap.GroupFor(clientAddr(w.RemoteAddr()))
	if !ok {
		// Never an open resolver: addresses in no mapped range are refused.
		s.Counters.Refused.Add(1)
		s.reply(w, r, fail(r, dns.RcodeRefused, dns.ExtendedErrorCodeProhibited, ""))
		return
	}
	q := r.Question[0]
	if q.Name != "." {
		host, err := categories.NormalizeHost(q.Name)
		if err != nil {
			s.Counters.Malformed.Add(1)
			s.reply(w, r, fail(r, dns.RcodeFormatError, 0, ""))
			return
		}
		v := snap.Decide(group, host, "", s.now())
		if v.Action == categories.Block {
			s.Counters.Blocked.Add(1)
			s.reply(w, r, s.blocked(r, v))
			return
		}
	}
	s.Counters.Allowed.Add(1)
	s.reply(w, r, s.forward(r))
}

// blocked answers a blocked name locally and at once, whatever the query
// type: NXDOMAIN with an SOA for negative caching (RFC 2308), and the
// Extended DNS Error "Blocked" with the category, when the client speaks EDNS.
func (s *Server) blocked(r *dns.Msg, v categories.Verdict) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeNameError)
	m.RecursionAvailable = true
	m.Ns = []dns.RR{&dns.SOA{
		Hdr:     dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.cfg.BlockTTL},
		Ns:      "blocked.hedgerow.invalid.",
		Mbox:    "filter.hedgerow.invalid.",
		Serial:  1,
		Refresh: 3600, Retry: 600, Expire: 86400,
		Minttl: s.cfg.BlockTTL,
	}}
	text := "blocked by hedgerow"
	if v.Category != nil {
		text = v.Category.Slug
	}
	addEDE(r, m, dns.ExtendedErrorCodeBlocked, text)
	return m
}

// forward sends an allowed query to the upstreams in order, over UDP and
// again over TCP when the answer was truncated.
func (s *Server) forward(r *dns.Msg) *dns.Msg {
	q := r.Copy()
	q.Id = dns.Id()
	var lastErr error
	deadline := s.now().Add(s.cfg.Timeout)
	for _, up := range s.cfg.Upstreams {
		if s.now().After(deadline) {
			break
		}
		resp, _, err := s.udp.Exchange(q, up)
		if err == nil && resp.Truncated {
			resp, _, err = s.tcp.Exchange(q, up)
		}
		if err != nil {
			lastErr = err
			continue
		}
		resp.Id = r.Id
		return resp
	}
	s.Counters.ServFail.Add(1)
	s.log.Debug("upstreams failed", "name", r.Question[0].Name, "err", lastErr)
	return fail(r, dns.RcodeServerFailure, dns.ExtendedErrorCodeNoReachableAuthority, "upstream resolvers did not answer")
}

// reply writes m, truncated to what the client can take.
func (s *Server) reply(w dns.ResponseWriter, r, m *dns.Msg) {
	size := dns.MinMsgSize
	if o := r.IsEdns0(); o != nil {
		size = int(o.UDPSize())
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
