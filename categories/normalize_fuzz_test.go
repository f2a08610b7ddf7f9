package categories

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// normalizeFuzzSeeds are the documented examples plus inputs aimed at the
// corners where canonical forms can drift: stray '%', escapes that decode to
// hex digits, dot segments, IDN and every IPv4 spelling.
func normalizeFuzzSeeds() []string {
	seeds := []string{
		"/%%341", "example.com/%%%32%35", "a.b/%2e%2e%2f..", "x/%25%32%35",
		"http://[::ffff:1.2.3.4]:0/a?b#c", "1.2.3.4.", "0x.0x.0x.0x", "0.0.0.0x1",
		"xn--bcher-kva.xn--cole-9oa", "ẞ.de", "a\u200cb.example", "http:\\\\a\\b",
		"user:pass@host:1/p", "[::]", "::", "host/?", "host?#", "host/ a ?b c",
	}
	for _, tc := range normalizeCases() {
		seeds = append(seeds, tc.in)
	}
	return seeds
}

// checkCanonicalHost fails unless h is a non-empty name of allowed characters
// within DNS limits, or an IP address in netip's canonical form.
func checkCanonicalHost(t *testing.T, in, h string) {
	t.Helper()
	if h == "" {
		t.Fatalf("%q: empty host without error", in)
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.String() != h || a.Zone() != "" {
			t.Fatalf("%q: IP host %q is not canonical (%q)", in, h, a.String())
		}
		return
	}
	if len(h) > maxHostLen {
		t.Fatalf("%q: host %q is %d bytes long", in, h, len(h))
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > maxLabelLen {
			t.Fatalf("%q: host %q has label %q of bad length", in, h, label)
		}
		for i := 0; i < len(label); i++ {
			if !normHostByte(label[i]) {
				t.Fatalf("%q: host %q has forbidden byte %q", in, h, label[i])
			}
		}
	}
	if normEndsInNumber(h) {
		t.Fatalf("%q: host %q ends in a number but is not an IPv4 address", in, h)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range normalizeFuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := Normalize(in)
		if err != nil {
			if !strings.Contains(err.Error(), "normalize ") {
				t.Fatalf("Normalize(%q) error %q does not name the input", in, err)
			}
			return
		}
		checkCanonicalHost(t, in, got.Host)
		if got.Path != "" && got.Path[0] != '/' {
			t.Fatalf("Normalize(%q).Path = %q, want empty or starting with '/'", in, got.Path)
		}
		if got.Path == "" && got.Query != "" {
			t.Fatalf("Normalize(%q) = %+v: query without path", in, got)
		}
		if strings.Contains(got.Path, "//") || strings.ContainsAny(got.Path, "?#\\ ") {
			t.Fatalf("Normalize(%q).Path = %q is not canonical", in, got.Path)
		}
		if strings.ContainsAny(got.Query, "#") {
			t.Fatalf("Normalize(%q).Query = %q contains a fragment", in, got.Query)
		}
		again, err := Normalize(got.String())
		if err != nil {
			t.Fatalf("Normalize(%q) = %q, which fails to normalise again: %v", in, got.String(), err)
		}
		if again != got {
			t.Fatalf("not idempotent: Normalize(%q) = %+v, Normalize(%q) = %+v", in, got, got.String(), again)
		}
	})
}

func FuzzNormalizeHost(f *testing.F) {
	for _, s := range normalizeFuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := NormalizeHost(in)
		if err == nil {
			checkCanonicalHost(t, in, h)
			if h2, err := NormalizeHost(h); err != nil || h2 != h {
				t.Fatalf("NormalizeHost(%q) = %q, but NormalizeHost(%q) = %q, %v", in, h, h, h2, err)
			}
		}
		// Without URL delimiters the input is a bare host for Normalize too,
		// and both entry points must agree, errors included. '\' counts as a
		// delimiter because the list form treats it as '/', as browsers do.
		if strings.ContainsAny(in, "/?#@:\\") {
			return
		}
		nt, nerr := Normalize(in)
		if (err == nil) != (nerr == nil) {
			t.Fatalf("NormalizeHost(%q) = %q, %v but Normalize = %+v, %v", in, h, err, nt, nerr)
		}
		if err == nil && (nt.Host != h || nt.Path != "" || nt.Query != "") {
			t.Fatalf("NormalizeHost(%q) = %q but Normalize = %+v", in, h, nt)
		}
	})
}

// TestNormalizeRandomTokens checks the fuzz properties on inputs glued
// together from fragments that matter to the parser. Byte-level fuzzing is
// slow to build structures like a stray '%' beside an escape, dot segments
// spelt with escapes or IDN beside an IPv4 number; this reaches them at once,
// deterministically, on every plain "go test" run.
func TestNormalizeRandomTokens(t *testing.T) {
	tokens := []string{
		"a", "B", "z", "0", "1", "7", "8", "9", "0x", "0X", "f", "-", "_", ".", "/", "\\", "?", "#", "@", ":",
		"[", "]", "%", "%2e", "%2E", "%25", "%2f", "%41", "%34", "%3", "%5c", "%3F", "..", "%00", "%20", " ",
		"\t", "é", "É", "ß", "ẞ", "xn--", "xn--bcher-kva", "XN--", "http://", "https:", "ws://", "foo://",
		"//", "。", "Ｆ", "\u00ad", "\u200d", "\u0301", "::", "ffff", "255", "256", "4294967295", "%zz",
		"\xff", "\u202e", "١", "ا", "%C3%A9", "%c3", "~", "*", "!", "&", "=", "+",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 100000
	if testing.Short() {
		n = 10000
	}
	var sb strings.Builder
	for i := 0; i < n; i++ {
		sb.Reset()
		for k := rng.IntN(12) + 1; k > 0; k-- {
			sb.WriteString(tokens[rng.IntN(len(tokens))])
		}
		in := sb.String()
		got, err := Normalize(in)
		if !strings.ContainsAny(in, "/?#@:\\") {
			h, herr := NormalizeHost(in)
			if (herr == nil) != (err == nil) || err == nil && h != got.Host {
				t.Fatalf("NormalizeHost(%q) = %q, %v; Normalize = %+v, %v", in, h, herr, got, err)
			}
		}
		if err != nil {
			continue
		}
		checkCanonicalHost(t, in, got.Host)
		again, err := Normalize(got.String())
		if err != nil || again != got {
			t.Fatalf("not idempotent: Normalize(%q) = %+v; Normalize(%q) = %+v, %v", in, got, got.String(), again, err)
		}
	}
}
