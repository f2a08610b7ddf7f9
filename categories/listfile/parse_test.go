package listfile

import (
	"bufio"
	"strings"
	"testing"
)

// item is what a test expects of one result: an entry ("example.com",
// "@@example.com" for an exception) or a rejection ("!reason substring").
func items(res []result) []string {
	var out []string
	for _, r := range res {
		switch {
		case r.reason != "":
			out = append(out, "!"+r.reason)
		case r.allow:
			out = append(out, "@@"+r.target)
		default:
			out = append(out, r.target)
		}
	}
	return out
}

func matchItems(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if strings.HasPrefix(want[i], "!") {
			if !strings.HasPrefix(got[i], "!") || !strings.Contains(got[i], want[i][1:]) {
				return false
			}
		} else if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		k    kind
		line string
		want []string
	}{
		// hosts
		{kindHosts, "0.0.0.0 example.com", []string{"example.com"}},
		{kindHosts, "127.0.0.1\tExample.COM\t# a comment", []string{"example.com"}},
		{kindHosts, "0.0.0.0 example.com#glued comment", []string{"example.com"}},
		{kindHosts, ":: a.example.org", []string{"a.example.org"}},
		{kindHosts, "::1 one.example b.example.net   c.example.net", []string{"one.example", "b.example.net", "c.example.net"}},
		{kindHosts, "0.0.0.0 xxxhindi.to en", []string{"xxxhindi.to", `!"en": single-label name`}},
		{kindHosts, "127.0.0.1 snapchat-com", []string{`!single-label name`}},
		{kindHosts, "0.0.0.0 mindrunway.ru \r\n", []string{"mindrunway.ru"}},
		{kindHosts, "0.0.0.0 Ehentai.to", []string{"ehentai.to"}},
		{kindHosts, "0.0.0.0 si_chao.cstools.facebook.com", []string{"si_chao.cstools.facebook.com"}},
		{kindHosts, "0.0.0.0 bücher.example", []string{"xn--bcher-kva.example"}},
		{kindHosts, "0.0.0.0 example.com.", []string{"example.com"}},
		{kindHosts, "127.0.0.7 p19-sign.tiktokcdn-us.com", []string{"p19-sign.tiktokcdn-us.com"}}, // all of 127/8 is loopback
		{kindHosts, "0.0.0.0 co.uk", []string{"!public suffix"}},
		{kindHosts, "0.0.0.0 com", []string{"!single-label"}},
		{kindHosts, "0.0.0.0 blogspot.com", []string{"blogspot.com"}}, // a private suffix, not ICANN: allowed
		{kindHosts, "0.0.0.0 example.com:80", []string{"!not a host name"}},
		{kindHosts, "0.0.0.0 example.com/path", []string{"!not a host name"}},
		{kindHosts, "0.0.0.0 exa*mple.com", []string{"!invalid host name"}},
		{kindHosts, "0.0.0.0 a..b.com", []string{"!invalid host name"}},
		{kindHosts, "0.0.0.0 1.2.3.4", []string{"1.2.3.4"}},
		{kindHosts, "0.0.0.0", []string{"!no host name"}},
		{kindHosts, "0.0.0.0.0 example.com", []string{"!bad IP address"}},
		{kindHosts, "300.1.1.1 example.com", []string{"!bad IP address"}},
		{kindHosts, "example.com", []string{"!bad IP address"}},
		{kindHosts, "93.184.216.34 example.com", []string{"!does not block"}},
		{kindHosts, "216.239.38.120 www.google.com # safe search", []string{"!does not block"}},
		{kindHosts, "127.0.0.1 localhost", nil},
		{kindHosts, "127.0.0.1 localhost.localdomain localhost", nil},
		{kindHosts, "255.255.255.255 broadcasthost", nil},
		{kindHosts, "::1 localhost ip6-localhost ip6-loopback", nil},
		{kindHosts, "fe80::1%lo0 localhost", nil},
		{kindHosts, "ff02::2 ip6-allrouters", nil},
		{kindHosts, "0.0.0.0 0.0.0.0", nil},
		{kindHosts, "0.0.0.0 local", nil},
		{kindHosts, "127.0.0.1 LocalHost example.com", []string{"example.com"}},
		{kindHosts, "# 0.0.0.0 commented.example.com", nil},
		{kindHosts, "   ", nil},
		{kindHosts, "", nil},

		// plain domains
		{kindDomains, "example.com", []string{"example.com"}},
		{kindDomains, "  Example.COM  # trailing comment", []string{"example.com"}},
		{kindDomains, "example.com#comment", []string{"example.com"}},
		{kindDomains, "*.example.com", []string{"example.com"}},
		{kindDomains, ".example.com", []string{"example.com"}},
		{kindDomains, "*.*.example.com", []string{"!invalid host name"}},
		{kindDomains, "example.com/Path/../x", []string{"example.com/x"}},
		{kindDomains, "example.com/", []string{"example.com/"}},
		{kindDomains, "http://Example.com", []string{"example.com/"}},
		{kindDomains, "https://example.com/a/b?q=1#frag", []string{"example.com/a/b"}},
		{kindDomains, "example.com/a#frag", []string{"example.com/a"}},
		{kindDomains, "example.com/a #comment", []string{"example.com/a"}},
		{kindDomains, "example.com other.com", []string{"!more than one field"}},
		{kindDomains, "0.0.0.0 example.com", []string{"!more than one field"}},
		{kindDomains, "||example.com^", []string{"!invalid host name"}},
		{kindDomains, "com", []string{"!single-label"}},
		{kindDomains, "localhost", []string{"!single-label"}},
		{kindDomains, "co.uk", []string{"!public suffix"}},
		{kindDomains, "gov.uk", []string{"!public suffix"}},
		{kindDomains, "x.se", []string{"!public suffix"}},
		{kindDomains, "co.uk/path", []string{"!public suffix"}},
		{kindDomains, "github.io", []string{"github.io"}},
		{kindDomains, "xn--bcher-kva.example", []string{"xn--bcher-kva.example"}},
		{kindDomains, "1.2.3.4", []string{"1.2.3.4"}},
		{kindDomains, "# comment", nil},
		{kindDomains, "#", nil},

		// UT1 domains: no URLs
		{kindUT1Domains, "example.com", []string{"example.com"}},
		{kindUT1Domains, "_video-bagarre.com", []string{"_video-bagarre.com"}},
		{kindUT1Domains, "example.com/x", []string{"!'/' in a UT1 domains file"}},
		{kindUT1Domains, "178.128.25.172", []string{"178.128.25.172"}},

		// UT1 urls: always URL prefixes
		{kindUT1URLs, "example.com/Some/Path", []string{"example.com/some/path"}},
		{kindUT1URLs, "example.com", []string{"example.com/"}},
		{kindUT1URLs, "example.com/", []string{"example.com/"}},
		{kindUT1URLs, "danskporn.dk/#p2", []string{"danskporn.dk/"}},
		{kindUT1URLs, "178.128.25.172/tag/playboy-penis", []string{"178.128.25.172/tag/playboy-penis"}},
		{kindUT1URLs, "example.com/page?id=1", []string{"example.com/page"}},
		{kindUT1URLs, "example.com/a b", []string{"!more than one field"}},
		{kindUT1URLs, "bad_host!.com/x", []string{"!invalid URL"}},
		{kindUT1URLs, "intranet/x", []string{"!single-label"}},

		// AdBlock
		{kindAdblock, "||example.com^", []string{"example.com"}},
		{kindAdblock, "||Example.COM^", []string{"example.com"}},
		{kindAdblock, "@@||example.com^", []string{"@@example.com"}},
		{kindAdblock, "||example.com^$important", []string{"example.com"}},
		{kindAdblock, "||example.com^$all", []string{"example.com"}},
		{kindAdblock, "||example.com^$document", []string{"example.com"}},
		{kindAdblock, "@@||example.com^$important,document", []string{"@@example.com"}},
		{kindAdblock, "||example.com^$third-party", []string{"!not a domain rule"}},
		{kindAdblock, "||example.com^$important,", []string{"!not a domain rule"}},
		{kindAdblock, "||example.com^$", []string{"!not a domain rule"}},
		{kindAdblock, "||example.com^|", []string{"!not a domain rule"}},
		{kindAdblock, "||example.com/ads^", []string{"!not a domain rule"}},
		{kindAdblock, "||example.com/ads", []string{"!not a domain rule"}},
		{kindAdblock, "||*.example.com^", []string{"!not a domain rule"}},
		{kindAdblock, "||ex*ample.com^", []string{"!not a domain rule"}},
		{kindAdblock, "||example.com", []string{"!not a domain rule"}},
		{kindAdblock, "|https://example.com|", []string{"!not a domain rule"}},
		{kindAdblock, "/banner[0-9]+/", []string{"!not a domain rule"}},
		{kindAdblock, "example.com##.ad", []string{"!not a domain rule"}},
		{kindAdblock, "##.ad-banner", []string{"!not a domain rule"}},
		{kindAdblock, "example.com", []string{"!not a domain rule"}},
		{kindAdblock, "||^", []string{"!not a domain rule"}},
		{kindAdblock, "||com^", []string{"!single-label"}},
		{kindAdblock, "||co.uk^", []string{"!public suffix"}},
		{kindAdblock, "||exa_mple.com^", []string{"exa_mple.com"}},
		{kindAdblock, "! Title: a list", nil},
		{kindAdblock, "[Adblock Plus 2.0]", nil},
		{kindAdblock, "# a hash comment", nil},
		{kindAdblock, "", nil},
	}
	for _, tt := range tests {
		got := items(parseLine(tt.k, []byte(tt.line), nil))
		if !matchItems(got, tt.want) {
			t.Errorf("%s %q: got %q, want %q", tt.k, tt.line, got, tt.want)
		}
	}
}

func TestUT1File(t *testing.T) {
	tests := []struct {
		path string
		cat  string
		k    kind
		gz   bool
		ok   bool
	}{
		{"adult/domains", "adult", kindUT1Domains, false, true},
		{"blacklists/adult/domains", "adult", kindUT1Domains, false, true},
		{"./blacklists/adult/domains.gz", "adult", kindUT1Domains, true, true},
		{"adult/domains.0", "adult", kindUT1Domains, false, true},
		{"adult/domains.12.gz", "adult", kindUT1Domains, true, true},
		{"adult/urls", "adult", kindUT1URLs, false, true},
		{"x/y/malware/urls.gz", "malware", kindUT1URLs, true, true},
		{"domains", "", 0, false, false},
		{"/domains", "", 0, false, false},
		{"./domains", "", 0, false, false},
		{"adult/usage", "", 0, false, false},
		{"adult/expressions", "", 0, false, false},
		{"adult/very_restrictive_expression", "", 0, false, false},
		{"blacklists/global_usage", "", 0, false, false},
		{"adult/domains.diff", "", 0, false, false},
		{"adult/domains.", "", 0, false, false},
		{"adult/domains_old", "", 0, false, false},
		{"adult/", "", 0, false, false},
	}
	for _, tt := range tests {
		cat, k, gz, ok := ut1File(tt.path)
		if cat != tt.cat || k != tt.k || gz != tt.gz || ok != tt.ok {
			t.Errorf("ut1File(%q) = %q, %v, %v, %v; want %q, %v, %v, %v", tt.path, cat, k, gz, ok, tt.cat, tt.k, tt.gz, tt.ok)
		}
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name, content string
		want          kind
	}{
		{"hosts", "# comment\n\n0.0.0.0 a.example.com\n0.0.0.0 b.example.com\n", kindHosts},
		{"hosts 127", "127.0.0.1 localhost\n127.0.0.1 a.example.com\n", kindHosts},
		{"hosts ipv6", ":: a.example.com\n", kindHosts},
		{"hosts after long header", strings.Repeat("# header line\n", 500) + "0.0.0.0 a.example.com\n", kindHosts},
		{"domains", "# comment\na.example.com\nb.example.com\n", kindDomains},
		{"domains with urls", "a.example.com/x\nb.example.com\n", kindDomains},
		{"domains with IPs", "1.2.3.4\n5.6.7.8\n", kindDomains},
		{"adblock", "! Title\n||a.example.com^\n||b.example.com^\n", kindAdblock},
		{"adblock exceptions", "@@||a.example.com^\n", kindAdblock},
		{"adblock header", "[Adblock Plus 2.0]\nexample.com\n", kindAdblock},
		{"adblock only comments", "! Title\n! nothing yet\n", kindAdblock},
		{"mostly hosts", "0.0.0.0 a.com\n0.0.0.0 b.com\nstray.com\n", kindHosts},
		{"empty", "", kindDomains},
		{"only hash comments", "# nothing\n", kindDomains},
		{"bom", "\xef\xbb\xbf||a.example.com^\n", kindAdblock},
		{"crlf", "0.0.0.0 a.example.com\r\n", kindHosts},
	}
	for _, tt := range tests {
		br := bufio.NewReaderSize(strings.NewReader(tt.content), maxLine)
		got, err := detect(br)
		if err != nil || got != tt.want {
			t.Errorf("%s: detect = %v, %v; want %v", tt.name, got, err, tt.want)
		}
		// Detection must not consume anything.
		if n := br.Buffered(); n != len(tt.content) && len(tt.content) < maxLine {
			t.Errorf("%s: %d bytes buffered after detect, want %d", tt.name, n, len(tt.content))
		}
	}
}
