// Command gen rebuilds hedgerow's embedded starter lists (starter.txt.gz)
// from the public lists in ../shared/lists. Only sources whose licences allow
// redistribution are used: UT1 (CC BY-SA 4.0), The Block List Project
// (Unlicense/MIT) and Sinfonietta (MIT); never HaGeZi (no licence in the
// snapshot) or chadmayfield (GPL-3.0).
//
//	go run ./categories/starter/gen -lists ../shared/lists -out categories/starter/starter.txt.gz
package main

import (
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"hedgerow/categories/listfile"
)

// sources lists, per category, the files the starter set takes whole.
var sources = []struct {
	category string
	files    []string
}{
	{"adult", []string{"sinfonietta/pornography-hosts.gz", "ut1/adult/urls"}},
	{"gambling", []string{"sinfonietta/gambling-hosts", "ut1/gambling/domains", "ut1/arjel/domains"}},
	{"social-networks", []string{"sinfonietta/social-hosts", "ut1/social_networks/domains"}},
	{"violence", []string{"sinfonietta/snuff-hosts"}},
	{"circumvention", []string{"ut1/doh/domains", "ut1/vpn/domains", "ut1/residential-proxies/domains"}},
	{"malware", []string{"blocklistproject/ransomware.txt", "blocklistproject/crypto.txt", "ut1/cryptojacking/domains",
		"ut1/stalkerware/domains", "ut1/ddos/domains", "ut1/hacking/domains", "ut1/dialer/domains"}},
	{"drugs", []string{"ut1/drogue/domains", "blocklistproject/vaping.txt"}},
	{"hate", []string{"ut1/agressif/domains"}},
	{"weapons", []string{"ut1/dangerous_material/domains"}},
	{"piracy", []string{"blocklistproject/piracy.txt", "ut1/warez/domains"}},
	{"dating", []string{"ut1/dating/domains"}},
	{"chat", []string{"ut1/chat/domains", "blocklistproject/whatsapp.txt"}},
	{"webmail", []string{"ut1/webmail/domains"}},
	{"filehosting", []string{"ut1/filehosting/domains"}},
	{"mature", []string{"ut1/mixed_adult/domains", "ut1/lingerie/domains"}},
	{"kids", []string{"ut1/child/domains", "ut1/educational_games/domains"}},
}

// curated are entries hedgerow adds itself: the public DNS-over-HTTPS
// endpoints of the big resolvers, which the UT1 doh list misses in part, and
// through which a browser would bypass the school's DNS.
var curated = map[string][]string{
	"circumvention": {"dns.google", "dns64.dns.google", "cloudflare-dns.com", "mozilla.cloudflare-dns.com",
		"chrome.cloudflare-dns.com", "1dot1dot1dot1.cloudflare-dns.com", "one.one.one.one", "dns.quad9.net",
		"dns9.quad9.net", "dns10.quad9.net", "dns11.quad9.net", "doh.opendns.com", "doh.familyshield.opendns.com",
		"dns.nextdns.io", "doh.cleanbrowsing.org", "dns.adguard-dns.com", "dns.adguard.com", "doh.dns.sb",
		"dns.alidns.com", "doh.pub", "dns.controld.com", "freedns.controld.com", "doh.mullvad.net",
		"dns.mullvad.net", "doh.libredns.gr", "dns.digitale-gesellschaft.ch", "doh.xfinity.com"},
}

func main() {
	lists := flag.String("lists", "../shared/lists", "the shared lists folder")
	out := flag.String("out", "categories/starter/starter.txt.gz", "output file")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*lists, *out, log); err != nil {
		log.Error("starter lists not rebuilt", "err", err)
		os.Exit(1)
	}
}

func run(lists, out string, log *slog.Logger) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		return err
	}
	fmt.Fprintln(zw, "# hedgerow starter lists; regenerate with: go run ./categories/starter/gen")
	fmt.Fprintln(zw, "# Sources: Blacklists UT1 (Fabrice Prigent, Universite Toulouse 1 Capitole, CC BY-SA 4.0, modified),")
	fmt.Fprintln(zw, "# The Block List Project (Unlicense/MIT), Sinfonietta hostfiles (MIT, (c) 2016 Sinfonietta),")
	fmt.Fprintln(zw, "# and a few public DNS-over-HTTPS endpoints listed by hedgerow itself.")
	total := 0
	for _, src := range sources {
		seen := map[string]bool{}
		for _, file := range src.files {
			rep, err := listfile.Read(context.Background(), filepath.Join(lists, file), listfile.Options{Category: src.category},
				func(e listfile.Entry) error {
					if !e.Allow {
						seen[e.Target] = true
					}
					return nil
				})
			if err != nil {
				return err
			}
			log.Info("read", "file", file, "entries", rep.Entries, "malformed", rep.Malformed)
		}
		for _, n := range curated[src.category] {
			seen[n] = true
		}
		names := make([]string, 0, len(seen))
		for n := range seen {
			names = append(names, n)
		}
		slices.Sort(names)
		fmt.Fprintf(zw, "[%s]\n%s\n", src.category, strings.Join(names, "\n"))
		total += len(names)
		log.Info("category", "slug", src.category, "entries", len(names))
	}
	if err := zw.Close(); err != nil {
		return err
	}
	log.Info("written", "file", out, "entries", total)
	return f.Close()
}
