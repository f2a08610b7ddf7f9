// Command listnames prints every domain entry of a block category in
// ../shared/lists, once each, as Unbound local-zone lines: the reference
// resolver of the DNS load benchmark is given the same lists as hedgerow.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"hedgerow/categories"
	"hedgerow/categories/listfile"
	"hedgerow/e2e/sharedlists"
)

func main() {
	lists := flag.String("lists", "../shared/lists", "the shared lists folder")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	tax := categories.Builtin()
	seen := map[string]bool{}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	read := func(source, category string) {
		_, err := listfile.Read(context.Background(), source, listfile.Options{Category: category}, func(e listfile.Entry) error {
			c, ok := tax.Lookup(e.Category)
			if !ok || c.Kind != categories.KindBlock || e.Allow || strings.Contains(e.Target, "/") || seen[e.Target] {
				return nil
			}
			seen[e.Target] = true
			_, err := fmt.Fprintf(out, "local-zone: \"%s.\" always_nxdomain\n", e.Target)
			return err
		})
		if err != nil {
			log.Error("read", "source", source, "err", err)
			os.Exit(1)
		}
	}
	read(filepath.Join(*lists, "ut1"), "")
	for _, f := range sharedlists.Files {
		read(filepath.Join(*lists, f.Path), f.Category)
	}
	log.Info("names", "count", len(seen))
}
