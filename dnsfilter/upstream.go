package dnsfilter

// The upstream forwarder: failover across resolvers, pooled connections,
// UDP with a TCP retry on truncation, TCP, DNS over TLS (RFC 7858), strict
// reply matching and coalescing of identical concurrent queries.
//
// Design (LIBRARIES.md §2.4): the connection handling follows CoreDNS
// plugin/pkg/proxy (per-protocol idle stacks, idle expiry, fresh ID per
// upstream query, mismatched replies skipped) and Blocky's connpool (idle
// cap, one retry on a stale pooled connection). dns.Client's Exchange is not
// used: it dials per call, gives up on the first unparsable datagram, does
// not compare the question and does not stop when a context is cancelled.

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Upstream is one resolver: "udp" (UDP, retried over TCP when truncated),
// "tcp", or "tls" (DNS over TLS, RFC 7858, port 853, with ServerName
// verified).
type Upstream struct {
	Addr       string // IP:port, e.g. 192.0.2.1:53 or [2001:db8::1]:853
	Proto      string // "udp" (the default when empty), "tcp" or "tls"
	ServerName string // tls only: the name the certificate must carry; empty = TLSConfig.ServerName, else the IP
}

// String is the upstream in the form ParseUpstream reads:
// "192.0.2.1:53", "tcp://192.0.2.1:53", "tls://192.0.2.1:853#dns.example".
// Observers and Stats name upstreams this way.
func (u Upstream) String() string {
	switch u.Proto {
	case "tcp":
		return "tcp://" + u.Addr
	case "tls":
		if u.ServerName == "" {
			return "tls://" + u.Addr
		}
		return "tls://" + u.Addr + "#" + u.ServerName
	}
	return u.Addr
}

const upstreamForms = `want IP, IP:port, [IPv6]:port, udp://IP[:port], tcp://IP[:port] or tls://IP[:port][#server-name] (ports default to 53, 853 for tls)`

// ParseUpstream reads "192.0.2.1", "192.0.2.1:5353", "[2001:db8::1]:53",
// "tls://192.0.2.1#dns.example" (port 853 default for tls), "tcp://192.0.2.1".
// Addresses must be IP literals: a forwarder cannot depend on DNS to find its
// own resolvers. A tls upstream without "#name" verifies the certificate
// against the IP address itself (an IP SAN). Errors name the input and the
// expected forms.
func ParseUpstream(s string) (Upstream, error) {
	bad := func(format string, args ...any) (Upstream, error) {
		return Upstream{}, fmt.Errorf("dnsfilter: upstream %q: %s; %s", s, fmt.Sprintf(format, args...), upstreamForms)
	}
	rest := strings.TrimSpace(s)
	if rest == "" {
		return bad("empty")
	}
	proto := "udp"
	if i := strings.Index(rest, "://"); i >= 0 {
		proto = strings.ToLower(rest[:i])
		rest = rest[i+3:]
		switch proto {
		case "udp", "tcp", "tls":
		default:
			return bad("unknown scheme %q", proto)
		}
	}
	var name string
	hasName := false
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		if proto != "tls" {
			return bad("a #server-name is only for tls://")
		}
		name, rest, hasName = rest[i+1:], rest[:i], true
	}
	port := uint16(53)
	if proto == "tls" {
		port = 853
	}
	ap, err := parseUpstreamAddr(rest, port)
	if err != nil {
		return bad("%v", err)
	}
	u := Upstream{Addr: ap.String(), Proto: proto}
	if proto == "tls" {
		if !hasName {
			name = ap.Addr().String()
		}
		n, err := normalizeServerName(name)
		if err != nil {
			return bad("%v", err)
		}
		u.ServerName = n
	}
	return u, nil
}

// parseUpstreamAddr reads IP, IP:port, [IPv6] or [IPv6]:port.
func parseUpstreamAddr(s string, defPort uint16) (netip.AddrPort, error) {
	var ap netip.AddrPort
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		a, err := netip.ParseAddr(s[1 : len(s)-1])
		if err != nil || !a.Is6() {
			return ap, fmt.Errorf("%s is not an IPv6 address", s)
		}
		ap = netip.AddrPortFrom(a, defPort)
	} else if a, err := netip.ParseAddr(s); err == nil {
		ap = netip.AddrPortFrom(a, defPort)
	} else if p, err := netip.ParseAddrPort(s); err == nil {
		ap = p
	} else {
		host := s
		if h, _, err := net.SplitHostPort(s); err == nil {
			host = h
		}
		if strings.ContainsFunc(host, func(r rune) bool { return r >= 'g' && r <= 'z' || r >= 'G' && r <= 'Z' || r == '-' }) {
			return ap, fmt.Errorf("%q is not an IP address (host names are not resolved)", host)
		}
		return ap, fmt.Errorf("bad address: %v", err)
	}
	a := ap.Addr()
	if a.Zone() != "" {
		return ap, errors.New("IPv6 zones are not supported")
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() {
		return ap, fmt.Errorf("%s is not a unicast address", a)
	}
	if ap.Port() == 0 {
		return ap, errors.New("port 0")
	}
	return netip.AddrPortFrom(a, ap.Port()), nil
}

// normalizeServerName checks a TLS server name (a host name or an IP) and
// returns it lowercase without a trailing dot.
func normalizeServerName(n string) (string, error) {
	if n == "" {
		return "", errors.New("empty server name after #")
	}
	if a, err := netip.ParseAddr(n); err == nil && a.Zone() == "" {
		return a.String(), nil
	}
	n = strings.ToLower(strings.TrimSuffix(n, "."))
	if len(n) == 0 || len(n) > 253 {
		return "", fmt.Errorf("server name %q: bad length", n)
	}
	for _, label := range strings.Split(n, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("server name %q: bad label %q", n, label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("server name %q: bad character %q", n, c)
			}
		}
	}
	return n, nil
}

// ForwarderConfig configures a Forwarder. Zero fields take the defaults.
type ForwarderConfig struct {
	Upstreams []Upstream
	Timeout   time.Duration // per exchange attempt (default 1.5s); the caller's ctx deadline also bounds it
	MaxIdle   int           // idle connections kept per upstream and protocol (default 8; < 0 disables pooling)
	IdleTTL   time.Duration // close idle connections after this (default 10s)
	UDPSize   uint16        // EDNS buffer size advertised upstream (default 1232)
	TLSConfig *tls.Config   // for tls upstreams (RootCAs etc.); nil = system roots
}

// UpstreamStats are one upstream's running totals.
type UpstreamStats struct {
	Upstream string // Upstream.String()
	Queries  uint64 // upstream tries (a TCP retry after truncation is part of its try)
	Errors   uint64 // tries that produced no usable reply (not counting tries abandoned by every caller)
}

// ErrForwarderClosed is returned by Exchange after Close.
var ErrForwarderClosed = errors.New("dnsfilter: forwarder closed")

// Forwarder sends queries to upstream resolvers. It is safe for concurrent use.
type Forwarder struct {
	cfg      ForwarderConfig
	ups      []*fwdUpstream
	observer atomic.Pointer[func(upstream string, d time.Duration, err error)]

	base     context.Context // cancelled by Close: aborts in-flight exchanges
	stop     context.CancelFunc
	janitor  sync.WaitGroup
	closeErr error
	once     sync.Once

	bufs sync.Pool // *[]byte read buffers of max(UDPSize, 4096) bytes

	mu      sync.Mutex
	closed  bool
	flights map[fwdFlightKey]*fwdFlight
}

type fwdUpstream struct {
	name            string
	addr            string
	proto           string
	udp, tcp, tls   *fwdPool // the pools this upstream's protocol uses; others nil
	queries, errors atomic.Uint64
}

// NewForwarder checks cfg, applies the defaults and starts the idle reaper.
func NewForwarder(cfg ForwarderConfig) (*Forwarder, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("dnsfilter: forwarder: no upstreams")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 1500 * time.Millisecond
	}
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = 8
	}
	if cfg.MaxIdle < 0 {
		cfg.MaxIdle = 0
	}
	if cfg.IdleTTL <= 0 {
		cfg.IdleTTL = 10 * time.Second
	}
	if cfg.UDPSize == 0 {
		cfg.UDPSize = 1232
	}
	if cfg.UDPSize < dns.MinMsgSize {
		cfg.UDPSize = dns.MinMsgSize
	}
	cfg.Upstreams = append([]Upstream(nil), cfg.Upstreams...)
	f := &Forwarder{cfg: cfg, flights: make(map[fwdFlightKey]*fwdFlight)}
	bufSize := max(int(cfg.UDPSize), dns.DefaultMsgSize)
	f.bufs.New = func() any { b := make([]byte, bufSize); return &b }
	for i, u := range cfg.Upstreams {
		if u.Proto == "" {
			u.Proto = "udp"
		}
		ap, err := netip.ParseAddrPort(u.Addr)
		if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
			return nil, fmt.Errorf("dnsfilter: forwarder: upstream %d: address %q: want IP:port", i, u.Addr)
		}
		fu := &fwdUpstream{addr: ap.String(), proto: u.Proto}
		switch u.Proto {
		case "udp":
			if u.ServerName != "" {
				return nil, fmt.Errorf("dnsfilter: forwarder: upstream %d (%s): ServerName is only for tls", i, u.Addr)
			}
			fu.udp = f.newPool(fu.addr, "udp", nil)
			fu.tcp = f.newPool(fu.addr, "tcp", nil)
		case "tcp":
			if u.ServerName != "" {
				return nil, fmt.Errorf("dnsfilter: forwarder: upstream %d (%s): ServerName is only for tls", i, u.Addr)
			}
			fu.tcp = f.newPool(fu.addr, "tcp", nil)
		case "tls":
			var tc *tls.Config
			if cfg.TLSConfig != nil {
				tc = cfg.TLSConfig.Clone()
			} else {
				tc = &tls.Config{}
			}
			switch {
			case u.ServerName != "":
				tc.ServerName = u.ServerName
			case tc.ServerName == "":
				tc.ServerName = ap.Addr().String() // verified against the certificate's IP SANs
			}
			u.ServerName = tc.ServerName
			if tc.MinVersion == 0 {
				tc.MinVersion = tls.VersionTLS12
			}
			if tc.ClientSessionCache == nil {
				tc.ClientSessionCache = tls.NewLRUClientSessionCache(8) // cheap reconnects
			}
			fu.tls = f.newPool(fu.addr, "tls", tc)
		default:
			return nil, fmt.Errorf("dnsfilter: forwarder: upstream %d (%s): protocol %q: want udp, tcp or tls", i, u.Addr, u.Proto)
		}
		u.Addr = fu.addr
		fu.name = u.String()
		f.cfg.Upstreams[i] = u
		f.ups = append(f.ups, fu)
	}
	f.base, f.stop = context.WithCancel(context.Background())
	f.janitor.Add(1)
	go f.reap()
	return f, nil
}

// SetObserver installs fn (nil removes it), called after every upstream try
// with Upstream.String(), the try's duration and its error (nil on success).
// It runs on the query path: keep it cheap and non-blocking.
func (f *Forwarder) SetObserver(fn func(upstream string, d time.Duration, err error)) {
	if fn == nil {
		f.observer.Store(nil)
		return
	}
	f.observer.Store(&fn)
}

// Stats returns each upstream's totals, in configuration order.
func (f *Forwarder) Stats() []UpstreamStats {
	out := make([]UpstreamStats, len(f.ups))
	for i, u := range f.ups {
		out[i] = UpstreamStats{Upstream: u.name, Queries: u.queries.Load(), Errors: u.errors.Load()}
	}
	return out
}

// Close aborts exchanges in flight, closes every idle connection and makes
// later Exchange calls fail with ErrForwarderClosed. Connections in use are
// closed when their exchange ends. It is safe to call more than once.
func (f *Forwarder) Close() error {
	f.once.Do(func() {
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		f.stop()
		f.janitor.Wait()
		var errs []error
		for _, u := range f.ups {
			for _, p := range []*fwdPool{u.udp, u.tcp, u.tls} {
				if p != nil {
					errs = append(errs, p.close())
				}
			}
		}
		f.closeErr = errors.Join(errs...)
	})
	return f.closeErr
}

// reap closes idle connections older than IdleTTL until Close.
func (f *Forwarder) reap() {
	defer f.janitor.Done()
	every := f.cfg.IdleTTL / 2
	if every < 10*time.Millisecond {
		every = 10 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.base.Done():
			return
		case now := <-t.C:
			for _, u := range f.ups {
				for _, p := range []*fwdPool{u.udp, u.tcp, u.tls} {
					if p != nil {
						p.expire(now)
					}
				}
			}
		}
	}
}

// ---- coalescing of identical queries ----

// fwdFlightKey identifies queries whose upstream query is the same: the
// upstream query is rebuilt from exactly these fields (see fwdUpstreamQuery).
type fwdFlightKey struct {
	name          string // lowercase
	qtype, qclass uint16
	opcode        int
	flags         uint8 // DO, CD, RD, AD
}

type fwdFlight struct {
	done    chan struct{}
	cancel  context.CancelFunc
	waiters int // guarded by Forwarder.mu; callers still waiting
	ended   bool
	// Set before done is closed:
	msg       *dns.Msg
	err       error
	remaining atomic.Int32 // receivers that have not yet taken their reply
}

func fwdFlightKeyOf(q *dns.Msg) fwdFlightKey {
	qq := q.Question[0]
	k := fwdFlightKey{name: strings.ToLower(qq.Name), qtype: qq.Qtype, qclass: qq.Qclass, opcode: q.Opcode}
	if o := q.IsEdns0(); o != nil && o.Do() {
		k.flags |= 1
	}
	if q.CheckingDisabled {
		k.flags |= 2
	}
	if q.RecursionDesired {
		k.flags |= 4
	}
	if q.AuthenticatedData {
		k.flags |= 8
	}
	return k
}

// Exchange sends q (not modified) to the upstreams in order with failover
// and returns the reply with q's ID and q's question. Concurrent queries with
// the same name (any case), type, class, DO, CD, RD, AD and opcode share one
// upstream exchange; each caller gets its own copy. The shared exchange ends
// when the last caller waiting for it gives up, or when every upstream has
// been tried. If q has no OPT record, the reply carries none either.
//
// The query sent upstream is rebuilt from q's question and flags with an
// OPT record advertising UDPSize (and q's DO bit); q's other EDNS options
// (client subnet, cookies, padding) and other records are not forwarded.
func (f *Forwarder) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	if q == nil || len(q.Question) != 1 {
		return nil, errors.New("dnsfilter: forwarder: query must have exactly one question")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := fwdFlightKeyOf(q)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, ErrForwarderClosed
	}
	fl := f.flights[key]
	if fl == nil {
		fctx, cancel := context.WithCancel(f.base)
		fl = &fwdFlight{done: make(chan struct{}), cancel: cancel}
		f.flights[key] = fl
		go f.fly(fctx, key, fl, fwdUpstreamQuery(q, f.cfg.UDPSize))
	}
	fl.waiters++
	f.mu.Unlock()

	select {
	case <-fl.done:
		return fl.take(q)
	case <-ctx.Done():
		f.mu.Lock()
		fl.waiters--
		if fl.waiters == 0 && !fl.ended {
			// Nobody wants it any more: stop it, and let a later caller
			// start afresh rather than join a cancelled flight.
			fl.cancel()
			if f.flights[key] == fl {
				delete(f.flights, key)
			}
		}
		f.mu.Unlock()
		return nil, ctx.Err()
	}
}

// fly runs one shared exchange and hands the result to its waiters.
func (f *Forwarder) fly(ctx context.Context, key fwdFlightKey, fl *fwdFlight, wq *dns.Msg) {
	msg, err := f.forward(ctx, wq)
	if err != nil && f.base.Err() != nil {
		err = ErrForwarderClosed
	}
	f.mu.Lock()
	if f.flights[key] == fl {
		delete(f.flights, key)
	}
	fl.ended = true
	fl.msg, fl.err = msg, err
	fl.remaining.Store(int32(fl.waiters))
	f.mu.Unlock()
	fl.cancel()
	close(fl.done)
}

// take gives a caller its own reply. The last receiver may take the shared
// message itself: every other receiver has finished copying it by then,
// because they count down only after copying.
func (fl *fwdFlight) take(q *dns.Msg) (*dns.Msg, error) {
	if fl.err != nil {
		return nil, fl.err
	}
	var m *dns.Msg
	if fl.remaining.CompareAndSwap(1, 0) {
		m = fl.msg
	} else {
		m = fl.msg.Copy()
		fl.remaining.Add(-1)
	}
	m.Id = q.Id
	m.Question = []dns.Question{q.Question[0]}
	if q.IsEdns0() == nil {
		extra := m.Extra[:0:0]
		for _, rr := range m.Extra {
			if _, isOPT := rr.(*dns.OPT); !isOPT {
				extra = append(extra, rr)
			}
		}
		m.Extra = extra
	}
	return m, nil
}

// fwdUpstreamQuery builds the query sent upstream: q's question, opcode, RD,
// CD and AD, and an OPT record with our buffer size and q's DO bit.
func fwdUpstreamQuery(q *dns.Msg, udpSize uint16) *dns.Msg {
	m := &dns.Msg{
		MsgHdr: dns.MsgHdr{
			Opcode:            q.Opcode,
			RecursionDesired:  q.RecursionDesired,
			CheckingDisabled:  q.CheckingDisabled,
			AuthenticatedData: q.AuthenticatedData,
		},
		Question: []dns.Question{q.Question[0]},
	}
	do := false
	if o := q.IsEdns0(); o != nil {
		do = o.Do()
	}
	m.SetEdns0(udpSize, do)
	return m
}

// ---- failover and attempts ----

// fwdTry is one query on the wire: the packed query with two bytes of room
// in front for the TCP length prefix.
type fwdTry struct {
	frame  []byte // 2-byte length + message
	opcode int
	q      dns.Question
}

func (t *fwdTry) msg() []byte { return t.frame[2:] }

// forward tries each upstream in order until one gives a usable reply.
func (f *Forwarder) forward(ctx context.Context, wq *dns.Msg) (*dns.Msg, error) {
	packed, err := wq.Pack()
	if err != nil {
		return nil, fmt.Errorf("dnsfilter: forwarder: pack query: %w", err)
	}
	frame := make([]byte, 2+len(packed))
	binary.BigEndian.PutUint16(frame, uint16(len(packed)))
	copy(frame[2:], packed)
	t := &fwdTry{frame: frame, opcode: wq.Opcode, q: wq.Question[0]}

	var errs []error
	var truncated *dns.Msg // a TC reply whose TCP retry failed: better than nothing
	for _, u := range f.ups {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		start := time.Now()
		m, tc, err := f.tryUpstream(ctx, u, t)
		u.queries.Add(1)
		if err != nil {
			if ctx.Err() == nil { // not counted: tries every caller gave up on
				u.errors.Add(1)
			}
			err = fmt.Errorf("upstream %s: %w", u.name, err)
			errs = append(errs, err)
		}
		if obs := f.observer.Load(); obs != nil {
			(*obs)(u.name, time.Since(start), err)
		}
		if err == nil {
			return m, nil
		}
		if tc != nil && truncated == nil {
			truncated = tc
		}
	}
	if truncated != nil && ctx.Err() == nil {
		return truncated, nil
	}
	return nil, fmt.Errorf("dnsfilter: all upstreams failed: %w", errors.Join(errs...))
}

// tryUpstream asks one upstream, over UDP with a TCP retry on truncation, or
// over its stream protocol. On a failed TCP retry it also returns the
// truncated UDP reply.
func (f *Forwarder) tryUpstream(ctx context.Context, u *fwdUpstream, t *fwdTry) (m, truncated *dns.Msg, err error) {
	switch u.proto {
	case "tcp":
		m, err = f.attempt(ctx, u.tcp, t)
		return m, nil, err
	case "tls":
		m, err = f.attempt(ctx, u.tls, t)
		return m, nil, err
	}
	m, err = f.attempt(ctx, u.udp, t)
	if err != nil || !m.Truncated {
		return m, nil, err
	}
	full, err := f.attempt(ctx, u.tcp, t)
	if err != nil {
		return nil, m, fmt.Errorf("tcp retry after truncated reply: %w", err)
	}
	return full, nil, nil
}

// attempt is one exchange over one protocol, bounded by Timeout and ctx. A
// pooled stream connection that fails other than by timing out was probably
// closed by the server while idle: the query is sent once more on a fresh one.
func (f *Forwarder) attempt(ctx context.Context, p *fwdPool, t *fwdTry) (*dns.Msg, error) {
	deadline := time.Now().Add(f.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c, pooled, err := p.get(ctx, deadline)
	if err != nil {
		return nil, err
	}
	m, err := f.roundTrip(ctx, p, c, deadline, t)
	var nq fwdErrNoQuestion
	if err != nil && pooled && p.proto != "udp" && !fwdIsTimeout(err) && !errors.As(err, &nq) && ctx.Err() == nil {
		if c, err = p.dial(ctx, deadline); err != nil {
			return nil, err
		}
		m, err = f.roundTrip(ctx, p, c, deadline, t)
	}
	return m, err
}

// roundTrip writes the query with a fresh ID on c and reads until a reply
// with that ID and the same question arrives, skipping anything else. c goes
// back to the pool on success and is closed on any error.
func (f *Forwarder) roundTrip(ctx context.Context, p *fwdPool, c *dns.Conn, deadline time.Time, t *fwdTry) (_ *dns.Msg, err error) {
	clean := true
	defer func() {
		if err != nil || !clean {
			c.Close()
		} else {
			p.put(c)
		}
	}()
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// Cancellation interrupts a blocked read at once.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() {
			clean = false // the deadline may be (re)set after we return: do not pool c
		}
	}()
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = ctx.Err()
		}
	}()

	id := dns.Id()
	binary.BigEndian.PutUint16(t.msg(), id)
	stream := p.proto != "udp"
	if stream {
		_, err = c.Conn.Write(t.frame)
	} else {
		_, err = c.Conn.Write(t.msg())
	}
	if err != nil {
		return nil, err
	}
	// Read buffers: a UDP reply larger than the buffer (more than we
	// advertised and more than 4096 bytes) is cut and then skipped as
	// unparsable; a larger TCP reply gets a buffer of its own. Unpack copies
	// what it keeps, so buffers are reused.
	bp := f.bufs.Get().(*[]byte)
	defer f.bufs.Put(bp)
	for {
		var b []byte
		if stream {
			if b, err = fwdReadFrame(c.Conn, *bp); err != nil {
				return nil, err
			}
		} else {
			n, err := c.Conn.Read(*bp)
			if err != nil {
				return nil, err
			}
			b = (*bp)[:n]
		}
		m, rerr := fwdMatchReply(b, id, t)
		if m != nil || rerr != nil {
			return m, rerr
		}
	}
}

// fwdErrNoQuestion reports an error reply without a question section (a FORMERR
// or NOTIMP from a server that did not parse the query): the next upstream
// is tried.
type fwdErrNoQuestion struct{ rcode int }

func (e fwdErrNoQuestion) Error() string {
	return "answered " + dns.RcodeToString[e.rcode] + " without a question"
}

// fwdMatchReply decodes b if it is the reply to the query t sent with id; nil
// and nil mean skip it.
func fwdMatchReply(b []byte, id uint16, t *fwdTry) (*dns.Msg, error) {
	if len(b) < 12 || binary.BigEndian.Uint16(b) != id {
		return nil, nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil || !m.Response || m.Opcode != t.opcode {
		return nil, nil
	}
	if len(m.Question) == 0 && m.Rcode != dns.RcodeSuccess {
		return nil, fwdErrNoQuestion{m.Rcode}
	}
	if len(m.Question) != 1 {
		return nil, nil
	}
	if qq := m.Question[0]; qq.Qtype != t.q.Qtype || qq.Qclass != t.q.Qclass || !strings.EqualFold(qq.Name, t.q.Name) {
		return nil, nil
	}
	return m, nil
}

// fwdReadFrame reads one length-prefixed message, into buf when it fits.
func fwdReadFrame(r io.Reader, buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(buf))
	if n > len(buf) {
		buf = make([]byte, n)
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func fwdIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ---- connection pools ----

// fwdPool keeps idle connections to one upstream over one protocol, as a
// stack: the most recently used connection is reused first, so the ones at
// the bottom age out and are closed by the reaper.
type fwdPool struct {
	addr  string
	proto string // "udp", "tcp" or "tls"
	tls   *tls.Config
	max   int
	ttl   time.Duration

	mu     sync.Mutex
	closed bool
	idle   []fwdIdle // oldest first
}

type fwdIdle struct {
	c     *dns.Conn
	since time.Time
}

func (f *Forwarder) newPool(addr, proto string, tc *tls.Config) *fwdPool {
	return &fwdPool{addr: addr, proto: proto, tls: tc, max: f.cfg.MaxIdle, ttl: f.cfg.IdleTTL}
}

// get returns an idle connection (pooled = true) or a new one.
func (p *fwdPool) get(ctx context.Context, deadline time.Time) (c *dns.Conn, pooled bool, err error) {
	now := time.Now()
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		top := p.idle[n-1]
		if now.Sub(top.since) < p.ttl {
			p.idle[n-1] = fwdIdle{}
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			return top.c, true, nil
		}
		// The newest is stale, so all are.
		stale := p.idle
		p.idle = nil
		p.mu.Unlock()
		for _, s := range stale {
			s.c.Close()
		}
	} else {
		p.mu.Unlock()
	}
	c, err = p.dial(ctx, deadline)
	return c, false, err
}

// dial opens a new connection.
func (p *fwdPool) dial(ctx context.Context, deadline time.Time) (*dns.Conn, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var nc net.Conn
	var err error
	switch p.proto {
	case "tls":
		d := tls.Dialer{Config: p.tls}
		nc, err = d.DialContext(ctx, "tcp", p.addr)
	default:
		var d net.Dialer
		nc, err = d.DialContext(ctx, p.proto, p.addr)
	}
	if err != nil {
		return nil, err
	}
	return &dns.Conn{Conn: nc}, nil
}

// put returns a healthy connection, or closes it when the pool is full or
// closed.
func (p *fwdPool) put(c *dns.Conn) {
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.max {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, fwdIdle{c: c, since: time.Now()})
	p.mu.Unlock()
}

// expire closes the connections idle for IdleTTL or longer.
func (p *fwdPool) expire(now time.Time) {
	p.mu.Lock()
	i := 0
	for i < len(p.idle) && now.Sub(p.idle[i].since) >= p.ttl {
		i++
	}
	if i == 0 {
		p.mu.Unlock()
		return
	}
	stale := make([]fwdIdle, i)
	copy(stale, p.idle[:i])
	p.idle = append(p.idle[:0], p.idle[i:]...)
	clear(p.idle[len(p.idle):cap(p.idle)])
	p.mu.Unlock()
	for _, s := range stale {
		s.c.Close()
	}
}

// close closes every idle connection; later puts close theirs.
func (p *fwdPool) close() error {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	var errs []error
	for _, s := range idle {
		if err := s.c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// idleCount is the number of idle connections (for tests).
func (p *fwdPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// UpstreamHealth is one upstream's answer to a health probe.
type UpstreamHealth struct {
	Upstream string        `json:"upstream"`
	OK       bool          `json:"ok"`
	RTT      time.Duration `json:"rtt_ns"`
	Error    string        `json:"error,omitempty"`
}

// Probe asks every upstream, one by one, for the root's NS records, so a
// health check can say which answer now. It does not count in Stats.
func (f *Forwarder) Probe(ctx context.Context) []UpstreamHealth {
	q := new(dns.Msg)
	q.SetQuestion(".", dns.TypeNS)
	q.RecursionDesired = true
	out := make([]UpstreamHealth, len(f.ups))
	packed, err := q.Pack()
	for i, u := range f.ups {
		out[i].Upstream = u.name
		if err != nil {
			out[i].Error = err.Error()
			continue
		}
		frame := make([]byte, 2+len(packed))
		binary.BigEndian.PutUint16(frame, uint16(len(packed)))
		copy(frame[2:], packed)
		start := time.Now()
		m, _, err := f.tryUpstream(ctx, u, &fwdTry{frame: frame, opcode: q.Opcode, q: q.Question[0]})
		out[i].RTT = time.Since(start)
		switch {
		case err != nil:
			out[i].Error = err.Error()
		case m.Rcode == dns.RcodeServerFailure || m.Rcode == dns.RcodeRefused:
			out[i].Error = "answered " + dns.RcodeToString[m.Rcode]
		default:
			out[i].OK = true
		}
	}
	return out
}
