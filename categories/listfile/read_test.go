package listfile

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// collect reads a source and returns its report and entries as strings:
// "category target", with "@@" before the target of an exception.
func collect(t testing.TB, source string, opts Options) (Report, []string, error) {
	t.Helper()
	var got []string
	rep, err := Read(context.Background(), source, opts, func(e Entry) error {
		s := e.Category + " "
		if e.Allow {
			s += "@@"
		}
		got = append(got, s+e.Target)
		return nil
	})
	return rep, got, err
}

func problemLines(rep Report) []int {
	var l []int
	for _, p := range rep.Problems {
		l = append(l, p.Line)
	}
	return l
}

const hostsFixture = `# Title: test hosts
# comment line

127.0.0.1 localhost
127.0.0.1 localhost.localdomain
255.255.255.255 broadcasthost
::1 localhost ip6-localhost ip6-loopback
0.0.0.0 0.0.0.0
0.0.0.0 a.example.com
0.0.0.0 B.Example.COM # trailing comment
127.0.0.1	tab.example.com
:: six.example.net
0.0.0.0 xxxhindi.to en
0.0.0.0 one.example.org two.example.org
0.0.0.0 co.uk
300.0.0.1 bad-ip.example.com
1.2.3.4 redirected.example.com
0.0.0.0 mindrunway.ru 
0.0.0.0
`

const domainsFixture = `# Title: test domains
example.com
*.wild.example.com
.dot.example.com
Upper.Example.NET  # comment
url.example.com/Some/Path
http://scheme.example.com/x?y=1
com
localhost
two fields.example.com
bad..example.com

# end
`

const adblockFixture = `[Adblock Plus 2.0]
! Title: test adblock
||ads.example.com^
||imp.example.com^$important
@@||allowed.example.com^
||tracker.example.com^$third-party
||path.example.com/ads^
example.com##.banner
||co.uk^
# hash comment
`

func TestReadFormats(t *testing.T) {
	dir := t.TempDir()
	hosts := writeFile(t, filepath.Join(dir, "hosts.txt"), []byte(hostsFixture))
	domains := writeFile(t, filepath.Join(dir, "domains.list"), []byte(domainsFixture))
	adblock := writeFile(t, filepath.Join(dir, "adblock.txt"), []byte(adblockFixture))
	hostsGz := writeFile(t, filepath.Join(dir, "hosts.txt.gz"), gz(t, []byte(hostsFixture)))
	hostsGzNoSuffix := writeFile(t, filepath.Join(dir, "hosts-compressed"), gz(t, []byte(hostsFixture)))
	crlf := writeFile(t, filepath.Join(dir, "crlf.txt"), []byte("\xef\xbb\xbf0.0.0.0 a.example.com\r\n0.0.0.0 b.example.com\r\n"))

	wantHosts := []string{"c a.example.com", "c b.example.com", "c tab.example.com", "c six.example.net", "c xxxhindi.to",
		"c one.example.org", "c two.example.org", "c mindrunway.ru"}
	hostsRep := Report{Files: 1, Lines: 19, Entries: 8, Malformed: 5}
	hostsProblems := []int{13, 15, 16, 17, 19}

	tests := []struct {
		name     string
		source   string
		format   Format
		want     []string
		rep      Report // Files, Lines, Entries, Malformed
		problems []int
	}{
		{"hosts", hosts, FormatHosts, wantHosts, hostsRep, hostsProblems},
		{"hosts auto", hosts, FormatAuto, wantHosts, hostsRep, hostsProblems},
		{"hosts gz", hostsGz, FormatHosts, wantHosts, hostsRep, hostsProblems},
		{"hosts gz auto", hostsGz, "", wantHosts, hostsRep, hostsProblems},
		{"hosts gz sniffed", hostsGzNoSuffix, FormatAuto, wantHosts, hostsRep, hostsProblems},
		{"domains", domains, FormatDomains,
			[]string{"c example.com", "c wild.example.com", "c dot.example.com", "c upper.example.net",
				"c url.example.com/some/path", "c scheme.example.com/x"},
			Report{Files: 1, Lines: 13, Entries: 6, Malformed: 4}, []int{8, 9, 10, 11}},
		{"domains auto", domains, FormatAuto,
			[]string{"c example.com", "c wild.example.com", "c dot.example.com", "c upper.example.net",
				"c url.example.com/some/path", "c scheme.example.com/x"},
			Report{Files: 1, Lines: 13, Entries: 6, Malformed: 4}, []int{8, 9, 10, 11}},
		{"adblock", adblock, FormatAdblock,
			[]string{"c ads.example.com", "c imp.example.com", "c @@allowed.example.com"},
			Report{Files: 1, Lines: 10, Entries: 3, Malformed: 4}, []int{6, 7, 8, 9}},
		{"adblock auto", adblock, FormatAuto,
			[]string{"c ads.example.com", "c imp.example.com", "c @@allowed.example.com"},
			Report{Files: 1, Lines: 10, Entries: 3, Malformed: 4}, []int{6, 7, 8, 9}},
		{"crlf and BOM", crlf, FormatAuto, []string{"c a.example.com", "c b.example.com"},
			Report{Files: 1, Lines: 2, Entries: 2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, got, err := collect(t, tt.source, Options{Format: tt.format, Category: "c"})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("entries:\n got %q\nwant %q", got, tt.want)
			}
			if rep.Files != tt.rep.Files || rep.Lines != tt.rep.Lines || rep.Entries != tt.rep.Entries || rep.Malformed != tt.rep.Malformed {
				t.Errorf("report files/lines/entries/malformed = %d/%d/%d/%d, want %d/%d/%d/%d",
					rep.Files, rep.Lines, rep.Entries, rep.Malformed, tt.rep.Files, tt.rep.Lines, tt.rep.Entries, tt.rep.Malformed)
			}
			if pl := problemLines(rep); !reflect.DeepEqual(pl, tt.problems) {
				t.Errorf("problem lines %v, want %v; problems %+v", pl, tt.problems, rep.Problems)
			}
			for _, p := range rep.Problems {
				if p.File != tt.source || p.Reason == "" || p.Text == "" {
					t.Errorf("problem %+v: want File %s and a text and reason", p, tt.source)
				}
			}
			if len(rep.Ignored) != 0 {
				t.Errorf("Ignored = %q, want none", rep.Ignored)
			}
		})
	}
}

func TestReadHostsDirt(t *testing.T) {
	dir := t.TempDir()
	src := writeFile(t, filepath.Join(dir, "hosts"), []byte("0.0.0.0 xxxhindi.to en\n"))
	rep, got, err := collect(t, src, Options{Format: FormatHosts, Category: "adult"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"adult xxxhindi.to"}) || rep.Malformed != 1 {
		t.Fatalf("got %q, malformed %d; want xxxhindi.to and one malformed", got, rep.Malformed)
	}
	want := Problem{File: src, Line: 1, Text: "0.0.0.0 xxxhindi.to en", Reason: `"en": single-label name`}
	if rep.Problems[0] != want {
		t.Errorf("problem %+v, want %+v", rep.Problems[0], want)
	}
}

func TestReadLongLinesAndProblemCap(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("a.example.com\n")
	b.WriteString(strings.Repeat("x", maxLine+10) + "\n")
	b.WriteString("b.example.com\n")
	for i := 0; i < 30; i++ {
		b.WriteString("bad..name\n")
	}
	b.WriteString("c.example.com\n")
	b.WriteString(strings.Repeat("y", 3*maxLine)) // at EOF, no newline
	src := writeFile(t, filepath.Join(dir, "long.txt"), []byte(b.String()))
	rep, got, err := collect(t, src, Options{Format: FormatDomains, Category: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"c a.example.com", "c b.example.com", "c c.example.com"}; !reflect.DeepEqual(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	if rep.Lines != 35 || rep.Malformed != 32 || len(rep.Problems) != maxProblems {
		t.Errorf("lines %d malformed %d problems %d, want 35, 32, %d", rep.Lines, rep.Malformed, len(rep.Problems), maxProblems)
	}
	if p := rep.Problems[0]; p.Line != 2 || !strings.Contains(p.Reason, "longer than") || len(p.Text) > 210 {
		t.Errorf("first problem %+v (text %d bytes), want line 2 too long, text cut short", p, len(p.Text))
	}
	if p := rep.Problems[maxProblems-1]; p.Line != maxProblems+2 {
		t.Errorf("last kept problem on line %d, want %d", p.Line, maxProblems+2)
	}
}

// ut1Fixture is a small UT1 tree: real categories, a split and a gzipped
// domains file, urls, the non-list files UT1 ships, an ignored and an
// unknown category and an alias symlink.
func ut1Fixture(t testing.TB) string {
	root := filepath.Join(t.TempDir(), "blacklists")
	files := map[string][]byte{
		"adult/domains":                     []byte("porn.example.com\nSex.Example.com\nbad..name\n"),
		"adult/domains.0":                   []byte("split0.example.com\n"),
		"adult/domains.1":                   []byte("split1.example.com\n"),
		"adult/urls":                        []byte("videos.example.org/Adult/\nexample.org/porn?x=1\nexample.net\n"),
		"adult/usage":                       []byte("black\n"),
		"adult/expressions":                 []byte("(porn|sex)\n"),
		"adult/very_restrictive_expression": []byte("(xxx)\n"),
		"agressif/domains.gz":               gz(t, []byte("hate.example.com\n")),
		"agressif/urls":                     []byte("forum.example.com/hate\n"),
		"astrology/domains":                 []byte("stars.example.com\n"),
		"astrology/urls":                    []byte("stars.example.com/today\n"),
		"foo/domains":                       []byte("foo.example.com\n"),
		"publicite/domains":                 []byte("ads.example.com\nads.example.com/banner\n"),
		"publicite/usage":                   []byte("black\n"),
		"global_usage":                      []byte("NAME: adult\n"),
		"README":                            []byte("readme\n"),
		"LICENSE.pdf":                       []byte("%PDF-1.4\n"),
	}
	for name, data := range files {
		writeFile(t, filepath.Join(root, filepath.FromSlash(name)), data)
	}
	if err := os.Symlink("adult", filepath.Join(root, "porn")); err != nil {
		t.Fatal(err)
	}
	return root
}

var ut1Want = []string{
	"adult porn.example.com", "adult sex.example.com",
	"adult split0.example.com", "adult split1.example.com",
	"adult videos.example.org/adult/", "adult example.org/porn", "adult example.net/",
	"hate hate.example.com", "hate forum.example.com/hate",
	"advertising ads.example.com",
}

var ut1Ignored = []string{
	"ut1/astrology: ignored: not a safeguarding category",
	"ut1/foo: not in the UT1 mapping table, skipped",
}

// tarOf archives a directory tree under prefix in walk order, keeping
// symbolic links as links.
func tarOf(t testing.TB, root, prefix string, compress bool) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.Writer = &b
	var zw *gzip.Writer
	if compress {
		zw = gzip.NewWriter(&b)
		w = zw
	}
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		name := prefix + filepath.ToSlash(rel)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = name
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestReadUT1(t *testing.T) {
	root := ut1Fixture(t)
	dir := t.TempDir()
	tgz := writeFile(t, filepath.Join(dir, "blacklists.tar.gz"), tarOf(t, root, "blacklists/", true))
	tgz2 := writeFile(t, filepath.Join(dir, "ut1.tgz"), tarOf(t, root, "./", true))
	plainTar := writeFile(t, filepath.Join(dir, "ut1.tar"), tarOf(t, root, "", false))
	sniffed := writeFile(t, filepath.Join(dir, "download.bin"), tarOf(t, root, "x/y/", true))
	link := filepath.Join(dir, "link-to-root")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, source string
		format       Format
		fileSep      string // between the source and a member in Problem.File
	}{
		{"dir", root, FormatAuto, "/"},
		{"dir ut1", root, FormatUT1, "/"},
		{"dir via symlink", link, "", "/"},
		{"tar.gz nested root", tgz, FormatAuto, ":blacklists/"},
		{"tgz", tgz2, FormatUT1, ":./"},
		{"tar", plainTar, FormatAuto, ":"},
		{"tar sniffed", sniffed, FormatAuto, ":x/y/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep, got, err := collect(t, tt.source, Options{Format: tt.format})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, ut1Want) {
				t.Errorf("entries:\n got %q\nwant %q", got, ut1Want)
			}
			if !reflect.DeepEqual(rep.Ignored, ut1Ignored) {
				t.Errorf("Ignored = %q, want %q", rep.Ignored, ut1Ignored)
			}
			if rep.Files != 7 || rep.Lines != 12 || rep.Entries != 10 || rep.Malformed != 2 {
				t.Errorf("files/lines/entries/malformed = %d/%d/%d/%d, want 7/12/10/2", rep.Files, rep.Lines, rep.Entries, rep.Malformed)
			}
			wantProblems := []Problem{
				{File: tt.source + tt.fileSep + "adult/domains", Line: 3, Text: "bad..name"},
				{File: tt.source + tt.fileSep + "publicite/domains", Line: 2, Text: "ads.example.com/banner", Reason: "'/' in a UT1 domains file"},
			}
			if len(rep.Problems) != 2 {
				t.Fatalf("problems %+v, want 2", rep.Problems)
			}
			for i, p := range rep.Problems {
				w := wantProblems[i]
				if p.File != w.File || p.Line != w.Line || p.Text != w.Text || (w.Reason != "" && p.Reason != w.Reason) {
					t.Errorf("problem %+v, want %+v", p, w)
				}
			}
		})
	}

	// One UT1 file on its own takes its category from its directory.
	rep, got, err := collect(t, filepath.Join(root, "adult", "urls"), Options{Format: FormatUT1})
	if err != nil || !reflect.DeepEqual(got, ut1Want[4:7]) || rep.Files != 1 {
		t.Errorf("single urls file: %q, %+v, %v; want %q", got, rep, err, ut1Want[4:7])
	}
	rep, got, err = collect(t, filepath.Join(root, "astrology", "domains"), Options{Format: FormatUT1})
	if err != nil || len(got) != 0 || rep.Files != 0 || !reflect.DeepEqual(rep.Ignored, ut1Ignored[:1]) {
		t.Errorf("single ignored file: %q, %+v, %v", got, rep, err)
	}

	// An archive of plain lists read with an explicit format.
	lists := filepath.Join(t.TempDir(), "lists")
	writeFile(t, filepath.Join(lists, "a.txt"), []byte("0.0.0.0 a.example.com\n"))
	writeFile(t, filepath.Join(lists, "b.txt.gz"), gz(t, []byte("0.0.0.0 b.example.com\n")))
	hostsTar := writeFile(t, filepath.Join(dir, "hosts.tar.gz"), tarOf(t, lists, "", true))
	rep, got, err = collect(t, hostsTar, Options{Format: FormatHosts, Category: "c"})
	if err != nil || !reflect.DeepEqual(got, []string{"c a.example.com", "c b.example.com"}) || rep.Files != 2 {
		t.Errorf("hosts tar: %q, %+v, %v", got, rep, err)
	}
	if _, _, err := collect(t, hostsTar, Options{}); !errors.Is(err, errNoUT1) {
		t.Errorf("hosts tar read as auto: err %v, want %v", err, errNoUT1)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	hosts := writeFile(t, filepath.Join(dir, "hosts.txt"), []byte(hostsFixture))
	root := ut1Fixture(t)
	notGz := writeFile(t, filepath.Join(dir, "plain.txt.gz"), []byte(hostsFixture))
	big := bytes.Repeat([]byte("0.0.0.0 some-long-host-name.example.com\n"), 20000)
	zipped := gz(t, big)
	truncated := writeFile(t, filepath.Join(dir, "truncated.gz"), zipped[:len(zipped)/2])
	badTar := writeFile(t, filepath.Join(dir, "bad.tar"), bytes.Repeat([]byte("not a tar header "), 100))
	badCRC := append([]byte(nil), gz(t, []byte("0.0.0.0 a.example.com\n"))...)
	badCRC[len(badCRC)-8] ^= 0xff
	crc := writeFile(t, filepath.Join(dir, "crc.gz"), badCRC)
	badMember := writeFile(t, filepath.Join(dir, "badmember.tar"), func() []byte {
		d := filepath.Join(t.TempDir(), "r")
		writeFile(t, filepath.Join(d, "adult", "domains.gz"), []byte("this is not gzip data at all\n"))
		return tarOf(t, d, "", false)
	}())
	empty := t.TempDir()

	tests := []struct {
		name   string
		source string
		opts   Options
		want   []string // substrings of the error
		is     error
	}{
		{"missing file", filepath.Join(dir, "nope.txt"), Options{Category: "c"}, []string{"nope.txt"}, fs.ErrNotExist},
		{"no category", hosts, Options{Format: FormatHosts}, []string{hosts, "category (--category) is required"}, nil},
		{"no category auto", hosts, Options{}, []string{hosts, "category (--category) is required"}, nil},
		{"category for ut1", root, Options{Category: "adult"}, []string{root, "must be empty"}, nil},
		{"unknown format", hosts, Options{Format: "csv", Category: "c"}, []string{"unknown format"}, nil},
		{"dir as hosts", root, Options{Format: FormatHosts, Category: "c"}, []string{"directory"}, nil},
		{"empty dir", empty, Options{}, []string{empty}, errNoUT1},
		{"ut1 file not in a category", hosts, Options{Format: FormatUT1}, []string{"UT1 source"}, nil},
		{"not gzip", notGz, Options{Category: "c"}, []string{notGz, "gzip"}, gzip.ErrHeader},
		{"truncated gzip", truncated, Options{Category: "c"}, []string{truncated, "line"}, io.ErrUnexpectedEOF},
		{"gzip checksum", crc, Options{Category: "c"}, []string{crc}, gzip.ErrChecksum},
		{"bad tar", badTar, Options{}, []string{badTar, "tar"}, nil},
		{"bad gzip in tar", badMember, Options{}, []string{badMember + ":adult/domains.gz", "gzip"}, gzip.ErrHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got, err := collect(t, tt.source, tt.opts)
			if err == nil {
				t.Fatalf("no error (entries %d)", len(got))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
	if _, err := Read(context.Background(), hosts, Options{Category: "c"}, nil); err == nil {
		t.Error("nil emit: no error")
	}
}

func TestReadEmitError(t *testing.T) {
	src := writeFile(t, filepath.Join(t.TempDir(), "hosts"), []byte(hostsFixture))
	stop := errors.New("store full")
	n := 0
	rep, err := Read(context.Background(), src, Options{Category: "c"}, func(Entry) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("err %v, want %v", err, stop)
	}
	if want := fmt.Sprintf("read %s line 11: store full", src); err.Error() != want {
		t.Errorf("err %q, want %q", err, want)
	}
	if rep.Entries != 2 || n != 3 {
		t.Errorf("entries %d after %d calls, want 2 after 3", rep.Entries, n)
	}
}

func TestReadCancel(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	for i := 0; i < 50000; i++ {
		fmt.Fprintf(&b, "0.0.0.0 host%d.example.com\n", i)
	}
	src := writeFile(t, filepath.Join(dir, "hosts"), b.Bytes())
	srcGz := writeFile(t, filepath.Join(dir, "hosts.gz"), gz(t, b.Bytes()))
	root := ut1Fixture(t)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, s := range []string{src, root} {
		opts := Options{Category: "c"}
		if s == root {
			opts = Options{}
		}
		rep, err := Read(ctx, s, opts, func(Entry) error { return nil })
		if !errors.Is(err, context.Canceled) || rep.Entries != 0 {
			t.Errorf("%s: pre-cancelled read: err %v, %d entries; want context.Canceled, 0", s, err, rep.Entries)
		}
	}

	for _, s := range []string{src, srcGz} {
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		rep, err := Read(ctx, s, Options{Category: "c"}, func(Entry) error {
			if n++; n == 100 {
				cancel()
			}
			return nil
		})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err %v, want context.Canceled", s, err)
		}
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: err %q does not name the source", s, err)
		}
		if rep.Entries >= 50000 {
			t.Errorf("%s: cancelled read went on to the end (%d entries)", s, rep.Entries)
		}
	}
}

func TestReadProgress(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	for i := 0; i < 40000; i++ {
		fmt.Fprintf(&b, "0.0.0.0 host%d.example.com\n", i)
	}
	src := writeFile(t, filepath.Join(dir, "hosts"), b.Bytes())
	srcGz := writeFile(t, filepath.Join(dir, "hosts.gz"), gz(t, b.Bytes()))
	root := ut1Fixture(t)
	for _, s := range []string{src, srcGz, root} {
		var calls [][2]int64
		opts := Options{Category: "c", Progress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }}
		if s == root {
			opts.Category = ""
		}
		if _, _, err := collect(t, s, opts); err != nil {
			t.Fatal(err)
		}
		var size int64
		if s == root {
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if _, _, _, ok := ut1File(filepath.ToSlash(p)); ok && d.Type().IsRegular() {
					info, _ := d.Info()
					size += info.Size()
				}
				return nil
			})
		} else {
			info, _ := os.Stat(s)
			size = info.Size()
		}
		if len(calls) == 0 {
			t.Fatalf("%s: no progress calls", s)
		}
		last := calls[len(calls)-1]
		if last != [2]int64{size, size} {
			t.Errorf("%s: last progress %v, want [%d %d]", s, last, size, size)
		}
		if s == src && len(calls) < 3 {
			t.Errorf("%s: %d progress calls for %d bytes, want some along the way", s, len(calls), size)
		}
		if len(calls) > int(size/progressStep)+2 {
			t.Errorf("%s: %d progress calls for %d bytes: too many", s, len(calls), size)
		}
		for i := 1; i < len(calls); i++ {
			if calls[i][0] < calls[i-1][0] {
				t.Errorf("%s: progress went backwards: %v", s, calls)
			}
		}
	}
}

func TestReadHTTP(t *testing.T) {
	root := ut1Fixture(t)
	tgz := tarOf(t, root, "blacklists/", true)
	hostsGz := gz(t, []byte(hostsFixture))
	var big bytes.Buffer
	for i := 0; big.Len() < 2*maxLine; i++ {
		fmt.Fprintf(&big, "0.0.0.0 host%d.example.com\n", i)
	}
	mux := http.NewServeMux()
	serve := func(path, ctype string, body []byte) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(body)
		})
	}
	serve("/hosts.txt", "text/plain", []byte(hostsFixture))
	serve("/hosts.txt.gz", "application/octet-stream", hostsGz)
	serve("/lists/blacklists.tar.gz", "application/octet-stream", tgz)
	serve("/download", "application/x-gzip", tgz)
	mux.HandleFunc("/chunked.txt", func(w http.ResponseWriter, r *http.Request) {
		for _, part := range strings.SplitAfter(hostsFixture, "\n") {
			io.WriteString(w, part)
			w.(http.Flusher).Flush()
		}
	})
	// A server that gzips on the wire a file whose name says .gz: the
	// transport undoes Content-Encoding, and the reader must not gunzip again.
	mux.HandleFunc("/encoded/hosts.txt.gz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(hostsGz)
	})
	mux.HandleFunc("/missing.txt", http.NotFound)
	// A stream that stops half way and waits: entries must arrive before
	// the body ends, and cancelling must end the read.
	mux.HandleFunc("/slow.txt", func(w http.ResponseWriter, r *http.Request) {
		w.Write(big.Bytes())
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	wantHosts := []string{"c a.example.com", "c b.example.com", "c tab.example.com", "c six.example.net", "c xxxhindi.to",
		"c one.example.org", "c two.example.org", "c mindrunway.ru"}
	for _, tt := range []struct {
		path      string
		opts      Options
		want      []string
		total     int64
		malformed int
	}{
		{"/hosts.txt", Options{Category: "c"}, wantHosts, int64(len(hostsFixture)), 5},
		{"/hosts.txt.gz", Options{Category: "c"}, wantHosts, int64(len(hostsGz)), 5},
		{"/chunked.txt", Options{Category: "c"}, wantHosts, 0, 5},
		{"/encoded/hosts.txt.gz", Options{Category: "c"}, wantHosts, 0, 5},
		{"/lists/blacklists.tar.gz", Options{}, ut1Want, int64(len(tgz)), 2},
		{"/download", Options{}, ut1Want, int64(len(tgz)), 2},
	} {
		t.Run(tt.path, func(t *testing.T) {
			var last [2]int64
			tt.opts.Progress = func(done, total int64) { last = [2]int64{done, total} }
			tt.opts.HTTPClient = srv.Client()
			rep, got, err := collect(t, srv.URL+tt.path, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("entries:\n got %q\nwant %q", got, tt.want)
			}
			if rep.Malformed != tt.malformed {
				t.Errorf("malformed %d, want %d", rep.Malformed, tt.malformed)
			}
			if last[1] != tt.total || (tt.total > 0 && last[0] != tt.total) {
				t.Errorf("last progress %v, want total %d", last, tt.total)
			}
			if rep.Problems[0].File[:len(srv.URL)] != srv.URL {
				t.Errorf("problem file %q does not name the URL", rep.Problems[0].File)
			}
		})
	}

	// The default client (nil HTTPClient) works on loopback too.
	if _, got, err := collect(t, srv.URL+"/hosts.txt", Options{Category: "c"}); err != nil || len(got) != len(wantHosts) {
		t.Errorf("default client: %d entries, %v", len(got), err)
	}

	_, _, err := collect(t, srv.URL+"/missing.txt", Options{Category: "c"})
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "/missing.txt") {
		t.Errorf("404: err %v, want an error naming the URL and the status", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	_, err = Read(ctx, srv.URL+"/slow.txt", Options{Category: "c", HTTPClient: srv.Client()}, func(Entry) error {
		if n++; n == 100 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("slow stream: err %v, want context.Canceled", err)
	}
	if n < 100 {
		t.Errorf("slow stream: %d entries before the body ended, want streaming", n)
	}
}
