package categories

import (
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// normalizeCase is one Normalize example: either the Target it must give or a
// fragment its error must contain (errors must always quote the input too).
type normalizeCase struct {
	in      string
	want    Target
	wantErr string
}

// normalizeCases is shared by the table test, the idempotence test and the
// fuzz seed corpora, so every documented example is also a fuzz seed.
func normalizeCases() []normalizeCase {
	long63 := strings.Repeat("a", 63)
	host253 := strings.Repeat(long63+".", 3) + strings.Repeat("b", 61) // 3*64 + 61 = 253
	return []normalizeCase{
		// Bare hosts.
		{in: "Example.COM.", want: Target{Host: "example.com"}},
		{in: "example.com", want: Target{Host: "example.com"}},
		{in: "  example.com\t\n", want: Target{Host: "example.com"}},
		{in: "WWW.Example.Com", want: Target{Host: "www.example.com"}},
		{in: "localhost", want: Target{Host: "localhost"}},
		{in: "_dmarc.Example.com", want: Target{Host: "_dmarc.example.com"}},
		{in: "my_host.example", want: Target{Host: "my_host.example"}},
		{in: "r3---sn-abc-j5pe.googlevideo.com", want: Target{Host: "r3---sn-abc-j5pe.googlevideo.com"}},
		{in: "-edge-.example", want: Target{Host: "-edge-.example"}},
		{in: "%65xample.com", want: Target{Host: "example.com"}},
		{in: "%45XAMPLE%2ecom", want: Target{Host: "example.com"}},
		{in: "1.2.3.example", want: Target{Host: "1.2.3.example"}},
		{in: "1password.com", want: Target{Host: "1password.com"}},
		{in: "example.1a", want: Target{Host: "example.1a"}},
		{in: "example.0xg", want: Target{Host: "example.0xg"}},
		{in: long63 + ".com", want: Target{Host: long63 + ".com"}},
		{in: host253, want: Target{Host: host253}},
		{in: host253 + ".", want: Target{Host: host253}},
		{in: "example.com#frag", want: Target{Host: "example.com"}},

		// IDN.
		{in: "Bücher.example", want: Target{Host: "xn--bcher-kva.example"}},
		{in: "ÉCOLE.fr", want: Target{Host: "xn--cole-9oa.fr"}},
		{in: "école.fr/Page", want: Target{Host: "xn--cole-9oa.fr", Path: "/page"}},
		{in: "XN--BCHER-KVA.Example", want: Target{Host: "xn--bcher-kva.example"}},
		{in: "xn--bcher-kva.example.", want: Target{Host: "xn--bcher-kva.example"}},
		{in: "faß.de", want: Target{Host: "xn--fa-hia.de"}}, // non-transitional: ß kept
		{in: "ＥＸＡＭＰＬＥ．ＣＯＭ", want: Target{Host: "example.com"}},
		{in: "example.com。", want: Target{Host: "example.com"}},
		{in: "b%C3%BCcher.example", want: Target{Host: "xn--bcher-kva.example"}},
		{in: "http://bücher.example/", want: Target{Host: "xn--bcher-kva.example", Path: "/"}},
		{in: "_ü.example", want: Target{Host: "xn--_-eha.example"}},

		// URLs with a scheme.
		{in: "http://user:pw@EXAMPLE.com:8080/a/./b/../c?q=1#frag", want: Target{Host: "example.com", Path: "/a/c", Query: "q=1"}},
		{in: "http://example.com", want: Target{Host: "example.com", Path: "/"}},
		{in: "https://example.com/", want: Target{Host: "example.com", Path: "/"}},
		{in: "HTTPS://EXAMPLE.COM/Index.HTML", want: Target{Host: "example.com", Path: "/index.html"}},
		{in: "ws://Example.com/Chat", want: Target{Host: "example.com", Path: "/chat"}},
		{in: "wss://example.com:443/socket?token=AbC", want: Target{Host: "example.com", Path: "/socket", Query: "token=AbC"}},
		{in: "ftp://files.example.com/pub/", want: Target{Host: "files.example.com", Path: "/pub/"}},
		{in: "gopher://example.com/x", want: Target{Host: "example.com", Path: "/x"}},
		{in: "http://user:p@ss@example.com/", want: Target{Host: "example.com", Path: "/"}},
		{in: "https://a%40b:c@d@Example.com:8443/x", want: Target{Host: "example.com", Path: "/x"}},
		{in: "http://example.com:/x", want: Target{Host: "example.com", Path: "/x"}},
		{in: "http:///example.com/x", want: Target{Host: "example.com", Path: "/x"}},
		{in: `https:\\example.com\a\b`, want: Target{Host: "example.com", Path: "/a/b"}},
		{in: "http://example.com?q=1", want: Target{Host: "example.com", Path: "/", Query: "q=1"}},
		{in: "http://example.com/#frag?x", want: Target{Host: "example.com", Path: "/"}},
		{in: "http://example.com/?Q=A%20B&x=%2F", want: Target{Host: "example.com", Path: "/", Query: "Q=A%20B&x=%2F"}},
		{in: "http://example.com/?q=a b #f", want: Target{Host: "example.com", Path: "/", Query: "q=a%20b%20"}},
		{in: "http://example.com/?q=é", want: Target{Host: "example.com", Path: "/", Query: "q=%C3%A9"}},
		{in: "http://example.com/?", want: Target{Host: "example.com", Path: "/"}},

		// Scheme-less list forms.
		{in: "Example.com/Foo/Bar", want: Target{Host: "example.com", Path: "/foo/bar"}},
		{in: "example.com/", want: Target{Host: "example.com", Path: "/"}},
		{in: "example.com:8080/path", want: Target{Host: "example.com", Path: "/path"}},
		{in: "example.com:8080", want: Target{Host: "example.com"}},
		{in: "http:8080", want: Target{Host: "http"}},
		{in: "//Example.com/path", want: Target{Host: "example.com", Path: "/path"}},
		{in: "user@example.com/x", want: Target{Host: "example.com", Path: "/x"}},
		{in: "example.com?q=1", want: Target{Host: "example.com", Path: "/", Query: "q=1"}},
		{in: `example.com\a\b`, want: Target{Host: "example.com", Path: "/a/b"}},

		// IPv4 in every spelling a browser accepts.
		{in: "http://3232235777/", want: Target{Host: "192.168.1.1", Path: "/"}},
		{in: "0xC0.0xA8.1.1", want: Target{Host: "192.168.1.1"}},
		{in: "0300.0250.1.1", want: Target{Host: "192.168.1.1"}},
		{in: "192.168.257", want: Target{Host: "192.168.1.1"}},
		{in: "127.1", want: Target{Host: "127.0.0.1"}},
		{in: "192.168.1.1", want: Target{Host: "192.168.1.1"}},
		{in: "192.168.1.1.", want: Target{Host: "192.168.1.1"}},
		{in: "0x7F.1/Admin", want: Target{Host: "127.0.0.1", Path: "/admin"}},
		{in: "0x", want: Target{Host: "0.0.0.0"}},
		{in: "1.0x", want: Target{Host: "1.0.0.0"}},
		{in: "4294967295", want: Target{Host: "255.255.255.255"}},
		{in: "１２７.０.０.１", want: Target{Host: "127.0.0.1"}},
		{in: "%31%32%37.0.0.1", want: Target{Host: "127.0.0.1"}},
		{in: "http://0x7f000001:80/", want: Target{Host: "127.0.0.1", Path: "/"}},

		// IPv6.
		{in: "http://[2001:DB8::1]:80/", want: Target{Host: "2001:db8::1", Path: "/"}},
		{in: "2001:db8:0:0::1", want: Target{Host: "2001:db8::1"}},
		{in: "[2001:db8:0:0::1]", want: Target{Host: "2001:db8::1"}},
		{in: "[::1]/X", want: Target{Host: "::1", Path: "/x"}},
		{in: "::1/x", want: Target{Host: "::1", Path: "/x"}},
		{in: "[::1]:8080", want: Target{Host: "::1"}},
		{in: "::FFFF:192.168.1.1", want: Target{Host: "::ffff:192.168.1.1"}},
		{in: "http://[::ffff:c0a8:101]/", want: Target{Host: "::ffff:192.168.1.1", Path: "/"}},

		// Paths.
		{in: "http://example.com/%70orn", want: Target{Host: "example.com", Path: "/porn"}},
		{in: "http://example.com/%50ORN/%7Euser", want: Target{Host: "example.com", Path: "/porn/~user"}},
		{in: "http://example.com/a%2Fb", want: Target{Host: "example.com", Path: "/a%2fb"}},
		{in: "http://example.com/a%3Fb%23c%25d%5Ce", want: Target{Host: "example.com", Path: "/a%3fb%23c%25d%5ce"}},
		{in: "http://example.com/%zz", want: Target{Host: "example.com", Path: "/%zz"}},
		{in: "http://example.com/100%", want: Target{Host: "example.com", Path: "/100%"}},
		{in: "http://example.com/%%341", want: Target{Host: "example.com", Path: "/%2541"}},
		{in: "http://example.com/a/%2e%2E/b", want: Target{Host: "example.com", Path: "/b"}},
		{in: "http://example.com/a/.%2e/.%2E/b", want: Target{Host: "example.com", Path: "/b"}},
		{in: "http://example.com/../../a", want: Target{Host: "example.com", Path: "/a"}},
		{in: "http://example.com/a/b/..", want: Target{Host: "example.com", Path: "/a/"}},
		{in: "http://example.com/a/.", want: Target{Host: "example.com", Path: "/a/"}},
		{in: "http://example.com/a//../b", want: Target{Host: "example.com", Path: "/a/b"}},
		{in: "http://example.com//a///b//", want: Target{Host: "example.com", Path: "/a/b/"}},
		{in: `http://example.com/a\b`, want: Target{Host: "example.com", Path: "/a/b"}},
		{in: `gopher://example.com/a\b`, want: Target{Host: "example.com", Path: "/a%5cb"}},
		{in: "http://example.com/caf%C3%A9", want: Target{Host: "example.com", Path: "/caf%c3%a9"}},
		{in: "http://example.com/café", want: Target{Host: "example.com", Path: "/caf%c3%a9"}},
		{in: "http://example.com/a b", want: Target{Host: "example.com", Path: "/a%20b"}},
		{in: "http://example.com/a%20", want: Target{Host: "example.com", Path: "/a%20"}},
		{in: `http://example.com/%22%3C%3E`, want: Target{Host: "example.com", Path: `/"<>`}},

		// Invalid input: the error must say what was wrong.
		{in: "", wantErr: "empty input"},
		{in: "   ", wantErr: "empty input"},
		{in: ".", wantErr: "no labels"},
		{in: "example.com..", wantErr: "label 3 is empty"},
		{in: "a..b", wantErr: "label 2 is empty"},
		{in: ".example.com", wantErr: "label 1 is empty"},
		{in: "exa mple.com", wantErr: "character ' ' is not allowed"},
		{in: "*.example.com", wantErr: "character '*' is not allowed"},
		{in: "ex!ample.com", wantErr: "character '!' is not allowed"},
		{in: "example%2Fcom", wantErr: "character '/' is not allowed"},
		{in: "exa%zzmple.com", wantErr: "character '%' is not allowed"},
		{in: strings.Repeat("a", 64) + ".com", wantErr: "label 1 is 64 bytes long"},
		{in: host253 + "b", wantErr: "254 bytes long"},
		{in: "1.2.3.4.5", wantErr: "more than 4 parts"},
		{in: "256.1.1.1", wantErr: "part 1 is 256"},
		{in: "1.2.3.256", wantErr: "last part is 256"},
		{in: "1.2.3.0x100", wantErr: "last part is 256"},
		{in: "4294967296", wantErr: "last part is 4294967296"},
		{in: "99999999999999999999999", wantErr: "last part"},
		{in: "09.1.1.1", wantErr: "part 1"},
		{in: "1.2.3.08", wantErr: "part 4"},
		{in: "example.123", wantErr: "part 1 (\"example\")"},
		{in: "1..2", wantErr: "part 2"},
		{in: "http://[fe80::1%25eth0]/", wantErr: "IPv6 zone"},
		{in: "fe80::1%eth0", wantErr: "IPv6 zone"},
		{in: "[1.2.3.4]", wantErr: "not a valid IPv6 address"},
		{in: "[::1", wantErr: "without closing"},
		{in: "[::1]x", wantErr: "after ']'"},
		{in: "1:2:3", wantErr: "not a valid IPv6 address"},
		{in: "http://example.com:99999/", wantErr: "port \"99999\""},
		{in: "http://example.com:80a/", wantErr: "port \"80a\""},
		{in: "http://", wantErr: "host \"\": empty"},
		{in: "http://user@/x", wantErr: "empty"},
		{in: "/just/a/path", wantErr: "empty"},
		{in: "file:///etc/passwd", wantErr: "empty"},
		{in: "xn--abc-.example", wantErr: "internationalised"},
		{in: "xn--BCHER-KVA.example", want: Target{Host: "xn--bcher-kva.example"}},
		{in: "b\xffcher.example", wantErr: "not valid UTF-8"},
		{in: "b%FFcher.example", wantErr: "not valid UTF-8"},
		{in: "xn--bcher-lm43a.example", wantErr: "internationalised"},  // decodes to U+FFFD
		{in: "a\u0301.example", want: Target{Host: "xn--1ca.example"}}, // NFC: á
		{in: "\u0301a.example", wantErr: "internationalised"},          // leading combining mark
		{in: "ex_ample*.com/x", wantErr: "character '*'"},
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range normalizeCases() {
		got, err := Normalize(tc.in)
		if tc.wantErr != "" {
			if err == nil {
				t.Errorf("Normalize(%q) = %+v, want error containing %q", tc.in, got, tc.wantErr)
				continue
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantErr) {
				t.Errorf("Normalize(%q) error %q, want it to contain %q", tc.in, msg, tc.wantErr)
			}
			if !strings.Contains(msg, strconv.Quote(tc.in)) {
				t.Errorf("Normalize(%q) error %q does not name the input", tc.in, msg)
			}
			continue
		}
		if err != nil {
			t.Errorf("Normalize(%q) error: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Normalize(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestNormalizeIdempotent(t *testing.T) {
	for _, tc := range normalizeCases() {
		got, err := Normalize(tc.in)
		if err != nil {
			continue
		}
		again, err := Normalize(got.String())
		if err != nil {
			t.Errorf("Normalize(%q) = %q, which does not normalise again: %v", tc.in, got.String(), err)
			continue
		}
		if again != got {
			t.Errorf("Normalize(%q) = %+v, but Normalize(%q) = %+v", tc.in, got, got.String(), again)
		}
	}
}

func TestNormalizeLongInput(t *testing.T) {
	// Unbounded, x/net/idna spends seconds on a host this long (punycode is
	// quadratic), so one request line could pin a CPU.
	host := strings.Repeat("\u4e00\u4e01\u4e02", 40000) + ".example"
	start := time.Now()
	_, err := Normalize("http://" + host + "/")
	if err == nil || !strings.Contains(err.Error(), "bytes to convert") {
		t.Fatalf("Normalize(long IDN host) error = %v, want a length error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Normalize(long IDN host) took %v, want it refused quickly", d)
	}
	if n := len(err.Error()); n > 2*maxQuoted+200 {
		t.Errorf("error message is %d bytes long; want long inputs shortened", n)
	}
	// Long ASCII is cheap and still gets the precise length error.
	if _, err := NormalizeHost(strings.Repeat("a.", 200000) + "com"); err == nil || !strings.Contains(err.Error(), "bytes long") {
		t.Errorf("NormalizeHost(long ASCII) error = %v, want a length error", err)
	}
}

func TestNormalizeHost(t *testing.T) {
	cases := []struct {
		in, want, wantErr string
	}{
		{in: "example.com", want: "example.com"},
		{in: "Example.COM.", want: "example.com"},
		{in: "example.com.", want: "example.com"},
		{in: "  example.com ", want: "example.com"},
		{in: "_dmarc.example.com", want: "_dmarc.example.com"},
		{in: "Bücher.example", want: "xn--bcher-kva.example"},
		{in: "ÉCOLE.fr", want: "xn--cole-9oa.fr"},
		{in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{in: "3232235777", want: "192.168.1.1"},
		{in: "0xC0.0xA8.1.1", want: "192.168.1.1"},
		{in: "127.1", want: "127.0.0.1"},
		{in: "1.2.3.4", want: "1.2.3.4"},
		{in: "[2001:DB8::1]", want: "2001:db8::1"},
		{in: "2001:db8:0:0::1", want: "2001:db8::1"},
		{in: "%65xample.com", want: "example.com"},
		{in: "", wantErr: "empty"},
		{in: ".", wantErr: "no labels"},
		{in: "example.com..", wantErr: "empty"},
		{in: "a b", wantErr: "' '"},
		{in: "example.com:443", wantErr: "without a port"}, // ports are split off by the caller
		{in: "a/b", wantErr: "'/'"},
		{in: "1.2.3.4.5", wantErr: "more than 4 parts"},
		{in: "fe80::1%eth0", wantErr: "zone"},
	}
	for _, tc := range cases {
		got, err := NormalizeHost(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), strconv.Quote(strings.TrimSpace(tc.in))) {
				t.Errorf("NormalizeHost(%q) = %q, %v; want error naming the input and containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeHost(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		// A bare host gives the same answer through either entry point.
		if nt, err := Normalize(tc.in); err != nil || nt.Host != got || nt.Path != "" {
			t.Errorf("Normalize(%q) = %+v, %v; want Host %q and no path, like NormalizeHost", tc.in, nt, err, got)
		}
	}
}

func TestNormalizeHostFastPathReturnsInput(t *testing.T) {
	// The fast path must hand back the caller's string, not a copy.
	in := "www.example.com"
	got, err := NormalizeHost(in)
	if err != nil || got != in || unsafe.StringData(got) != unsafe.StringData(in) {
		t.Fatalf("NormalizeHost(%q) = %q, %v; want the input string itself", in, got, err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := NormalizeHost("www.example.com"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("NormalizeHost on a canonical name allocates %v times, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := NormalizeHost("WWW.Example.COM."); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("NormalizeHost on a mixed-case name with trailing dot allocates %v times, want at most 1", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := NormalizeHost("www.example.com."); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("NormalizeHost on a lower-case name with trailing dot allocates %v times, want 0", allocs)
	}
}

func TestTargetString(t *testing.T) {
	cases := []struct {
		t    Target
		want string
	}{
		{Target{Host: "example.com"}, "example.com"},
		{Target{Host: "example.com", Path: "/"}, "example.com/"},
		{Target{Host: "example.com", Path: "/a", Query: "q=1"}, "example.com/a?q=1"},
		{Target{Host: "::1", Path: "/x"}, "::1/x"},
	}
	for _, tc := range cases {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.t, got, tc.want)
		}
	}
}

func BenchmarkNormalizeHost(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"canonical", "www.example.com"},
		{"mixed-case-trailing-dot", "WWW.Example.COM."},
		{"trailing-dot", "www.example.com."},
		{"idn", "Bücher.example"},
		{"ipv4-decimal", "3232235777"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NormalizeHost(bc.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkNormalize(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"bare-host", "www.example.com"},
		{"url", "http://user:pw@EXAMPLE.com:8080/a/./b/../c?q=1#frag"},
		{"list-entry", "example.com/Foo/Bar"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Normalize(bc.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
