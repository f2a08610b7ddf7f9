package listfile

import (
	"bufio"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"hedgerow/categories"
)

// The real lists live beside the repository, in ../shared/lists from its
// root (see that folder's README.md). They are not part of the project.
func realListsDir(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(wd, "..", "..", "..", "shared", "lists")
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST.tsv")); err != nil {
		t.Skipf("real lists not available (%s/MANIFEST.tsv: %v); they are fetched separately, see shared/lists/README.md", dir, err)
	}
	return dir
}

type manifestRow struct {
	path, format, sourceCat string
	entries                 int
}

func readManifest(t *testing.T, dir string) []manifestRow {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []manifestRow
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		if first {
			first = false
			if !strings.HasPrefix(sc.Text(), "path\t") {
				t.Fatalf("MANIFEST.tsv: unexpected header %q", sc.Text())
			}
			continue
		}
		c := strings.Split(sc.Text(), "\t")
		if len(c) < 6 {
			t.Fatalf("MANIFEST.tsv: short row %q", sc.Text())
		}
		n, err := strconv.Atoi(c[5])
		if err != nil {
			t.Fatalf("MANIFEST.tsv: entries %q: %v", c[5], err)
		}
		rows = append(rows, manifestRow{path: c[0], format: c[2], sourceCat: c[3], entries: n})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// explained are the files whose entries+malformed differs from MANIFEST's
// count of lines that carry a domain, and by how much.
var explained = map[string]int{
	// "0.0.0.0 xxxhindi.to en": one line, two items (xxxhindi.to emitted,
	// the stray "en" counted malformed as a single-label name).
	"sinfonietta/pornography-hosts.gz": +1,
}

// TestRealListsManifest reads every list file of MANIFEST.tsv on its own
// and checks that every line carrying a domain became an entry or a
// malformed item, and that auto-detection agrees with the manifest.
func TestRealListsManifest(t *testing.T) {
	dir := realListsDir(t)
	rows := readManifest(t, dir)
	if len(rows) != 147 {
		t.Errorf("MANIFEST.tsv has %d list files, README says 147", len(rows))
	}
	var totalE, totalM int
	for _, row := range rows {
		p := filepath.Join(dir, filepath.FromSlash(row.path))
		var rep Report
		switch row.format {
		case "hosts", "domains", "adblock":
			var err error
			rep, err = Read(context.Background(), p, Options{Format: Format(row.format), Category: "test"}, func(Entry) error { return nil })
			if err != nil {
				t.Errorf("%s: %v", row.path, err)
				continue
			}
			auto, err := Read(context.Background(), p, Options{Category: "test"}, func(Entry) error { return nil })
			if err != nil {
				t.Errorf("%s auto: %v", row.path, err)
			} else if auto.Entries != rep.Entries || auto.Malformed != rep.Malformed {
				t.Errorf("%s: auto-detected read gives %d/%d entries/malformed, %s gives %d/%d", row.path, auto.Entries, auto.Malformed, row.format, rep.Entries, rep.Malformed)
			}
		case "ut1-domains", "ut1-urls":
			// Every UT1 file, ignored categories included, parsed on its own
			// (Read skips ignored categories, so this uses the internals).
			k := kindUT1Domains
			if row.format == "ut1-urls" {
				k = kindUT1URLs
			}
			rep = readUT1FileForTest(t, p, k)
		default:
			t.Errorf("%s: unknown format %q in MANIFEST.tsv", row.path, row.format)
			continue
		}
		want := row.entries + explained[row.path]
		if got := rep.Entries + rep.Malformed; got != want {
			t.Errorf("%s: %d entries + %d malformed = %d, want %d (MANIFEST %d)", row.path, rep.Entries, rep.Malformed, got, want, row.entries)
		}
		totalE += rep.Entries
		totalM += rep.Malformed
		t.Logf("%-50s %-11s entries %7d malformed %4d", row.path, row.format, rep.Entries, rep.Malformed)
		for _, p := range rep.Problems {
			t.Logf("    line %d %q: %s", p.Line, p.Text, p.Reason)
		}
	}
	t.Logf("all files: %d entries, %d malformed", totalE, totalM)
}

func readUT1FileForTest(t *testing.T, path string, k kind) Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	rd := &reader{ctx: context.Background(), emit: func(Entry) error { return nil }, prog: &progress{}}
	if err := rd.scan(path, bufio.NewReaderSize(r, maxLine), k, "test"); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rd.rep
}

// TestRealUT1Directory reads the whole ut1 folder as one UT1 source.
func TestRealUT1Directory(t *testing.T) {
	dir := realListsDir(t)
	rows := readManifest(t, dir)
	var wantFiles, wantItems int
	wantIgnored := map[string]bool{}
	for _, row := range rows {
		if !strings.HasPrefix(row.format, "ut1-") {
			continue
		}
		slug, known := categories.UT1Category(row.sourceCat)
		if !known || slug == "" {
			wantIgnored[row.sourceCat] = true
			continue
		}
		wantFiles++
		wantItems += row.entries
	}
	perCat := map[string]int{}
	rep, err := Read(context.Background(), filepath.Join(dir, "ut1"), Options{}, func(e Entry) error {
		perCat[e.Category]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != wantFiles {
		t.Errorf("Files = %d, want %d", rep.Files, wantFiles)
	}
	if got := rep.Entries + rep.Malformed; got != wantItems {
		t.Errorf("entries %d + malformed %d = %d, want %d", rep.Entries, rep.Malformed, got, wantItems)
	}
	var gotIgnored []string
	for _, note := range rep.Ignored {
		cat, _, ok := strings.Cut(strings.TrimPrefix(note, "ut1/"), ":")
		if !ok || !strings.HasPrefix(note, "ut1/") {
			t.Errorf("Ignored note %q: want ut1/<category>: <why>", note)
		}
		if !wantIgnored[cat] {
			t.Errorf("Ignored note %q: category is mapped", note)
		}
		if !strings.Contains(note, ": ignored") {
			t.Errorf("Ignored note %q: want the mapping table's 'ignored: ...' note", note)
		}
		gotIgnored = append(gotIgnored, cat)
	}
	if len(gotIgnored) != len(wantIgnored) {
		t.Errorf("Ignored has %d categories %v, want %d", len(gotIgnored), gotIgnored, len(wantIgnored))
	}
	if !sort.StringsAreSorted(gotIgnored) {
		t.Errorf("Ignored not in directory order: %v", gotIgnored)
	}
	t.Logf("ut1: %d files, %d lines, %d entries, %d malformed", rep.Files, rep.Lines, rep.Entries, rep.Malformed)
	for _, n := range rep.Ignored {
		t.Logf("  %s", n)
	}
	var cats []string
	for c := range perCat {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	for _, c := range cats {
		t.Logf("  %-16s %7d", c, perCat[c])
	}
}
