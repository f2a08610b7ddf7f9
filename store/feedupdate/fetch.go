package feedupdate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"hedgerow/store"
)

// fetched is a copy of a feed's source ready to parse, or word that the
// source has not changed.
type fetched struct {
	notModified bool
	name        string // the source as reports name it
	path        string // what listfile reads: the source itself, or the downloaded copy
	tmpDir      string // removed by cleanup

	etag, lastModified, stamp string // validators of this copy

	progress func(done, total int64) // for listfile: reading a local source
}

func (f fetched) cleanup() {
	if f.tmpDir != "" {
		_ = os.RemoveAll(f.tmpDir)
	}
}

// rename replaces the temporary path of a download by the URL in a
// message.
func (f fetched) rename(s string) string {
	if f.tmpDir == "" {
		return s
	}
	return strings.ReplaceAll(s, f.path, f.name)
}

// fetch gets a copy of the feed's source unless it is unchanged.
func (u *Updater) fetch(ctx context.Context, info store.FeedInfo, req Request) (fetched, error) {
	if isURL(info.Source) {
		return u.download(ctx, info, req)
	}
	st, err := sourceStamp(info.Source)
	if err != nil {
		return fetched{}, fmt.Errorf("check %s: %w", info.Source, err)
	}
	if !req.Force && info.SourceStamp != "" && st == info.SourceStamp {
		return fetched{notModified: true}, nil
	}
	return fetched{name: info.Source, path: info.Source, stamp: st, progress: req.Progress}, nil
}

// download sends a conditional GET and keeps a 200's body in a temporary
// file, so that a failed or cut-off download is noticed before anything is
// parsed, and listfile reads it as it reads any file.
func (u *Updater) download(ctx context.Context, info store.FeedInfo, req Request) (fetched, error) {
	name := store.RedactSource(info.Source)
	src, err := url.Parse(info.Source)
	if err != nil {
		return fetched{}, fmt.Errorf("download %s: %w", name, err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, info.Source, nil)
	if err != nil {
		return fetched{}, fmt.Errorf("download %s: %w", name, err)
	}
	hreq.Header.Set("User-Agent", "hedgerow-feed-update/1")
	if !req.Force {
		if info.ETag != "" {
			hreq.Header.Set("If-None-Match", info.ETag)
		}
		if info.LastModified != "" {
			hreq.Header.Set("If-Modified-Since", info.LastModified)
		}
	}
	resp, err := u.opts.HTTPClient.Do(hreq)
	if err != nil {
		return fetched{}, fmt.Errorf("download %s: %w", name, unwrapURLError(err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		return fetched{notModified: true}, nil
	default:
		return fetched{}, fmt.Errorf("download %s: HTTP status %s; want 200 OK (or 304 Not Modified)", name, resp.Status)
	}
	if resp.ContentLength > u.opts.MaxBytes {
		return fetched{}, fmt.Errorf("download %s: %d bytes, more than the %d-byte limit", name, resp.ContentLength, u.opts.MaxBytes)
	}
	dir, err := os.MkdirTemp(u.opts.TempDir, "hedgerow-feed-")
	if err != nil {
		return fetched{}, fmt.Errorf("download %s: %w", name, err)
	}
	out := fetched{name: name, tmpDir: dir, path: filepath.Join(dir, localName(src.Path)),
		etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}
	if err := u.save(out.path, resp, req.Progress); err != nil {
		out.cleanup()
		return fetched{}, fmt.Errorf("download %s: %w", name, err)
	}
	return out, nil
}

// save writes a response body to path, at most MaxBytes of it.
func (u *Updater) save(path string, resp *http.Response, progress func(done, total int64)) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	body := &countingReader{r: io.LimitReader(resp.Body, u.opts.MaxBytes+1), total: max(resp.ContentLength, 0), progress: progress}
	n, err := io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return fmt.Errorf("after %d bytes: %w", n, unwrapURLError(err))
	case n > u.opts.MaxBytes:
		return fmt.Errorf("more than the %d-byte limit", u.opts.MaxBytes)
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return fmt.Errorf("cut off after %d of %d bytes", n, resp.ContentLength)
	}
	body.finish()
	return nil
}

// unwrapURLError drops the "Get URL:" prefix that would repeat the source
// (and any password in it).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// countingReader reports download progress at most every 256 KiB.
type countingReader struct {
	r           io.Reader
	done, total int64
	last        int64
	progress    func(done, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.done += int64(n)
	if c.progress != nil && c.done-c.last >= 256<<10 {
		c.last = c.done
		c.progress(c.done, c.total)
	}
	return n, err
}

func (c *countingReader) finish() {
	if c.progress != nil {
		c.progress(c.done, c.total)
	}
}

// localName is the file name a download is saved under: the URL path's
// last two components, so that listfile sees the same hints (".tar.gz",
// UT1's "<category>/domains") it would see in the URL.
func localName(urlPath string) string {
	parts := strings.Split(strings.Trim(urlPath, "/"), "/")
	var keep []string
	for _, p := range parts[max(0, len(parts)-2):] {
		p = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
				return r
			}
			return '_'
		}, p)
		if p != "" && strings.Trim(p, ".") != "" {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		return "list"
	}
	return filepath.Join(keep...)
}

// sourceStamp sums up a local source so that a change is noticed without
// reading it: for a file its modification time and size; for a directory
// (UT1) the latest modification time of anything in it (a deleted file
// changes its directory's), the total size and the number of files.
func sourceStamp(path string) (string, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return fmt.Sprintf("file mtime=%d size=%d", fi.ModTime().UnixNano(), fi.Size()), nil
	}
	var latest time.Time
	var size, files int64
	err = filepath.WalkDir(real, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.ModTime().After(latest) {
			latest = fi.ModTime()
		}
		if fi.Mode().IsRegular() {
			size += fi.Size()
			files++
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("dir mtime=%d size=%d files=%d", latest.UnixNano(), size, files), nil
}
