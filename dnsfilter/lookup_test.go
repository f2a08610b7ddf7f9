package dnsfilter

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// lookupServer is a filter whose upstream answers a small fixed zone.
func lookupServer(t *testing.T) *Server {
	t.Helper()
	zone := map[string][]string{
		"plain.example.":              {"plain.example. 60 IN A 192.0.2.1", "plain.example. 60 IN AAAA 2001:db8::1"},
		"www.google.com.":             {"www.google.com. 60 IN A 192.0.2.20"},
		"forcesafesearch.google.com.": {"forcesafesearch.google.com. 60 IN A 192.0.2.10"},
		"cloak.example.":              {"cloak.example. 60 IN CNAME blocked.example.", "blocked.example. 60 IN A 192.0.2.30"},
	}
	return testServer(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		rrs, ok := zone[q.Name]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, s := range rrs {
			rr, _ := dns.NewRR(s)
			if rr.Header().Rrtype == q.Qtype || rr.Header().Rrtype == dns.TypeCNAME {
				m.Answer = append(m.Answer, rr)
			}
		}
		_ = w.WriteMsg(m)
	})
}

// TestLookupNetIP: the proxy's resolver path answers as the filter would
// answer the client's group.
func TestLookupNetIP(t *testing.T) {
	s := lookupServer(t)
	ctx := context.Background()
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range ss {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	for _, tc := range []struct {
		group, host string
		want        []netip.Addr
	}{
		{"ks2", "plain.example", addrs("192.0.2.1", "2001:db8::1")},
		{"ks2", "www.google.com", addrs("192.0.2.10")},   // safe search: the forcesafesearch address
		{"staff", "www.google.com", addrs("192.0.2.20")}, // no safe search for staff
	} {
		got, err := s.LookupNetIP(ctx, tc.group, tc.host)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("LookupNetIP(%s, %s) = %v, %v; want %v", tc.group, tc.host, got, err, tc.want)
		}
	}
	_, err := s.LookupNetIP(ctx, "ks2", "cloak.example")
	var be *BlockedError
	if !errors.As(err, &be) || be.Verdict.Category == nil || be.Verdict.Category.Slug != "adult" {
		t.Errorf("a CNAME to a blocked name: err %v, want a BlockedError for adult", err)
	}
	_, err = s.LookupNetIP(ctx, "ks2", "nx.example")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("a missing name: err %v, want a not-found DNSError", err)
	}
}
