package dnsfilter

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/miekg/dns"

	"hedgerow/categories"
)

// BlockedError is returned by LookupNetIP when the answer leads to a blocked
// name or address (CNAME cloaking, or a listed address behind an allowed name).
type BlockedError struct {
	Host    string
	Verdict categories.Verdict
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("resolve %s: %s", e.Host, e.Verdict.Reason())
}

// BlockVerdict returns the verdict that blocked the answer; callers outside
// this package test for it with an interface, so they need not import dnsfilter.
func (e *BlockedError) BlockVerdict() categories.Verdict { return e.Verdict }

// LookupNetIP resolves a canonical host name for a client of group exactly as
// the filter would answer that client's own query: the group's safe-search
// names replace the search engines' (so proxied devices keep safe search), the
// answer comes from the same cache and upstreams, and an answer that leads to
// a blocked name or address is refused with a *BlockedError. The caller has
// already decided the host itself. IPv4 addresses come first.
func (s *Server) LookupNetIP(ctx context.Context, group, host string) ([]netip.Addr, error) {
	snap := s.filter.Current()
	name := dns.Fqdn(host)
	safe, youtube := snap.SearchSettings(group)
	if target, ok := categories.SafeSearchName(host, safe, youtube); ok {
		name = target
	}
	var (
		wg   sync.WaitGroup
		aaaa *dns.Msg
	)
	wg.Go(func() { aaaa = s.resolve(question(name, dns.TypeAAAA)) })
	a := s.resolve(question(name, dns.TypeA))
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	var addrs []netip.Addr
	for _, m := range []*dns.Msg{a, aaaa} {
		if v, blocked := s.checkAnswer(snap, group, m, now); blocked {
			return nil, &BlockedError{Host: host, Verdict: v}
		}
		for _, rr := range m.Answer {
			var ip net.IP
			switch rr := rr.(type) {
			case *dns.A:
				ip = rr.A
			case *dns.AAAA:
				ip = rr.AAAA
			}
			if addr, ok := netip.AddrFromSlice(ip); ok {
				addrs = append(addrs, addr.Unmap())
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	err := &net.DNSError{Err: "no addresses", Name: host, IsNotFound: a.Rcode == dns.RcodeNameError || a.Rcode == dns.RcodeSuccess}
	if a.Rcode == dns.RcodeServerFailure {
		err.Err, err.IsTemporary = "upstream resolvers failed", true
	}
	return nil, err
}

// question builds a recursive query for name and type.
func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}
