package listfile

import (
	"bufio"
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"

	"hedgerow/categories"
)

// The fuzz targets feed whole small files to one parser through scan, the
// loop Read uses, and check with an oracle:
//   - no panic, no error (there is no I/O to fail);
//   - every line is counted, and entries + malformed equals the number of
//     items the lines hold, computed independently of the parser;
//   - every emitted Target is canonical: Normalize gives it back unchanged
//     (Host alone for a domain entry, Host+Path for a URL entry), and it is
//     neither a single label nor a public suffix.

func FuzzHostsLine(f *testing.F) {
	for _, s := range []string{
		hostsFixture,
		"0.0.0.0 xxxhindi.to en\n",
		"127.0.0.1 localhost\n::1 ip6-localhost ip6-loopback\n",
		"0.0.0.0 a.com b.com\tc.com # x\n",
		"1.2.3.4 example.com\n",
		"0.0.0.0 Ehentai.to\r\n0.0.0.0 mindrunway.ru \n",
		"fe80::1%lo0 localhost\n",
		"0.0.0.0 bücher.example\n0.0.0.0 xn--bcher-kva.example\n",
		"0.0.0.0 0x7f.1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzScan(t, kindHosts, data) })
}

func FuzzDomainsLine(f *testing.F) {
	for _, s := range []string{
		domainsFixture,
		"example.com\n*.example.com\n.example.com\n",
		"example.com/a/../b?x#y\nhttp://a.example/\n",
		"co.uk\ncom\nlocalhost\n",
		"a.b.c # comment\n#comment\n",
		"[::1]/x\n1.2.3.4/\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzScan(t, kindDomains, data) })
}

func FuzzAdblockLine(f *testing.F) {
	for _, s := range []string{
		adblockFixture,
		"||example.com^\n@@||example.com^$important\n",
		"||example.com^$all,document\n||a.b^$third-party\n",
		"! comment\n[Adblock Plus 2.0]\n# hash\n##.ad\n",
		"||*.x.com^\n||x.com/path^\n/re/\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzScan(t, kindAdblock, data) })
}

func FuzzUT1Line(f *testing.F) {
	for _, s := range []string{
		"example.com\n_video.example.com\n178.128.25.172\n",
		"example.com/x\n",
		"danskporn.dk/#p2\ntheonion.com/bin/onionimp\\.cgi\\?ticker2\\.gif\n",
		"home.talkcity.com/spiffyst/^^_sk8er_^^\n",
		"1momentactivate.de/mrno/index.html#tel1%40firstoceanic.com.ph\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzScan(t, kindUT1Domains, data)
		fuzzScan(t, kindUT1URLs, data)
	})
}

func fuzzScan(t *testing.T, k kind, data []byte) {
	if len(data) >= maxLine {
		return // long lines are covered by TestReadLongLinesAndProblemCap
	}
	var got []Entry
	rd := &reader{ctx: context.Background(), prog: &progress{}, emit: func(e Entry) error {
		got = append(got, e)
		return nil
	}}
	if err := rd.scan("fuzz", bufio.NewReaderSize(bytes.NewReader(data), maxLine), k, "c"); err != nil {
		t.Fatalf("%s: scan: %v", k, err)
	}
	rep := rd.rep

	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if rep.Files != 1 || rep.Lines != len(lines) {
		t.Fatalf("%s: files %d lines %d, want 1, %d", k, rep.Files, rep.Lines, len(lines))
	}
	want := 0
	for i, line := range lines {
		if i == 0 {
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		n := oracleItems(k, line)
		if n >= 0 {
			if got := len(parseLine(k, line, nil)); got != n {
				t.Fatalf("%s: line %q: %d items, oracle says %d", k, line, got, n)
			}
		} else {
			n = len(parseLine(k, line, nil))
			if n > 1 {
				t.Fatalf("%s: line %q: %d items", k, line, n)
			}
		}
		want += n
	}
	if rep.Entries != len(got) || rep.Entries+rep.Malformed != want {
		t.Fatalf("%s: entries %d (emitted %d) + malformed %d != %d items", k, rep.Entries, len(got), rep.Malformed, want)
	}
	if wantP := min(rep.Malformed, maxProblems); len(rep.Problems) != wantP {
		t.Fatalf("%s: %d problems for %d malformed", k, len(rep.Problems), rep.Malformed)
	}
	for _, e := range got {
		checkEntry(t, k, e)
	}
}

// oracleItems counts the items of a line from the format's rules alone, or
// returns -1 when the line's fate depends on parsing the name ('#' in a
// domain list, which may be a fragment or a comment).
func oracleItems(k kind, line []byte) int {
	s := strings.TrimSpace(string(line))
	switch k {
	case kindHosts:
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = strings.TrimSpace(s[:i])
		}
		if s == "" {
			return 0
		}
		f := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' })
		if _, err := netip.ParseAddr(f[0]); err != nil || len(f) == 1 {
			return 1
		}
		n := 0
		for _, name := range f[1:] {
			if !selfName([]byte(name)) {
				n++
			}
		}
		return n
	case kindDomains, kindUT1Domains:
		if s == "" || s[0] == '#' {
			return 0
		}
		if strings.IndexByte(s, '#') >= 0 {
			return -1
		}
		return 1
	case kindUT1URLs:
		if s == "" || s[0] == '#' {
			return 0
		}
		return 1
	case kindAdblock:
		if s == "" || s[0] == '!' || s[0] == '[' && strings.HasPrefix(strings.ToLower(s), "[adblock") {
			return 0
		}
		if s[0] == '#' {
			return -1 // a comment or a cosmetic rule
		}
		return 1
	}
	return -1
}

func checkEntry(t *testing.T, k kind, e Entry) {
	t.Helper()
	if e.Category != "c" {
		t.Fatalf("%s: entry %+v: wrong category", k, e)
	}
	if e.Allow && k != kindAdblock {
		t.Fatalf("%s: entry %+v: an exception outside AdBlock", k, e)
	}
	n, err := categories.Normalize(e.Target)
	if err != nil {
		t.Fatalf("%s: entry %q does not normalise: %v", k, e.Target, err)
	}
	if strings.IndexByte(e.Target, '/') < 0 {
		if k == kindUT1URLs {
			t.Fatalf("%s: entry %q: a urls file gave a domain entry", k, e.Target)
		}
		if n.Host != e.Target || n.Path != "" || n.Query != "" {
			t.Fatalf("%s: domain entry %q normalises to %+v", k, e.Target, n)
		}
	} else {
		if k != kindDomains && k != kindUT1URLs {
			t.Fatalf("%s: entry %q: a URL entry from a domain-only format", k, e.Target)
		}
		if n.Host+n.Path != e.Target || n.Query != "" {
			t.Fatalf("%s: URL entry %q normalises to %+v", k, e.Target, n)
		}
	}
	if why := checkHost(n.Host); why != "" {
		t.Fatalf("%s: entry %q: %s", k, e.Target, why)
	}
}

// FuzzReadStream feeds arbitrary bytes to the stream reader, with gzip and
// tar sniffing and format detection: errors are fine, panics are not, and
// whatever is emitted is canonical.
func FuzzReadStream(f *testing.F) {
	f.Add([]byte(hostsFixture))
	f.Add([]byte(adblockFixture))
	f.Add([]byte(domainsFixture))
	f.Add(gz(f, []byte(hostsFixture)))
	f.Add(gz(f, []byte("\x1f\x8b")))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opts := range []Options{{Category: "c"}, {}} {
			rd := &reader{ctx: context.Background(), opts: opts, prog: &progress{}}
			if opts.Format == "" {
				rd.opts.Format = FormatAuto
			}
			rd.emit = func(e Entry) error {
				if e.Category == "" || (opts.Category != "" && e.Category != opts.Category) {
					t.Fatalf("entry %+v: wrong category", e)
				}
				n, err := categories.Normalize(e.Target)
				if err != nil {
					t.Fatalf("entry %q does not normalise: %v", e.Target, err)
				}
				if n.Host+n.Path != e.Target && n.Host != e.Target {
					t.Fatalf("entry %q normalises to %+v", e.Target, n)
				}
				return nil
			}
			_ = rd.readStream("fuzz", bytes.NewReader(data), hints{})
			if rd.rep.Malformed < len(rd.rep.Problems) || len(rd.rep.Problems) > maxProblems {
				t.Fatalf("report %+v", rd.rep)
			}
		}
	})
}
