// Package starter embeds hedgerow's starter lists: a compact set of entries
// drawn from public category lists whose licences allow redistribution, so a
// fresh install blocks the obvious at once. The full lists are one
// `hedgerow import` away.
package starter

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"strings"
)

//go:embed starter.txt.gz
var data []byte

// FeedName is the feed the starter entries are stored under.
const FeedName = "starter"

// Attribution credits the sources of the starter lists, as their licences
// require. It is shown by `hedgerow categories` and in the README.
const Attribution = `The starter lists embedded in hedgerow are drawn from:
  - Blacklists UT1, Fabrice Prigent, Université Toulouse 1 Capitole
    (https://dsi.ut-capitole.fr/blacklists/), licensed CC BY-SA 4.0; modified
    (a selection of categories; a few lines were withheld upstream of us).
    The starter entries drawn from UT1 are therefore CC BY-SA 4.0 as well.
  - The Block List Project, https://github.com/blocklistproject/Lists
    (The Unlicense; MIT per its file headers).
  - Sinfonietta hostfiles, https://github.com/Sinfonietta/hostfiles
    (MIT, Copyright (c) 2016 Sinfonietta).
  - A few public DNS-over-HTTPS endpoints (dns.google, cloudflare-dns.com, ...)
    listed by hedgerow itself.`

// Entries calls fn for every starter entry with its category slug.
func Entries(fn func(target, category string) error) error {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("starter lists: %w", err)
	}
	sc := bufio.NewScanner(zr)
	category := ""
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		switch {
		case text == "" || strings.HasPrefix(text, "#"):
		case strings.HasPrefix(text, "[") && strings.HasSuffix(text, "]"):
			category = text[1 : len(text)-1]
		case category == "":
			return fmt.Errorf("starter lists line %d: entry before any [category]", line)
		default:
			if err := fn(text, category); err != nil {
				return fmt.Errorf("starter lists line %d: %w", line, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("starter lists: %w", err)
	}
	return nil
}
