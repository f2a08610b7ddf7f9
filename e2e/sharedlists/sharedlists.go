// Package sharedlists locates the real public category lists in
// ../shared/lists for hedgerow's tests and benchmarks, and says which
// hedgerow category and feed each file imports as.
package sharedlists

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"hedgerow/categories"
	"hedgerow/categories/listfile"
)

// File is one list file outside UT1 and how hedgerow imports it.
type File struct {
	Path     string // relative to the lists folder
	Feed     string // feed name to import it as
	Category string // hedgerow category
}

// Files maps every non-UT1 list of MANIFEST.tsv onto hedgerow's taxonomy.
// Where MANIFEST suggests nothing: vaping is drugs, scams and fake shops are
// the malware/phishing category (fraud), and search engines without a safe
// search mode are circumvention. UT1 is imported whole, as one feed, through
// its own mapping table (categories.UT1).
var Files = []File{
	{"blocklistproject/alt-version/phishing-nl.txt.gz", "blp-phishing", "malware"},
	{"blocklistproject/crypto.txt", "blp-crypto", "malware"},
	{"blocklistproject/drugs.txt", "blp-drugs", "drugs"},
	{"blocklistproject/facebook.txt", "blp-facebook", "social-networks"},
	{"blocklistproject/fortnite.txt", "blp-fortnite", "games"},
	{"blocklistproject/piracy.txt", "blp-piracy", "piracy"},
	{"blocklistproject/ransomware.txt", "blp-ransomware", "malware"},
	{"blocklistproject/redirect.txt.gz", "blp-redirect", "circumvention"},
	{"blocklistproject/scam.txt", "blp-scam", "malware"},
	{"blocklistproject/tiktok.txt", "blp-tiktok", "social-networks"},
	{"blocklistproject/torrent.txt", "blp-torrent", "piracy"},
	{"blocklistproject/twitter.txt", "blp-twitter", "social-networks"},
	{"blocklistproject/vaping.txt", "blp-vaping", "drugs"},
	{"blocklistproject/whatsapp.txt", "blp-whatsapp", "chat"},
	{"blocklistproject/youtube.txt.gz", "blp-youtube", "streaming"},
	{"chadmayfield/lists/pi_blocklist_porn_top1m.list", "chadmayfield-porn", "adult"},
	{"hagezi/adblock/doh-vpn-proxy-bypass.txt", "hagezi-bypass", "circumvention"},
	{"hagezi/adblock/fake.txt", "hagezi-fake", "malware"},
	{"hagezi/adblock/nosafesearch.txt", "hagezi-nosafesearch", "circumvention"},
	{"sinfonietta/gambling-hosts", "sinfonietta-gambling", "gambling"},
	{"sinfonietta/pornography-hosts.gz", "sinfonietta-porn", "adult"},
	{"sinfonietta/snuff-hosts", "sinfonietta-snuff", "violence"},
	{"sinfonietta/social-hosts", "sinfonietta-social", "social-networks"},
}

// UT1Feed is the feed name the UT1 directory imports as.
const UT1Feed = "ut1"

// Dir returns the shared lists folder, found by walking up from the working
// directory (tests run in their package directory), or "" when it is absent.
func Dir() string {
	if d := os.Getenv("HEDGEROW_LISTS"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "..", "shared", "lists")
		if st, err := os.Stat(filepath.Join(p, "MANIFEST.tsv")); err == nil && !st.IsDir() {
			return p
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// SkipMessage is what tests say when the lists are absent.
const SkipMessage = "../shared/lists not found (set HEDGEROW_LISTS to the folder): skipping the test on real lists"

// QueryNames returns the DNS query mix of querymix/names.txt.gz.
func QueryNames(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, "querymix", "names.txt.gz"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("querymix: %w", err)
	}
	var names []string
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if n := strings.TrimSpace(sc.Text()); n != "" {
			names = append(names, n)
		}
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		return nil, fmt.Errorf("querymix: %w", err)
	}
	return names, nil
}

// AddAll reads every list in dir as `hedgerow import` reads it (UT1 whole,
// then each of Files with its category) into b, as the store does when it
// builds the Index; each, when not nil, is called with every entry that is
// not an exception.
func AddAll(ctx context.Context, dir string, tax *categories.Taxonomy, b *categories.IndexBuilder, each func(target string, m categories.Mask)) error {
	add := func(e listfile.Entry) error {
		m, err := tax.MaskOf(e.Category)
		if err != nil {
			return err
		}
		if e.Allow {
			b.AddException(e.Target, m)
			return nil
		}
		if each != nil {
			each(e.Target, m)
		}
		return b.Add(e.Target, m)
	}
	if _, err := listfile.Read(ctx, filepath.Join(dir, "ut1"), listfile.Options{}, add); err != nil {
		return fmt.Errorf("read ut1: %w", err)
	}
	for _, f := range Files {
		if _, err := listfile.Read(ctx, filepath.Join(dir, f.Path), listfile.Options{Category: f.Category}, add); err != nil {
			return fmt.Errorf("read %s: %w", f.Path, err)
		}
	}
	return nil
}
