package main

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"hedgerow/categories"
	"hedgerow/proxy"
)

// dnsReply builds an answer as the filter or an upstream would send it.
func dnsReply(rcode int, ede *dns.EDNS0_EDE, answers ...dns.RR) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion("www.example.org.", dns.TypeA)
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	m.Answer = answers
	if ede != nil {
		m.SetEdns0(1232, false)
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, ede)
	}
	return m
}

func TestClassifyDNS(t *testing.T) {
	tax := categories.Builtin()
	cname := func(target string) dns.RR {
		return &dns.CNAME{Hdr: dns.RR_Header{Name: "www.example.org.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: target}
	}
	a := &dns.A{Hdr: dns.RR_Header{Name: "www.example.org.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(192, 0, 2, 1)}
	tests := []struct {
		name                     string
		msg                      *dns.Msg
		action, category, answer string
	}{
		{"refused", dnsReply(dns.RcodeRefused, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeProhibited}), actRefused, "", ""},
		{"blocked with category", dnsReply(dns.RcodeNameError, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: "adult"}), actBlocked, "adult", ""},
		{"blocked by a rule", dnsReply(dns.RcodeNameError, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: "blocked by hedgerow"}), actBlocked, "", ""},
		{"blocked with 0.0.0.0", dnsReply(dns.RcodeSuccess, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: "games"}, a), actBlocked, "games", ""},
		{"safe-search rewrite", dnsReply(dns.RcodeSuccess, nil, cname("forcesafesearch.google.com."), a), actRewritten, "", "forcesafesearch.google.com"},
		{"an ordinary CNAME", dnsReply(dns.RcodeSuccess, nil, cname("youtube-ui.l.google.com."), a), actAnswered, "", ""},
		{"upstream NXDOMAIN", dnsReply(dns.RcodeNameError, nil), actNXDomain, "", ""},
		{"canary NXDOMAIN", dnsReply(dns.RcodeNameError, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeFiltered}), actNXDomain, "", ""},
		{"upstream SERVFAIL", dnsReply(dns.RcodeServerFailure, nil), actServFail, "", ""},
		{"answered", dnsReply(dns.RcodeSuccess, nil, a), actAnswered, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := classifyDNS(tt.msg, tax, safeSearchTargets())
			if o.Action != tt.action || o.Category != tt.category || o.Answer != tt.answer || o.Detail == "" {
				t.Errorf("got %+v; want %s %q %q", o, tt.action, tt.category, tt.answer)
			}
		})
	}
}

func TestClassifyHTTP(t *testing.T) {
	tax := categories.Builtin()
	page := `<form method="post" action="` + proxy.ReportPath + `" class="concern"></form>` +
		`<dl><dt>Category</dt><dd>Pornography and adult content (high)</dd><dt>Group</dt><dd>ks2</dd></dl>`
	tests := []struct {
		name           string
		status         int
		body           string
		action, cat, g string
	}{
		{"block page", 403, page, actBlocked, "adult", "ks2"},
		{"block page for a site rule", 403, strings.Replace(page, "Pornography and adult content (high)", "none (a site rule)", 1), actBlocked, "", "ks2"},
		{"blocked answer", 403, "hedgerow: blocked. blocked: x is listed as Gambling\n", actBlocked, "", ""},
		{"refused", 403, "hedgerow: this device is not allowed to use this proxy.\n", actRefused, "", ""},
		{"another 403 is the site's own", 403, "<h1>Forbidden</h1>", actPassed, "", ""},
		{"login", 407, "hedgerow: please log in to use the internet.\n", actLogin, "", ""},
		{"unreachable site", 502, "hedgerow: there is no website called x.example.\n", actPassed, "", ""},
		{"a page", 200, "<html>hello</html>", actPassed, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := classifyHTTP(tt.status, []byte(tt.body), tax)
			if o.Action != tt.action || o.Category != tt.cat || o.Group != tt.g || o.Status != tt.status {
				t.Errorf("got %+v; want %s %q %q", o, tt.action, tt.cat, tt.g)
			}
		})
	}
}

func FuzzClassifyHTTP(f *testing.F) {
	tax := categories.Builtin()
	f.Add(403, []byte(`action="`+proxy.ReportPath+`"<dt>Group</dt><dd>ks2</dd><dt>Category</dt><dd>Gambling (high)`))
	f.Add(502, []byte("hedgerow: the website could not be reached.\n"))
	f.Add(403, []byte("<dt>Group</dt><dd>"))
	known := []string{actBlocked, actRefused, actLogin, actPassed}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		o := classifyHTTP(status, body, tax)
		if !slices.Contains(known, o.Action) || o.Detail == "" {
			t.Fatalf("status %d: %+v", status, o)
		}
		if o.Category != "" {
			if _, ok := tax.Lookup(o.Category); !ok {
				t.Fatalf("category %q is not a slug", o.Category)
			}
		}
		if o.Group != "" && !bytes.Contains(body, []byte(o.Group)) {
			t.Fatalf("group %q is not in the body", o.Group)
		}
	})
}

func TestAgrees(t *testing.T) {
	tests := []struct {
		name     string
		expected SelftestExpected
		observed SelftestObserved
		want     bool
	}{
		{"blocked, same category", SelftestExpected{Action: actBlocked, Category: "adult"}, SelftestObserved{Action: actBlocked, Category: "adult"}, true},
		{"blocked, another category", SelftestExpected{Action: actBlocked, Category: "adult"}, SelftestObserved{Action: actBlocked, Category: "games"}, false},
		{"blocked, category not said", SelftestExpected{Action: actBlocked, Category: "adult"}, SelftestObserved{Action: actBlocked}, true},
		{"blocked but answered", SelftestExpected{Action: actBlocked}, SelftestObserved{Action: actNXDomain}, false},
		{"allowed, NXDOMAIN", SelftestExpected{Action: actAllowed}, SelftestObserved{Action: actNXDomain}, true},
		{"allowed, SERVFAIL", SelftestExpected{Action: actAllowed}, SelftestObserved{Action: actServFail}, true},
		{"allowed, 502", SelftestExpected{Action: actAllowed}, SelftestObserved{Action: actPassed, Status: 502}, true},
		{"allowed but blocked", SelftestExpected{Action: actAllowed}, SelftestObserved{Action: actBlocked}, false},
		{"allowed but rewritten", SelftestExpected{Action: actAllowed}, SelftestObserved{Action: actRewritten}, false},
		{"allowed but no answer", SelftestExpected{Action: actAllowed}, SelftestObserved{Action: actError}, false},
		{"rewritten", SelftestExpected{Action: actRewritten, Answer: "strict.bing.com"}, SelftestObserved{Action: actRewritten, Answer: "strict.bing.com"}, true},
		{"rewritten elsewhere", SelftestExpected{Action: actRewritten, Answer: "restrict.youtube.com"}, SelftestObserved{Action: actRewritten, Answer: "restrictmoderate.youtube.com"}, false},
		{"canary", SelftestExpected{Action: actNXDomain}, SelftestObserved{Action: actNXDomain, Rcode: "NXDOMAIN"}, true},
		{"canary answered", SelftestExpected{Action: actNXDomain}, SelftestObserved{Action: actAnswered, Rcode: "NOERROR"}, false},
		{"refused", SelftestExpected{Action: actRefused}, SelftestObserved{Action: actRefused}, true},
		{"open resolver", SelftestExpected{Action: actRefused}, SelftestObserved{Action: actAnswered}, false},
		{"block page for another group", SelftestExpected{Action: actBlocked}, SelftestObserved{Action: actBlocked, Group: "staff"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := agrees(tt.expected, tt.observed, "ks2"); got != tt.want {
				t.Errorf("agrees = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDialTarget(t *testing.T) {
	ap, ip := netip.MustParseAddrPort, netip.MustParseAddr
	tests := []struct {
		listen, src string
		want        string
		ok          bool
	}{
		{"127.0.0.1:5353", "127.0.1.1", "127.0.0.1:5353", true},
		{"0.0.0.0:53", "10.1.2.3", "10.1.2.3:53", true},
		{"[::]:53", "127.0.0.1", "127.0.0.1:53", true},
		{"0.0.0.0:53", "::1", "", false},
		{"127.0.0.1:5353", "::1", "", false},
		{"[2001:db8::53]:53", "2001:db8::7", "[2001:db8::53]:53", true},
	}
	for _, tt := range tests {
		got, ok := dialTarget(ap(tt.listen), ip(tt.src))
		if ok != tt.ok || (ok && got.String() != tt.want) {
			t.Errorf("dialTarget(%s, %s) = %s, %v; want %s, %v", tt.listen, tt.src, got, ok, tt.want, tt.ok)
		}
	}
}

// TestFindSource: a group's source is an address the mapping really sends
// to it (the longest prefix wins), on this host.
func TestFindSource(t *testing.T) {
	tax := categories.Builtin()
	pol := categories.DefaultPolicy(tax)
	pol.Clients = []categories.ClientRule{
		{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Group: "ks2"},
		{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Group: "staff"},
		{Prefix: netip.MustParsePrefix("127.0.0.2/31"), Group: "ks3-ks4"},
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Group: "sixth-form"},
	}
	idx, err := categories.NewIndexBuilder(0).Build()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := categories.NewSnapshot(tax, idx, pol)
	if err != nil {
		t.Fatal(err)
	}
	st := &selftester{snap: snap, dns: netip.MustParseAddrPort("127.0.0.1:5353"),
		local: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.10")}}
	for _, tt := range []struct {
		group, want string
	}{
		{"ks2", "127.0.0.4"}, // .1 is staff's, .2 and .3 ks3-ks4's
		{"staff", "127.0.0.1"},
		{"ks3-ks4", "127.0.0.2"},
		{"sixth-form", ""}, // no address of this host in its range
		{"early-years-ks1", ""},
	} {
		got, ok := st.findSource(tt.group)
		if (tt.want == "") == ok || (ok && got.String() != tt.want) {
			t.Errorf("findSource(%s) = %s, %v; want %q", tt.group, got, ok, tt.want)
		}
	}
	if got, ok := st.unmappedSource(); ok {
		t.Errorf("unmappedSource = %s; every loopback address is mapped", got)
	}
	if msg := st.notProbed("sixth-form", []string{"198.51.100.0/24"}); !strings.Contains(msg, "198.51.100.0/24") ||
		!strings.Contains(msg, "--dns FILTER:5353") {
		t.Errorf("notProbed: %s", msg)
	}
}

// TestRenderSelftestHTML: the report escapes what staff typed and carries
// no script.
func TestRenderSelftestHTML(t *testing.T) {
	rep := &SelftestReport{Started: time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC), RanBy: "cli:<it>", Host: "filter&1",
		HedgerowVersion: "v1.2.3", Notes: selftestNotes,
		Groups: []SelftestGroup{{Group: categories.Group{Name: "ks2", Description: `<script>alert(1)</script>`}, Source: "127.0.0.1"}},
		Probes: []SelftestProbe{{Group: "ks2", Kind: kindCategory, Channel: "dns", Target: `x"><img src=x>.example`,
			Expected: SelftestExpected{Action: actBlocked}, Observed: SelftestObserved{Action: actNXDomain, Detail: "NXDOMAIN"}}}}
	rep.summarise()
	var b bytes.Buffer
	if err := renderSelftestHTML(&b, rep, time.UTC); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"cli:&lt;it&gt;", "filter&amp;1", "v1.2.3", "&lt;script&gt;alert(1)&lt;/script&gt;",
		"x&#34;&gt;&lt;img src=x&gt;.example", "1 of 1 probes DISAGREE", "Wed 4 Mar 2026, 09:00:00 UTC"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "<img") {
		t.Error("report has unescaped markup")
	}
}
