package listfile

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// hints say what the name or the HTTP headers of a source promise.
type hints struct {
	gzip bool // must be gzip
	tar  bool // is a tar archive (after gzip)
	path string
}

func nameHints(p string) hints {
	l := strings.ToLower(p)
	h := hints{path: p}
	switch {
	case strings.HasSuffix(l, ".tar.gz"), strings.HasSuffix(l, ".tgz"):
		h.gzip, h.tar = true, true
	case strings.HasSuffix(l, ".tar"):
		h.tar = true
	case strings.HasSuffix(l, ".gz"):
		h.gzip = true
	}
	return h
}

func (rd *reader) readSource(source string) error {
	if l := strings.ToLower(source); strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") {
		return rd.readHTTP(source)
	}
	fi, err := os.Stat(source)
	if err != nil {
		return fmt.Errorf("read %s: %w", source, err)
	}
	if fi.IsDir() {
		return rd.readDir(source)
	}
	f, err := os.Open(source)
	if err != nil {
		return fmt.Errorf("read %s: %w", source, err)
	}
	defer f.Close()
	rd.prog.total = fi.Size()
	return rd.readStream(source, f, nameHints(filepath.ToSlash(source)))
}

var (
	defaultClientOnce sync.Once
	defaultClient     *http.Client
)

// httpClient returns Options.HTTPClient or a shared client whose timeouts
// bound connecting and waiting for headers; the body may take 30 minutes.
func (rd *reader) httpClient() *http.Client {
	if rd.opts.HTTPClient != nil {
		return rd.opts.HTTPClient
	}
	defaultClientOnce.Do(func() {
		dialer := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
		defaultClient = &http.Client{
			Timeout: 30 * time.Minute,
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           dialer.DialContext,
				ForceAttemptHTTP2:     true,
				TLSHandshakeTimeout:   15 * time.Second,
				ResponseHeaderTimeout: 60 * time.Second,
				ExpectContinueTimeout: time.Second,
				IdleConnTimeout:       90 * time.Second,
				MaxIdleConns:          10,
			},
		}
	})
	return defaultClient
}

func (rd *reader) readHTTP(source string) error {
	u, err := url.Parse(source)
	if err != nil {
		return fmt.Errorf("read %s: %w", source, err)
	}
	name := u.Redacted()
	req, err := http.NewRequestWithContext(rd.ctx, http.MethodGet, source, nil)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	req.Header.Set("User-Agent", "hedgerow-listfile/1")
	resp, err := rd.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("read %s: HTTP status %s", name, resp.Status)
	}
	if resp.ContentLength > 0 {
		rd.prog.total = resp.ContentLength
	}
	h := nameHints(u.Path)
	if ct, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil {
		switch ct {
		case "application/gzip", "application/x-gzip":
			h.gzip = true
		case "application/x-tar":
			h.tar = true
		case "application/x-gtar", "application/x-tgz", "application/x-compressed-tar":
			h.gzip, h.tar = true, true
		}
	}
	if resp.Uncompressed {
		// The transport already undid a Content-Encoding: gzip; whatever
		// the name says, the body may or may not be gzip still: sniff.
		h.gzip = false
	}
	return rd.readStream(name, resp.Body, h)
}

// readStream reads one file or HTTP body: undoes gzip, then reads a tar
// archive or a single list.
func (rd *reader) readStream(name string, raw io.Reader, h hints) error {
	br := bufio.NewReaderSize(&countReader{ctx: rd.ctx, r: raw, p: rd.prog}, maxLine)
	if !h.gzip {
		magic, err := br.Peek(2)
		if err != nil && err != io.EOF {
			return fmt.Errorf("read %s: %w", name, err)
		}
		h.gzip = len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b
	}
	if h.gzip {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("read %s: gzip: %w", name, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, maxLine)
	}
	if !h.tar {
		hdr, err := br.Peek(512)
		if err != nil && err != io.EOF {
			return fmt.Errorf("read %s: %w", name, err)
		}
		h.tar = len(hdr) == 512 && bytes.HasPrefix(hdr[257:], []byte("ustar"))
	}
	if h.tar {
		return rd.readTar(name, br)
	}
	return rd.readSingle(name, h.path, br)
}

// readSingle reads a stream holding one list.
func (rd *reader) readSingle(name, path string, br *bufio.Reader) error {
	switch rd.opts.Format {
	case FormatUT1:
		if err := rd.needCategory(name, true); err != nil {
			return err
		}
		cat, k, _, ok := ut1File(path)
		if !ok {
			return fmt.Errorf("read %s: a UT1 source is a directory, a tar archive or a <category>/domains or <category>/urls file", name)
		}
		slug, ok := rd.ut1Slug(cat)
		if !ok {
			return nil
		}
		return rd.scan(name, br, k, slug)
	case FormatAuto:
		if err := rd.needCategory(name, false); err != nil {
			return err
		}
		k, err := detect(br)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		return rd.scan(name, br, k, rd.opts.Category)
	default:
		if err := rd.needCategory(name, false); err != nil {
			return err
		}
		return rd.scan(name, br, formatKind(rd.opts.Format), rd.opts.Category)
	}
}

// readTar reads a tar archive: a UT1 collection (FormatAuto or FormatUT1),
// or, with an explicit other format, every regular file in it as that
// format.
func (rd *reader) readTar(name string, r io.Reader) error {
	ut1 := rd.opts.Format == FormatAuto || rd.opts.Format == FormatUT1
	if err := rd.needCategory(name, ut1); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	lists := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: tar: %w", name, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue // directories, and symbolic links (UT1's alias categories)
		}
		member := name + ":" + hdr.Name
		if !ut1 {
			if err := rd.readMember(member, tr, strings.HasSuffix(strings.ToLower(hdr.Name), ".gz"), formatKind(rd.opts.Format), rd.opts.Category); err != nil {
				return err
			}
			continue
		}
		cat, k, gz, ok := ut1File(hdr.Name)
		if !ok {
			continue
		}
		lists++
		slug, ok := rd.ut1Slug(cat)
		if !ok {
			continue
		}
		if err := rd.readMember(member, tr, gz, k, slug); err != nil {
			return err
		}
	}
	if ut1 && lists == 0 {
		return fmt.Errorf("read %s: %w in the archive (set Options.Format to read other archives)", name, errNoUT1)
	}
	return nil
}

// readMember reads one list inside an archive, reusing the line and gzip
// readers.
func (rd *reader) readMember(member string, r io.Reader, gz bool, k kind, cat string) error {
	if gz {
		var err error
		if rd.gz == nil {
			rd.gz, err = gzip.NewReader(r)
		} else {
			err = rd.gz.Reset(r)
		}
		if err != nil {
			return fmt.Errorf("read %s: gzip: %w", member, err)
		}
		r = rd.gz
	}
	if rd.lr == nil {
		rd.lr = bufio.NewReaderSize(r, maxLine)
	} else {
		rd.lr.Reset(r)
	}
	return rd.scan(member, rd.lr, k, cat)
}

type ut1Path struct {
	path string
	cat  string
	kind kind
	gz   bool
	size int64
}

// readDir reads a UT1 directory tree.
func (rd *reader) readDir(root string) error {
	switch rd.opts.Format {
	case FormatAuto, FormatUT1:
	default:
		return fmt.Errorf("read %s: a directory is read as UT1, not as %s", root, rd.opts.Format)
	}
	if err := rd.needCategory(root, true); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("read %s: %w", root, err)
	}
	var files []ut1Path
	var total int64
	err = filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == real {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // UT1's alias categories duplicate real ones
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(real, p)
		if err != nil {
			return err
		}
		cat, k, gz, ok := ut1File(filepath.ToSlash(rel))
		if !ok {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, ut1Path{path: filepath.Join(root, rel), cat: cat, kind: k, gz: gz, size: fi.Size()})
		total += fi.Size()
		return nil
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", root, err)
	}
	if len(files) == 0 {
		return fmt.Errorf("read %s: %w", root, errNoUT1)
	}
	rd.prog.total = total
	for _, f := range files {
		slug, ok := rd.ut1Slug(f.cat)
		if !ok {
			rd.prog.add(int(f.size))
			continue
		}
		if err := rd.readFile(f, slug); err != nil {
			return err
		}
	}
	return nil
}

func (rd *reader) readFile(f ut1Path, slug string) error {
	if err := rd.ctx.Err(); err != nil {
		return fmt.Errorf("read %s: %w", f.path, err)
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("read %s: %w", f.path, err)
	}
	defer fh.Close()
	var r io.Reader = &countReader{ctx: rd.ctx, r: fh, p: rd.prog}
	if f.gz {
		zr, err := gzip.NewReader(bufio.NewReaderSize(r, 32<<10))
		if err != nil {
			return fmt.Errorf("read %s: gzip: %w", f.path, err)
		}
		r = zr
	}
	if rd.lr == nil {
		rd.lr = bufio.NewReaderSize(r, maxLine)
	} else {
		rd.lr.Reset(r)
	}
	return rd.scan(f.path, rd.lr, f.kind, slug)
}

// ut1File recognises a UT1 list by its last two path components,
// <category>/<file>, where file is domains or urls, optionally numbered
// (domains.0, domains.1: UT1's split adult list) and optionally gzipped.
func ut1File(p string) (cat string, k kind, gz bool, ok bool) {
	p = strings.TrimRight(p, "/")
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "", 0, false, false
	}
	base := p[i+1:]
	dir := p[:i]
	if j := strings.LastIndexByte(dir, '/'); j >= 0 {
		dir = dir[j+1:]
	}
	if dir == "" || dir == "." || dir == ".." {
		return "", 0, false, false
	}
	if b, found := strings.CutSuffix(base, ".gz"); found {
		base, gz = b, true
	}
	if j := strings.IndexByte(base, '.'); j >= 0 {
		num := base[j+1:]
		if num == "" || strings.Trim(num, "0123456789") != "" {
			return "", 0, false, false
		}
		base = base[:j]
	}
	switch base {
	case "domains":
		k = kindUT1Domains
	case "urls":
		k = kindUT1URLs
	default:
		return "", 0, false, false
	}
	return dir, k, gz, true
}
