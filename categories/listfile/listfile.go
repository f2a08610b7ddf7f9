// Package listfile reads category lists in the formats schools get them: UT1
// directories and archives, hosts files, plain domain lists, AdBlock domain
// rules.
//
// Read streams a source (a file, a directory, or an http(s) URL; gzip and tar
// are undone on the fly, never buffered whole) and calls back once per entry.
// Lines that do not hold a usable entry are counted and sampled in the Report,
// never emitted and never fatal; I/O, decompression and HTTP errors, a
// cancelled context and an error from the callback end the read.
package listfile

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"hedgerow/categories"
)

// Format names a list format.
type Format string

// The formats Read understands.
const (
	// FormatAuto detects the format: a directory or tar archive holding
	// <category>/domains or <category>/urls files is UT1; any other file is
	// judged by its first meaningful lines ("||name^" or "@@||" rules are
	// AdBlock, "IP name" lines are hosts, anything else a domain list).
	FormatAuto Format = "auto"
	// FormatUT1 is the Université Toulouse 1 blacklist collection: one
	// directory per category holding domains (domains.gz, domains.0, ...)
	// and urls files. The category comes from the directory's name through
	// categories.UT1Category.
	FormatUT1 Format = "ut1"
	// FormatHosts is a hosts file: "0.0.0.0 name [name...]".
	FormatHosts Format = "hosts"
	// FormatDomains is one domain (or host/path URL prefix) per line.
	FormatDomains Format = "domains"
	// FormatAdblock is AdBlock syntax restricted to domain rules:
	// "||name^" and "@@||name^" exceptions.
	FormatAdblock Format = "adblock"
)

// Entry is one list line's contribution.
type Entry struct {
	Target   string // canonical entry: Host for a domain entry, Host+Path for a URL-prefix entry (has a '/')
	Category string // hedgerow category slug
	Allow    bool   // an exception (AdBlock "@@" rule): the name is NOT in Category
}

// Options control Read.
type Options struct {
	// Format of the source; "" means FormatAuto.
	Format Format
	// Category is the slug given to every entry of the non-UT1 formats, for
	// which it is required. It must be empty for UT1, whose directories
	// name their categories. Read does not check the slug against the
	// taxonomy; the caller does.
	Category string
	// Progress, when set, is called now and then (not per line) with the
	// input bytes consumed so far (compressed bytes for compressed input)
	// and the total when known (0 when not, e.g. chunked HTTP), and once at
	// the end of a successful read.
	Progress func(done, total int64)
	// HTTPClient fetches http(s) sources; nil means a client with sane
	// timeouts (connect, TLS and response-header limits, 30 minutes in all).
	HTTPClient *http.Client
}

// Problem is a rejected (malformed) line.
type Problem struct {
	File   string // the file, archive member ("archive:member") or URL
	Line   int    // 1-based
	Text   string // the line, trimmed (and cut short when very long)
	Reason string
}

// Report sums up a Read.
type Report struct {
	// Files is the number of list files read, Lines the lines in them
	// (blank and comment lines included), Entries the entries emitted and
	// Malformed the items rejected: a line, or one name of a hosts line
	// that has several.
	Files, Lines, Entries, Malformed int
	// Problems holds the first 20 rejected items.
	Problems []Problem
	// Ignored has one note per UT1 category skipped: deliberately ignored
	// ones with the mapping table's note ("ut1/astrology: ignored: not a
	// safeguarding category") and unknown ones ("ut1/foo: not in the UT1
	// mapping table, skipped").
	Ignored []string
}

// maxProblems is how many malformed items a Report keeps.
const maxProblems = 20

// maxLine is the longest line read; a longer line is malformed.
const maxLine = 64 << 10

// Read streams the source and calls emit for every entry, in order. source
// is a file path, a directory, or an http(s) URL; .gz files and
// .tar.gz/.tgz/.tar archives are read streaming (never the whole file in
// memory). Gzip is also recognised by its magic number and tar by its
// header, whatever the name.
//
// A directory is always UT1: <root>/<category>/domains*|urls*, walked in
// sorted order, with symbolic links (UT1's alias categories) skipped. In a
// tar archive the UT1 root may be nested: files are recognised by their last
// two path components, in archive order. A single file read with FormatUT1
// takes its category and kind from its last two path components too.
//
// Malformed items (see Report) never stop the read; a line longer than 64
// KiB is one of them. An I/O, gzip, tar or HTTP error, a cancelled ctx and
// an error from emit stop it, wrapped as "read <source> line <n>: ..." (the
// source naming the archive member, "archive:member", when there is one).
// An http(s) source must answer 200. Several names on a hosts line are
// separate entries; hosts lines mapping names to an address other than
// 0.0.0.0, 127.0.0.0/8, :: or ::1 redirect rather than block and are
// malformed. The Report is returned with the error too, counting what was
// read.
func Read(ctx context.Context, source string, opts Options, emit func(Entry) error) (Report, error) {
	if opts.Format == "" {
		opts.Format = FormatAuto
	}
	switch opts.Format {
	case FormatAuto, FormatUT1, FormatHosts, FormatDomains, FormatAdblock:
	default:
		return Report{}, fmt.Errorf("read %s: unknown format %q (want auto, ut1, hosts, domains or adblock)", source, opts.Format)
	}
	if emit == nil {
		return Report{}, fmt.Errorf("read %s: nil emit function", source)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	rd := &reader{
		ctx:  ctx,
		opts: opts,
		emit: emit,
		prog: &progress{fn: opts.Progress},
	}
	err := rd.readSource(source)
	if err == nil {
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("read %s: %w", source, cerr)
		}
	}
	if err == nil {
		rd.prog.finish()
	}
	return rd.rep, err
}

// kind is the syntax of one list file.
type kind uint8

const (
	kindHosts kind = iota + 1
	kindDomains
	kindAdblock
	kindUT1Domains // UT1 domains file: a '/' is malformed
	kindUT1URLs    // UT1 urls file: every line is a URL prefix
)

func (k kind) String() string {
	switch k {
	case kindHosts:
		return "hosts"
	case kindDomains:
		return "domains"
	case kindAdblock:
		return "adblock"
	case kindUT1Domains:
		return "ut1 domains"
	case kindUT1URLs:
		return "ut1 urls"
	}
	return "unknown"
}

func formatKind(f Format) kind {
	switch f {
	case FormatHosts:
		return kindHosts
	case FormatDomains:
		return kindDomains
	case FormatAdblock:
		return kindAdblock
	}
	return 0
}

// reader is the state of one Read call. It is used by one goroutine.
type reader struct {
	ctx  context.Context
	opts Options
	emit func(Entry) error
	rep  Report
	prog *progress

	lr    *bufio.Reader // line reader for archive members, reused
	gz    *gzip.Reader  // gzip reader for archive members, reused
	noted map[string]bool
}

// malformed counts a rejected item and keeps the first maxProblems.
func (rd *reader) malformed(file string, line int, text []byte, reason string) {
	rd.rep.Malformed++
	if len(rd.rep.Problems) < maxProblems {
		const maxText = 200
		var t string
		if len(text) > maxText {
			t = strings.ToValidUTF8(string(text[:maxText]), "") + "…"
		} else {
			t = string(text)
		}
		rd.rep.Problems = append(rd.rep.Problems, Problem{File: file, Line: line, Text: t, Reason: reason})
	}
}

// ut1Slug returns the hedgerow slug of a UT1 category directory, or false
// (after noting it in the report once) when the category is to be skipped.
func (rd *reader) ut1Slug(cat string) (string, bool) {
	slug, known := categories.UT1Category(cat)
	if known && slug != "" {
		return slug, true
	}
	if rd.noted == nil {
		rd.noted = make(map[string]bool)
	}
	if !rd.noted[cat] {
		rd.noted[cat] = true
		rd.rep.Ignored = append(rd.rep.Ignored, ignoredNote(cat, known))
	}
	return "", false
}

func ignoredNote(cat string, known bool) string {
	if !known {
		return "ut1/" + cat + ": not in the UT1 mapping table, skipped"
	}
	note := ""
	for _, m := range categories.UT1 {
		if m.UT1 == cat {
			note = m.Note
			break
		}
	}
	switch {
	case note == "":
		note = "ignored"
	case !strings.HasPrefix(note, "ignored"):
		note = "ignored: " + note
	}
	return "ut1/" + cat + ": " + note
}

// needCategory checks Options.Category against the format actually read.
func (rd *reader) needCategory(source string, ut1 bool) error {
	if ut1 && rd.opts.Category != "" {
		return fmt.Errorf("read %s: UT1 lists name their own categories; Options.Category (%q) must be empty", source, rd.opts.Category)
	}
	if !ut1 && rd.opts.Category == "" {
		return fmt.Errorf("read %s: a category (--category) is required for a %s list", source, rd.formatName())
	}
	return nil
}

func (rd *reader) formatName() string {
	if rd.opts.Format == FormatAuto {
		return "non-UT1"
	}
	return string(rd.opts.Format)
}

// progress throttles Options.Progress.
type progress struct {
	fn          func(done, total int64)
	done, total int64
	last        int64
}

// progressStep is how many input bytes pass between Progress calls.
const progressStep = 256 << 10

func (p *progress) add(n int) {
	p.done += int64(n)
	if p.fn != nil && p.done-p.last >= progressStep {
		p.last = p.done
		p.fn(p.done, p.total)
	}
}

func (p *progress) finish() {
	if p.fn != nil {
		p.last = p.done
		p.fn(p.done, p.total)
	}
}

// countReader counts the raw input for progress and stops on a cancelled
// context.
type countReader struct {
	ctx context.Context
	r   io.Reader
	p   *progress
}

func (c *countReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(b)
	c.p.add(n)
	return n, err
}

var errNoUT1 = errors.New("no UT1 category lists (<category>/domains or <category>/urls files) found")
